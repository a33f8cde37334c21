// `make demo` is the first command the README gives a newcomer: it must work on a fresh stack and on
// a re-run, and show what it says it shows. Run by `make test` after the integration tests (its
// Steward stays up until stopped, so it must not overlap them).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, loadStackEnv } from '../stack/env.ts';

loadStackEnv();

function runDemo(): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'test/demo/demo.ts')], { cwd: REPO, env: process.env, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

afterAll(() => {
  spawnSync('bash', [join(REPO, 'test/stack/stack.sh'), 'stop-demo'], { env: process.env });
});

describe('make demo', () => {
  it('shows, twice in a row, every step the README promises', () => {
    for (const run of [runDemo(), runDemo()]) {
      expect(run.status, run.out).toBe(0);
      const out = run.out;
      // The Warehouse, over verified TLS, as a login that is not a superuser.
      expect(out).toMatch(/Ready\s+True\s+Connected: connected as steward to PostgreSQL .* over TLSv1\.[23] .*server certificate and host name verified/);
      expect(out).toMatch(/ssl=true version=TLSv1\.[23]/);
      // One access granted, one denied by policy; the masked view built.
      expect(out).toMatch(/churn-analysis\s+analytics_reader\s+analytics\/curated\.customer_sales\s+SELECT\s+\S+\s+True\s+\S+\s+Granted/);
      expect(out).toMatch(/raw-peek\s+.*False\s+\S+\s+PolicyDenied/);
      expect(out).toMatch(/customer-sales\s+curated\.customer_sales\s+2\s+analytics_reader\s+True/);
      // The bucket verified, and the data scientist's read of analytics/ written as an IAM policy.
      expect(out).toMatch(/company-curated\s+company-curated\s+us-east-1\s+AES256\s+true\s+True/);
      expect(out).toMatch(/model-training\s+data-scientist\s+s3:\/\/company-curated\/analytics\/\s+read\s+\S+\s+True/);
      expect(out).toContain('"Action":"s3:ListBucket","Resource":"arn:aws:s3:::company-curated","Condition":{"StringLike":{"s3:prefix":"analytics/*"}');
      // A review cycle asked for: the one access in its scope listed, the stale example decisions ignored, nothing out of band.
      expect(out).toMatch(/analytics-quarterly\s+\d{4}-\d{2}-\d{2}(-\d+)?\s+\S+\s+1\s+0\s+0/);
      expect(out).toMatch(/analytics\/churn-analysis\s+DatasetAccess\s+analytics_reader\s+.*\(not recorded\)\s+pending/);
      expect(out).toContain('Out-of-band grants, made outside Steward (0):');
      // What alice and priya read.
      expect(out).toContain('"email":"al***@example.com","phone":"(***)***-1234"');
      expect(out).toMatch(/SELECT \* FROM raw\.customers\s+-> ERROR: permission denied/);
      expect(out).toContain('"email":"alice@example.com","phone":"555-010-1234"');
      // Lineage, the policy gate, the audit trail.
      expect(out).toMatch(/gross_revenue\s+<- raw\.orders\.quantity \* raw\.orders\.unit_price/);
      expect(out).toMatch(/policy: DENIED: namespace analytics may not request schema raw[\s\S]*\(exit 1\)/);
      // SecretRotation: three rotations under a running pipeline, not one failed query.
      expect(out).toMatch(/pipeline: \d{2,} queries, 0 failed, as (etl_service|stw_alt_etl_service_\w+) and (etl_service|stw_alt_etl_service_\w+)/);
      expect(out).toMatch(/etl-db\s+etl_service\s+alternating\s+(etl_service|stw_alt_etl_service_[0-9a-f]{8})\s+\S+\s+\S+\s+True/);
      // The evidence report: every control it can evaluate passes, and the signed file verifies.
      expect(out).toMatch(/steward report: \d+ pass, 0 fail, \d+ not evaluated; written to \S+demo-report\.json/);
      expect(out).toMatch(/PASS\s+raw-tables-locked:analytics\/raw\.customers/);
      expect(out).toMatch(/PASS\s+masking:data-eng\/customer-sales/);
      expect(out).toMatch(/demo-report\.json: OK: signed with Ed25519 key [0-9a-f]{16}/);
      expect(out).toMatch(/The audit trail[^\n]*\n\s+\d{4}-\d\d-\d\dT\S+ [0-9a-f-]{36} steward@\S+ [a-z_.]+ \S+ (success|denied)\n/);
    }
  });
});
