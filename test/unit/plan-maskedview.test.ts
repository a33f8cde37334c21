// `steward plan -f` on MaskedView manifests, without a cluster (--offline): the CI gate for SQL
// models. The reconciler's own rules refuse a spec, with the position; a valid one prints its SQL
// and its lineage JSON.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../..');
const plan = (...files: string[]) => {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return spawnSync(join(REPO, 'bin/steward'), ['plan', '--offline', ...files.flatMap((f) => ['-f', f])], { encoding: 'utf8', env });
};
const view = (columns: string) => {
  const file = join(mkdtempSync(join(tmpdir(), 'plan-mv-')), 'mv.yaml');
  writeFileSync(
    file,
    `apiVersion: steward.dev/v1alpha1
kind: MaskedView
metadata: {name: sales, namespace: data-eng}
spec:
  warehouse: analytics
  view: {schema: curated, name: sales}
  from: {table: raw.customers, alias: c}
  columns:
${columns}
  readers: [analytics_reader]
  owner: data-eng
`,
  );
  return file;
};

describe('steward plan -f with MaskedView manifests, offline', () => {
  it('the example: valid, its SELECT and its lineage JSON, exit 0', () => {
    const r = plan(join(REPO, 'deploy/examples/maskedview.yaml'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('#   policy: NOT CHECKED: --offline');
    expect(r.stdout).toMatch(/CREATE OR REPLACE VIEW "curated"\."customer_sales" WITH \(security_barrier = true\) AS SELECT /);
    const lineage = JSON.parse(r.stdout.slice(r.stdout.indexOf('# lineage:') + '# lineage:'.length).trim());
    expect(lineage.columns.find((c: { name: string }) => c.name === 'gross_revenue').inputs).toEqual(['raw.orders.quantity', 'raw.orders.unit_price']);
    expect(lineage.columns.filter((c: { masked: boolean }) => c.masked).map((c: { name: string }) => c.name)).toEqual(['email', 'phone']);
  });

  it.each([
    [
      'a spec that undoes its own mask',
      `    - {name: email, expr: c.email, mask: email}\n    - {name: copy, expr: "lower(c.email)"}`,
      /spec\.columns\[1\]\.expr: .*masked in column email.*\(at position \d+\)/,
    ],
    ['a function off the allow-list', `    - {name: x, expr: "pg_read_file('/etc/passwd')"}`, /spec\.columns\[0\]\.expr: .*pg_read_file.*\(at position \d+\)/],
    ['a subquery', `    - {name: x, expr: "(SELECT 1)"}`, /spec\.columns\[0\]\.expr: .*\(at position \d+\)/],
  ])('%s: refused with its position, exit 1', (_what, columns, message) => {
    const r = plan(view(columns));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(message);
    expect(r.stdout).toContain('nothing would be built');
    expect(r.stdout).not.toContain('CREATE OR REPLACE VIEW');
  });
});
