// The top consumers of a V8 heap snapshot (.heapsnapshot, as --heapsnapshot-signal writes one):
// self sizes summed by node type and constructor name, largest first. Retained sizes would need the
// dominator tree; self sizes are enough to see what fills the heap.
//   node bench/heap-top.ts <file.heapsnapshot> [count]
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function heapTop(file: string, count = 20): { type: string; name: string; count: number; bytes: number }[] {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const groups = new Map<string, { type: string; name: string; count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += fields.length) {
    const type = types[s.nodes[i + typeAt]!]!;
    // Strings are grouped as one (their text is the name); objects by constructor.
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : s.strings[s.nodes[i + nameAt]!]!.slice(0, 60);
    const key = `${type}\u0000${name}`;
    const g = groups.get(key) ?? { type, name, count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + sizeAt]!;
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, count);
}

if (import.meta.main) {
  const [file, count] = process.argv.slice(2);
  if (!file) throw new Error('usage: node bench/heap-top.ts <file.heapsnapshot> [count]');
  const top = heapTop(file, Number(count ?? 20));
  const total = top.reduce((n, g) => n + g.bytes, 0);
  for (const g of top) console.log(`${(g.bytes / 1e6).toFixed(2).padStart(8)} MB ${String(g.count).padStart(8)}  ${g.type}: ${g.name}`);
  console.log(`${(total / 1e6).toFixed(2).padStart(8)} MB in these groups`);
}
