// The requests kube-apiserver served, read from its own counter (apiserver_request_total on
// /metrics), so a benchmark can say what each phase asked of the API server, by whoever asked it:
// the bench, Steward and its webhook alike. Watches are left out (one is counted when it starts, not
// per event).
import { execFileSync } from 'node:child_process';

const REQUEST_LINE = /^apiserver_request_total\{([^}]*)\} (\d+)$/gm;
const label = (labels: string, name: string) => new RegExp(`(?:^|,)${name}="([^"]*)"`).exec(labels)?.[1] ?? '';

export const apiserverMetrics = (): string => execFileSync('kubectl', ['get', '--raw', '/metrics'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });

/**
 * Requests by "VERB resource[/subresource][ code]" (the code only with `withCode`), watches left out.
 * `resources` keeps only those resources (all when empty).
 */
export function apiserverRequests(text: string, opts: { withCode?: boolean; resources?: readonly string[] } = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [, labels = '', count] of text.matchAll(REQUEST_LINE)) {
    const verb = label(labels, 'verb');
    const resource = label(labels, 'resource');
    if (verb === 'WATCH' || (opts.resources?.length && !opts.resources.includes(resource))) continue;
    const sub = label(labels, 'subresource');
    const key = `${verb} ${resource}${sub ? `/${sub}` : ''}${opts.withCode ? ` ${label(labels, 'code')}` : ''}`;
    out[key] = (out[key] ?? 0) + Number(count);
  }
  return out;
}

/** What grew between two readings of a counter set. */
export function requestDelta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)] as const)
      .filter(([, v]) => v > 0),
  );
}

/** "1000 POST datasetaccesses 201, 1000 PATCH datasetaccesses/status 200", largest first. */
export function formatRequests(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.length ? entries.map(([k, v]) => `${v} ${k}`).join(', ') : 'none';
}
