// `steward review NAME [-n NAMESPACE] [-o json|text]`: the current cycle of an AccessReview as a
// table (each grant in scope, each out-of-band grant, and what was decided), then a decisions
// template to paste into the spec: a pull request is the review. Read-only: it reads the status.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { accessReviewKind, type AccessReview } from '../api/accessreview.ts';
import { resourceType } from '../api/schema.ts';
import { KubeClient } from '../runtime/kube.ts';

const ACCESS_REVIEW_TYPE = resourceType(accessReviewKind);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** What the review covers: its Warehouse, its ObjectStore, or both. */
const reviewed = (ar: AccessReview) =>
  [ar.spec.warehouse && `Warehouse ${ar.spec.warehouse}`, ar.spec.scope.objectStore && `ObjectStore ${ar.spec.scope.objectStore}`]
    .filter(Boolean)
    .join(' and ');

/** The text report: findings, out-of-band grants, ignored decisions, and the template. */
export function reviewReport(ar: AccessReview): string {
  const s = ar.status ?? {};
  const lines: string[] = [];
  if (!s.cycle) return `AccessReview ${ar.metadata.namespace}/${ar.metadata.name}: no cycle yet; the first starts at ${s.nextCycleAt ?? 'its schedule'}\n`;
  const c = s.cycle;
  lines.push(
    `AccessReview ${ar.metadata.namespace}/${ar.metadata.name}, ${reviewed(ar)}: cycle ${c.id}, started ${c.startedAt}, due ${c.dueAt}${c.completedAt ? `, completed ${c.completedAt}` : ''}`,
  );
  const findings = s.findings ?? [];
  lines.push('', `Grants in scope (${findings.length}):`);
  if (findings.length)
    lines.push(
      table([
        ['ACCESS', 'KIND', 'PRINCIPAL', 'DATASET', 'PRIVILEGES', 'EXPIRES', 'LAST USED', 'DECISION'],
        ...findings.map((f) => [f.access, f.kind, f.principal, f.dataset, f.privileges, f.expiresAt ?? '-', f.lastUsedAt ?? '(not recorded)', f.decision]),
      ]),
    );
  const oob = s.outOfBand ?? [];
  lines.push('', `Out-of-band grants, made outside Steward (${oob.length}):`);
  if (oob.length)
    lines.push(
      table([
        ['FINDING', 'KIND', 'GRANTEE', 'OBJECT', 'PRIVILEGES', 'DECISION'],
        ...oob.map((o) => [o.id, o.kind, o.grantee, o.object, o.privileges, o.decision]),
      ]),
    );
  for (const i of s.ignoredDecisions ?? []) lines.push(`ignored: ${i.decision}: ${i.why}`);
  const open = [
    ...findings.filter((f) => f.decision === 'pending').map((f) => `access: ${f.access}`),
    ...oob.filter((o) => o.decision === 'reported').map((o) => `finding: ${o.id}`),
  ];
  if (!c.completedAt && open.length) {
    lines.push('', 'Decisions to paste under spec.decisions (keep or revoke each; by must be one of the reviewers):');
    for (const what of open) lines.push(`    - {cycle: "${c.id}", ${what}, decision: keep, by: ${ar.spec.reviewers[0]}, reason: ""}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function runReview(argv: string[], out: Writable, err: Writable): Promise<number> {
  let values: { namespace?: string; output?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { namespace: { type: 'string', short: 'n', default: 'default' }, output: { type: 'string', short: 'o', default: 'text' } },
    }));
  } catch (e) {
    err.write(`steward review: ${(e as Error).message}\n`);
    return 2;
  }
  if (positionals.length !== 1) {
    err.write('usage: steward review NAME [-n NAMESPACE] [-o json|text]\n');
    return 2;
  }
  let client: KubeClient;
  try {
    client = KubeClient.fromDefault({ userAgent: 'steward-review' });
  } catch (e) {
    err.write(`steward review: cannot reach the cluster: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    const ar = await client.get<AccessReview>(ACCESS_REVIEW_TYPE, positionals[0]!, values.namespace);
    if (values.output === 'json')
      out.write(
        `${JSON.stringify({ cycle: ar.status?.cycle, findings: ar.status?.findings ?? [], outOfBand: ar.status?.outOfBand ?? [], summary: ar.status?.summary, ignoredDecisions: ar.status?.ignoredDecisions ?? [] }, null, 2)}\n`,
      );
    else out.write(reviewReport(ar));
    return 0;
  } catch (e) {
    err.write(`steward review: ${(e as Error).message}\n`);
    return 3;
  } finally {
    client.close();
  }
}
