// DatasetAccess on the real stack, proven the way a user would: connect as a login that is a member
// of the principal, and show what it can and cannot read.
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { groupRoleName, usageRoleName } from '../../src/governance/grants.ts';
import {
  REPO,
  Steward,
  allEventsText,
  apply,
  condition,
  ensureNamespace,
  eventsAbout,
  kube,
  kubectl,
  kstatus,
  pgConfig,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  sumMetric,
  SECRET_GETS,
  API_WRITES,
  reconcilesOf,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('x').slice(2).replace(/-/g, '');
const DB = `dsa_${id}`;
const NS = `dsa-${id}`;
const WH = `wh-dsa-${id}`;
const READER = `analytics_reader_${id}`;
const ALICE = `alice_${id}`;
const ALICE_PW = randomPassword();
let steward: Steward;

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });

async function asAlice<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  return withPg(fn, { database: DB, user: ALICE, password: ALICE_PW });
}

/** Can Alice (a member of the principal) run this? true, or the error message. */
async function can(sql: string): Promise<true | string> {
  return asAlice(async (c) =>
    c.query(sql).then(
      () => true as const,
      (e: Error) => e.message,
    ),
  );
}

function dsa(
  name: string,
  spec: { tables?: string[]; privileges?: string[]; expiresAt?: string; duration?: string; schema?: string; role?: string; deletionPolicy?: string },
): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${NS}}
spec:
  principal: {role: ${spec.role ?? READER}}
  warehouse:
    name: ${WH}
    schema: ${spec.schema ?? 'curated'}
    tables: ${JSON.stringify(spec.tables ?? ['customer_sales'])}
    privileges: ${JSON.stringify(spec.privileges ?? ['SELECT'])}
  ${spec.expiresAt ? `expiresAt: "${spec.expiresAt}"` : ''}
  ${spec.duration ? `duration: ${spec.duration}` : ''}
  ${spec.deletionPolicy ? `deletionPolicy: ${spec.deletionPolicy}` : ''}
  justification: integration test
`;
}

function warehouse(policy: string): string {
  return stackWarehouseYaml({ name: WH, database: DB, policy });
}

const POLICY = `    - namespaces: {matchNames: [${NS}]}
      schemas: [curated, solo]
      privileges: [SELECT, INSERT]`;

const waitReady = (name: string, reason = 'Granted', timeoutMs = 30_000) => waitForCondition(DATASET_ACCESS_TYPE, name, NS, 'Ready', 'True', reason, timeoutMs);
const get = (name: string) => kube.get<Conditioned>(DATASET_ACCESS_TYPE, name, NS);

async function deleteAccess(name: string): Promise<void> {
  await kube.delete(DATASET_ACCESS_TYPE, name, NS);
  await waitFor(`${name} to be gone`, async () =>
    kube.get(DATASET_ACCESS_TYPE, name, NS).then(
      () => false,
      () => true,
    ),
  );
}

async function auditRows(name: string): Promise<Record<string, any>[]> {
  return asSuperuser(async (c) => (await c.query('SELECT * FROM steward.audit_log WHERE kind = $1 AND name = $2 ORDER BY id', ['DatasetAccess', name])).rows);
}

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) =>
    c.query(`
    CREATE SCHEMA raw; CREATE SCHEMA curated; CREATE SCHEMA solo;
    CREATE TABLE solo.t (x int); INSERT INTO solo.t VALUES (7);
    CREATE TABLE raw.customers (id int PRIMARY KEY, email text, phone text, country text);
    CREATE TABLE raw.orders (id int PRIMARY KEY, customer_id int, quantity int, unit_price numeric, created_at timestamptz);
    CREATE TABLE curated.customer_sales (order_id int, customer_region text, gross_revenue numeric);
    CREATE TABLE curated.other (x int);
    INSERT INTO raw.customers VALUES (1, 'a@example.com', '555-0100', 'US');
    INSERT INTO curated.customer_sales VALUES (1, 'US', 19.0);
    CREATE ROLE ${READER} NOLOGIN;
    CREATE ROLE ${ALICE} LOGIN PASSWORD '${ALICE_PW}' IN ROLE ${READER};
  `),
  );
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  apply(warehouse(POLICY));
  steward = Steward.start({ args: ['--resync', '3s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
});

afterAll(async () => {
  await steward?.stop();
  const left = await kube.list<Conditioned>(DATASET_ACCESS_TYPE, { namespace: NS }).catch(() => ({ items: [] as Conditioned[] }));
  for (const a of left.items) {
    await kube.patch(DATASET_ACCESS_TYPE, a.metadata.name, NS, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
    await kube.delete(DATASET_ACCESS_TYPE, a.metadata.name, NS).catch(() => undefined);
  }
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('DatasetAccess grants', () => {
  it('grants SELECT on exactly the requested table, through a group role it owns', async () => {
    apply(dsa('churn', {}));
    const obj = await waitReady('churn');
    const role = groupRoleName(NS, 'churn');
    expect(obj.status).toMatchObject({ groupRole: role, principal: READER, dataset: `${WH}/curated.customer_sales`, privileges: 'SELECT' });
    expect(kstatus(obj).status).toBe('Current');

    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    expect(await can('SELECT * FROM raw.customers')).toMatch(/permission denied/);
    expect(await can('SELECT * FROM raw.orders')).toMatch(/permission denied/);
    expect(await can('SELECT * FROM curated.other')).toMatch(/permission denied/);
    expect(await can("INSERT INTO curated.customer_sales VALUES (2, 'DE', 1)")).toMatch(/permission denied/);

    // The catalog shows one ACL entry for the group role, and the principal as its only member.
    const acl = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT a.privilege_type, pg_get_userbyid(a.grantee) AS grantee FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = 'curated.customer_sales'::regclass AND a.grantee <> c.relowner`,
          )
        ).rows,
    );
    expect(acl).toEqual([{ privilege_type: 'SELECT', grantee: role }]);
    const members = await asSuperuser(
      async (c) => (await c.query(`SELECT pg_get_userbyid(member) AS m FROM pg_auth_members WHERE roleid = $1::regrole`, [role])).rows,
    );
    expect(members).toEqual([{ m: READER }]);

    const printed = kubectl(['get', 'dsa', '-n', NS, 'churn', '-o', 'wide']);
    expect(printed.stdout).toMatch(/NAME\s+PRINCIPAL\s+DATASET\s+PRIVILEGES\s+EXPIRES\s+READY\s+AGE\s+REASON/);
    expect(printed.stdout).toMatch(new RegExp(`churn\\s+${READER}\\s+${WH}/curated.customer_sales\\s+SELECT\\s+\\S*\\s*True`));
  });

  it('INSERT works once INSERT is granted too, and the audit table holds one record per action', async () => {
    apply(dsa('writer', { privileges: ['SELECT', 'INSERT'] }));
    await waitReady('writer');
    expect(await can("INSERT INTO curated.customer_sales VALUES (3, 'FR', 2)")).toBe(true);
    const rows = await auditRows('writer');
    expect(rows.map((r) => r.action)).toEqual(['role.create', 'role.comment', 'grant.privileges', 'grant.usage', 'grant.membership']);
    const requestIds = new Set(rows.map((r) => r.request_id));
    expect(requestIds.size).toBe(1);
    for (const r of rows) {
      expect(r).toMatchObject({ outcome: 'success', actor: expect.any(String), resource: expect.stringContaining(`${WH}/`), namespace: NS });
      expect(r.details.statement).toMatch(/^(CREATE ROLE|COMMENT ON ROLE|GRANT)/);
    }
    await deleteAccess('writer');
  });

  it('two accesses for the same principal and table: deleting one keeps access, deleting both removes it', async () => {
    apply(dsa('twin-a', {}));
    apply(dsa('twin-b', {}));
    await waitReady('twin-a');
    await waitReady('twin-b');
    await deleteAccess('churn');
    await deleteAccess('twin-a');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    await deleteAccess('twin-b');
    expect(await can('SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
    const memberships = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT g.rolname FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid WHERE am.member = $1::regrole AND g.rolname LIKE 'stw\\_%'`,
            [READER],
          )
        ).rows,
    );
    expect(memberships).toEqual([]);
    const roles = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT rolname FROM pg_roles WHERE rolname = ANY($1)`, [['churn', 'twin-a', 'twin-b'].map((n) => groupRoleName(NS, n))])).rows,
    );
    expect(roles).toEqual([]);
    const drops = (await auditRows('twin-b')).filter((r) => r.action === 'role.drop');
    expect(drops).toHaveLength(1);
  });

  it('"*" covers every table of the schema, including one created afterwards', async () => {
    apply(dsa('everything', { tables: ['*'] }));
    await waitReady('everything');
    expect(await can('SELECT * FROM curated.other')).toBe(true);
    await asSuperuser((c) => c.query('CREATE TABLE curated.later (y int)'));
    expect(await can('SELECT * FROM curated.later')).toBe(true);
    expect(await can('SELECT * FROM raw.customers')).toMatch(/permission denied/);
    await deleteAccess('everything');
    expect(await can('SELECT * FROM curated.later')).toMatch(/permission denied/);
  });
});

describe('DatasetAccess policy', () => {
  it('refuses what the policy does not allow: PolicyDenied, nothing granted, Warning event, audited as denied', async () => {
    apply(dsa('raw-read', { schema: 'raw', tables: ['customers'] }));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'raw-read', NS, 'Ready', 'False', 'PolicyDenied');
    expect(condition(obj, 'Ready')?.message).toMatch(/may not request schema raw/);
    expect(condition(obj, 'Stalled')?.status).toBe('True');
    expect(await can('SELECT * FROM raw.customers')).toMatch(/permission denied/);
    const role = await asSuperuser(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [groupRoleName(NS, 'raw-read')])).rowCount);
    expect(role).toBe(0);
    expect((await eventsAbout('raw-read')).some((e) => e.type === 'Warning' && e.reason === 'PolicyDenied')).toBe(true);
    const denied = await auditRows('raw-read');
    expect(denied.map((r) => [r.action, r.outcome])).toEqual([['policy.evaluate', 'denied']]);
    expect(denied[0]).toMatchObject({ error: expect.stringMatching(/may not request schema raw/), request_id: expect.any(String), actor: expect.any(String) });
    await deleteAccess('raw-read');
  });

  it('when the policy changes, an access no longer allowed is revoked', async () => {
    apply(dsa('policy-change', {}));
    await waitReady('policy-change');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    apply(
      warehouse(`    - namespaces: {matchNames: [someone-else]}
      schemas: [curated]
      privileges: [SELECT]`),
    );
    await waitForCondition(DATASET_ACCESS_TYPE, 'policy-change', NS, 'Ready', 'False', 'PolicyDenied');
    expect(await can('SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
    apply(warehouse(POLICY));
    await waitReady('policy-change');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    await deleteAccess('policy-change');
  });

  it('a principal that does not exist: PrincipalNotFound, and no login role is created', async () => {
    apply(dsa('ghost', { role: `ghost_${id}` }));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'ghost', NS, 'Ready', 'False', 'PrincipalNotFound');
    expect(condition(obj, 'Ready')?.message).toContain(`ghost_${id}`);
    expect(await asSuperuser(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`ghost_${id}`])).rowCount)).toBe(0);
    await asSuperuser((c) => c.query(`CREATE ROLE ghost_${id} NOLOGIN`));
    await waitReady('ghost');
    await deleteAccess('ghost');
  });
});

describe('DatasetAccess expiry', () => {
  it('works until expiresAt and is gone within a second after it; status shows Expired', async () => {
    const deadline = new Date(Date.now() + 4000);
    apply(dsa('short', { expiresAt: deadline.toISOString().replace(/\.\d+Z$/, 'Z') }));
    const exact = new Date(deadline.toISOString().replace(/\.\d+Z$/, 'Z'));
    await waitReady('short');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    const client = new pg.Client(pgConfig({ database: DB, user: ALICE, password: ALICE_PW }));
    await client.connect();
    try {
      // One session, polled: PostgreSQL checks membership at every statement, so a revoke shows at once.
      let lastAllowed = 0;
      let deniedAt = 0;
      while (Date.now() < exact.getTime() + 5000) {
        const ok = await client.query('SELECT 1 FROM curated.customer_sales LIMIT 1').then(
          () => true,
          () => false,
        );
        if (ok) lastAllowed = Date.now();
        else if (Date.now() >= exact.getTime()) {
          deniedAt = Date.now();
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const lag = deniedAt - exact.getTime();
      console.log(`expiry lag: access denied ${lag} ms after expiresAt (last allowed ${lastAllowed - exact.getTime()} ms)`);
      expect(deniedAt).toBeGreaterThan(0);
      expect(lastAllowed).toBeGreaterThan(exact.getTime() - 1500); // it worked right up to the deadline
      expect(lag).toBeLessThan(1000);
    } finally {
      await client.end();
    }
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'short', NS, 'Expired', 'True');
    expect(condition(obj, 'Ready')).toMatchObject({ status: 'False', reason: 'Expired' });
    expect(Date.parse(String(obj.status?.expiresAt))).toBe(exact.getTime());
    expect(obj.status?.revokedAt).toBeTruthy();
    // Failed, not InProgress forever: wait loops end, and GitOps tools flag a declared grant that ended.
    expect(kstatus(obj)).toMatchObject({ status: 'Failed', message: expect.stringContaining('expired at') });
    expect((await eventsAbout('short')).some((e) => e.reason === 'Expired')).toBe(true);
    expect((await auditRows('short')).map((r) => r.action)).toEqual(expect.arrayContaining(['revoke.membership', 'access.expire']));

    // Moving expiresAt later grants the access again.
    apply(dsa('short', { expiresAt: new Date(Date.now() + 3_600_000).toISOString() }));
    await waitReady('short');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    await deleteAccess('short');
  });

  it('revokes at start-up, before other work, when Steward was down at the deadline', async () => {
    const deadline = new Date(Date.now() + 3000);
    apply(dsa('while-down', { expiresAt: deadline.toISOString() }));
    await waitReady('while-down');
    expect(await steward.stop('SIGTERM')).toBe(0);
    await new Promise((r) => setTimeout(r, Math.max(0, deadline.getTime() - Date.now() + 500)));
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true); // nobody revoked it yet
    // Other work waiting too, listed first (the API lists by name): without the priority it would
    // be done first. One worker, so the order is the queue's order.
    apply(dsa('aaa-pending', { tables: ['other'] }));
    steward = Steward.start({ args: ['--resync', '3s', '--concurrency', '1'] });
    await waitForCondition(DATASET_ACCESS_TYPE, 'while-down', NS, 'Expired', 'True');
    expect(await can('SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
    await waitReady('aaa-pending');
    const work = steward
      .logLines()
      .map((l) => l.audit as { kind?: string; name?: string } | undefined)
      .filter((a) => a?.kind === 'DatasetAccess');
    expect(work[0]?.name).toBe('while-down');
    expect(work.some((a) => a?.name === 'aaa-pending')).toBe(true);
    await deleteAccess('while-down');
    await deleteAccess('aaa-pending');
  });
});

describe('DatasetAccess drift', () => {
  it('revokes an out-of-band GRANT on its group role, and an extra member, and audits what it found', async () => {
    apply(dsa('drifty', {}));
    await waitReady('drifty');
    const role = groupRoleName(NS, 'drifty');
    await asSuperuser((c) =>
      c.query(
        `GRANT USAGE ON SCHEMA raw TO "${role}"; GRANT SELECT ON raw.customers TO "${role}"; CREATE ROLE mallory_${id} NOLOGIN; GRANT "${role}" TO mallory_${id}`,
      ),
    );
    expect(await can('SELECT * FROM raw.customers')).toBe(true);
    await waitFor('the drift to be corrected', async () => (await can('SELECT * FROM raw.customers')) !== true, 15_000);
    const members = await asSuperuser(async (c) =>
      (await c.query(`SELECT pg_get_userbyid(member) AS m FROM pg_auth_members WHERE roleid = $1::regrole`, [role])).rows.map((r) => r.m),
    );
    expect(members).toEqual([READER]);
    const drift = (await auditRows('drifty')).filter((r) => r.action === 'drift_corrected');
    expect(drift.map((r) => r.details.statement)).toEqual(
      expect.arrayContaining([
        `REVOKE SELECT ON TABLE "raw"."customers" FROM "${role}"`,
        `REVOKE "${role}" FROM "mallory_${id}"`,
        `REVOKE USAGE ON SCHEMA "raw" FROM "${role}"`,
      ]),
    );
    expect(JSON.stringify(drift[0]!.details.found)).toContain('raw.customers');
    expect((await eventsAbout('drifty')).some((e) => e.type === 'Warning' && e.reason === 'DriftCorrected')).toBe(true);
    await deleteAccess('drifty');
  });
});

describe('DatasetAccess deletion', () => {
  it('deletionPolicy Orphan leaves the grants in place, audited', async () => {
    apply(dsa('orphan', { deletionPolicy: 'Orphan' }));
    await waitReady('orphan');
    await deleteAccess('orphan');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    expect((await auditRows('orphan')).map((r) => r.action)).toContain('access.orphan');
    await asSuperuser((c) => c.query(`DROP OWNED BY "${groupRoleName(NS, 'orphan')}"; DROP ROLE "${groupRoleName(NS, 'orphan')}"`));
  });

  it("the schema's usage role goes with the schema's last access, and comes back with the next", async () => {
    const usage = usageRoleName(DB, 'solo');
    const usageOf = () =>
      asSuperuser(
        async (c) =>
          (
            await c.query(
              `SELECT r.rolname, has_schema_privilege(r.oid, 'solo', 'USAGE') AS usage,
                      (SELECT count(*)::int FROM pg_auth_members m WHERE m.roleid = r.oid) AS members
                 FROM pg_roles r WHERE r.rolname = $1`,
              [usage],
            )
          ).rows,
      );
    apply(dsa('solo-a', { schema: 'solo', tables: ['t'] }));
    apply(dsa('solo-b', { schema: 'solo', tables: ['t'] }));
    await waitReady('solo-a');
    await waitReady('solo-b');
    expect(await usageOf()).toEqual([{ rolname: usage, usage: true, members: 2 }]);
    expect(await can('SELECT x FROM solo.t')).toBe(true);
    await deleteAccess('solo-a');
    expect(await usageOf()).toEqual([{ rolname: usage, usage: true, members: 1 }]);
    expect(await can('SELECT x FROM solo.t')).toBe(true);
    await deleteAccess('solo-b');
    expect(await usageOf()).toEqual([]);
    expect(await can('SELECT x FROM solo.t')).toMatch(/permission denied/);
    expect((await auditRows('solo-b')).map((r) => r.action)).toEqual(expect.arrayContaining(['usage_role.revoke', 'usage_role.drop']));
    apply(dsa('solo-c', { schema: 'solo', tables: ['t'] }));
    await waitReady('solo-c');
    expect(await usageOf()).toEqual([{ rolname: usage, usage: true, members: 1 }]);
    expect(await can('SELECT x FROM solo.t')).toBe(true);
    await deleteAccess('solo-c');
    expect(await usageOf()).toEqual([]);
  });

  it("the schema's last two accesses deleted at once still take the usage role with them", async () => {
    const usage = usageRoleName(DB, 'solo');
    for (let round = 0; round < 3; round++) {
      const pair = [`last-${round}-a`, `last-${round}-b`];
      for (const name of pair) apply(dsa(name, { schema: 'solo', tables: ['t'] }));
      for (const name of pair) await waitReady(name);
      await Promise.all(pair.map((name) => deleteAccess(name)));
      const left = await asSuperuser(async (c) => (await c.query(`SELECT rolname FROM pg_roles WHERE rolname = $1`, [usage])).rows);
      expect(left, `round ${round}`).toEqual([]);
    }
  });

  it("an access joining a schema while its last access goes keeps its USAGE: the drop and the join take the usage role's lock", async () => {
    const usage = usageRoleName(DB, 'solo');
    for (let round = 0; round < 4; round++) {
      const [leaving, joining] = [`race-${round}-a`, `race-${round}-b`];
      apply(dsa(leaving, { schema: 'solo', tables: ['t'] }));
      await waitReady(leaving);
      // At once: the schema's only access goes while another arrives.
      await Promise.all([deleteAccess(leaving), Promise.resolve().then(() => apply(dsa(joining, { schema: 'solo', tables: ['t'] })))]);
      await waitReady(joining);
      const [row] = await asSuperuser(
        async (c) =>
          (
            await c.query(
              `SELECT has_schema_privilege(r.oid, 'solo', 'USAGE') AS usage, pg_has_role($2, r.oid, 'MEMBER') AS joined
                 FROM pg_roles r WHERE r.rolname = $1`,
              [usage, groupRoleName(NS, joining)],
            )
          ).rows,
      );
      expect(row, `round ${round}`).toEqual({ usage: true, joined: true });
      expect(await can('SELECT x FROM solo.t')).toBe(true);
      await deleteAccess(joining);
    }
    expect(steward.logLines().filter((l) => l.level === 'error' && /race-/.test(JSON.stringify(l)))).toEqual([]);
  });
});

describe('DatasetAccess at scale', () => {
  it('200 accesses on one table, applied at once, all become Ready with no errors; idle, their resyncs read no Secret, write nothing and open no transaction per access', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `many-${i}`);
    const started = Date.now();
    const r = kubectl(['apply', '-f', '-'], names.map((n) => dsa(n, {})).join('\n---\n'));
    expect(r.code, r.stderr).toBe(0);
    await waitFor(
      '200 accesses Ready',
      async () => {
        const list = await kube.list<Conditioned>(DATASET_ACCESS_TYPE, { namespace: NS });
        const ready = list.items.filter((a) => a.metadata.name.startsWith('many-') && condition(a, 'Ready')?.status === 'True');
        return ready.length === 200;
      },
      120_000,
      250,
    );
    console.log(`200 DatasetAccess on one table Ready after ${Date.now() - started} ms`);
    const errors = steward.logLines().filter((l) => l.level === 'error' || String(l.err ?? '').includes('concurrently'));
    expect(errors).toEqual([]);
    const acl = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT count(*)::int AS n FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = 'curated.customer_sales'::regclass AND pg_get_userbyid(a.grantee) LIKE 'stw\\_${NS.replace(/-/g, '\\_')}\\_many%'`,
          )
        ).rows[0].n,
    );
    expect(acl).toBe(200);

    // Idle: two resyncs (3 s here) of every access read no Secret and write nothing to the API server
    // (the Lease aside), and cost the warehouse a few transactions in all, not one per access (the
    // batched read ahead); the reconciles did run. PostgreSQL counts transactions in
    // pg_stat_database, which a backend flushes when idle, at most every 10 s: hence the waits.
    const counters = async () => {
      const text = await steward.metricsText();
      return {
        secretGets: sumMetric(text, SECRET_GETS),
        writes: sumMetric(text, API_WRITES),
        reconciles: sumMetric(text, reconcilesOf('datasetaccess')),
        writeLines: [...text.matchAll(API_WRITES)].map((m) => m[0]),
      };
    };
    const transactions = () =>
      asSuperuser(async (c) => {
        await c.query('SELECT pg_stat_clear_snapshot()');
        return (await c.query('SELECT (xact_commit + xact_rollback)::int AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0].n as number;
      });
    await new Promise((r) => setTimeout(r, 11_000)); // the last status writes and events land; the grants' transactions are counted
    const before = { ...(await counters()), transactions: await transactions() };
    expect(before.secretGets).toBeGreaterThan(0); // the counter counts: the first reads were GETs
    await new Promise((r) => setTimeout(r, 7000));
    const after = await counters();
    await new Promise((r) => setTimeout(r, 11_000)); // the window's transactions are flushed to pg_stat_database
    // The flush wait has at most four more resyncs in it: counted, as if they were in the window.
    const xacts = (await transactions()) - before.transactions;
    const resyncs = Math.ceil((18_000 / 3000) * 1.1);
    console.log(`idle: ${after.reconciles - before.reconciles} reconciles, ${xacts} warehouse transactions over about ${resyncs} resyncs`);
    if (after.writes !== before.writes) console.log(`idle writes, before: ${before.writeLines.join('; ')}; after: ${after.writeLines.join('; ')}`);
    expect(after.reconciles - before.reconciles).toBeGreaterThanOrEqual(400);
    expect({ secretGets: after.secretGets - before.secretGets, writes: after.writes - before.writes }).toEqual({ secretGets: 0, writes: 0 });
    // A transaction per access per resync would be 400 in the window alone; a batched resync is a few per Warehouse.
    expect(xacts).toBeLessThanOrEqual(resyncs * 6);

    const deleting = Date.now();
    const del = kubectl(['delete', 'dsa', '-n', NS, ...names, '--wait=false']);
    expect(del.code, del.stderr).toBe(0);
    await waitFor(
      '200 accesses deleted',
      async () => (await kube.list<Conditioned>(DATASET_ACCESS_TYPE, { namespace: NS })).items.every((a) => !a.metadata.name.startsWith('many-')),
      120_000,
      250,
    );
    console.log(`200 DatasetAccess deleted after ${Date.now() - deleting} ms`);
  });
});

/** Everything an access could change: roles, memberships, and every ACL in the database. */
async function catalogSnapshot(): Promise<string> {
  return asSuperuser(async (c) =>
    JSON.stringify(
      (
        await c.query(`
    SELECT (SELECT json_agg(rolname ORDER BY rolname) FROM pg_roles) AS roles,
           (SELECT json_agg(roleid::regrole::text || '>' || member::regrole::text ORDER BY 1) FROM pg_auth_members) AS members,
           (SELECT json_agg(oid::regclass::text || '=' || coalesce(relacl::text, '') ORDER BY 1) FROM pg_class WHERE relnamespace::regnamespace::text IN ('raw', 'curated')) AS acls,
           (SELECT json_agg(nspname || '=' || coalesce(nspacl::text, '') ORDER BY 1) FROM pg_namespace) AS schemas,
           (SELECT count(*) FROM pg_default_acl) AS defaults`)
      ).rows[0],
    ),
  );
}

describe('hostile identifiers', () => {
  it('are refused at admission, and the database is left exactly as it was', async () => {
    const before = await catalogSnapshot();
    const hostile = [
      { role: `${READER}"; DROP TABLE raw.orders; --` },
      { role: 'x/*comment*/' },
      { schema: 'curated; GRANT ALL ON raw.customers TO public' },
      { tables: ["customer_sales'"] },
      { tables: ['custömer_sales'] },
      { tables: ['t'.repeat(64)] },
      { role: 'r'.repeat(64) },
      { tables: ['ｃｕｓｔｏｍｅｒ'] },
      { privileges: ['SELECT, DELETE'] },
      { privileges: ['ALL'] },
    ];
    for (const [i, spec] of hostile.entries()) {
      const r = kubectl(['apply', '-f', '-'], dsa(`hostile-${i}`, spec as never));
      expect(r.code, `hostile ${JSON.stringify(spec)} was accepted`).not.toBe(0);
      expect(r.stderr).toMatch(/spec\.(principal\.role|warehouse\.(schema|tables\[0\]|privileges\[0\]))/);
    }
    // YAML that quotes the identifier reaches the API server as written, and is refused all the same.
    const quoted = kubectl(['apply', '-f', '-'], dsa('hostile-quoted', { role: '"a\\"b"' }));
    expect(quoted.code).not.toBe(0);
    expect(await catalogSnapshot()).toBe(before);
  });
});

describe('steward plan', () => {
  function plan(yaml: string): { code: number; out: string; err: string } {
    const dir = mkdtempSync(join(tmpdir(), 'plan-'));
    writeFileSync(join(dir, 'dsa.yaml'), yaml);
    const r = spawnSync(join(REPO, 'bin/steward'), ['plan', '-f', join(dir, 'dsa.yaml')], { encoding: 'utf8', env: process.env });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  }

  it('prints the SQL an access would run, without running it, and nothing once it is granted', async () => {
    const before = await catalogSnapshot();
    const first = plan(dsa('planned', {}));
    expect(first.code, first.err).toBe(0);
    const role = groupRoleName(NS, 'planned');
    expect(first.out).toContain(`CREATE ROLE "${role}" NOLOGIN INHERIT;`);
    expect(first.out).toContain(`GRANT SELECT ON TABLE "curated"."customer_sales" TO "${role}";`);
    expect(first.out).toContain(`GRANT "${role}" TO "${READER}";`);
    expect(first.out).toMatch(/policy: allowed by accessPolicy\[0\]/);
    expect(await catalogSnapshot()).toBe(before); // read-only

    apply(dsa('planned', {}));
    await waitReady('planned');
    const again = plan(dsa('planned', {}));
    expect(again.code).toBe(0);
    expect(again.out).toContain('no changes: the warehouse already matches');
    const wider = plan(dsa('planned', { privileges: ['SELECT', 'INSERT'] }));
    expect(wider.out).toContain(`GRANT INSERT ON TABLE "curated"."customer_sales" TO "${role}";`);
    expect(wider.out).not.toContain('CREATE ROLE');
    await deleteAccess('planned');
  });

  it('exits non-zero on a policy denial, so it can gate a pull request', () => {
    const r = plan(dsa('planned-raw', { schema: 'raw', tables: ['customers'] }));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/policy: DENIED: namespace .* may not request schema raw/);
    expect(r.out).not.toMatch(/GRANT/);
  });
});

describe('DatasetAccess failures', () => {
  it('a statement the warehouse refuses is audited as a failure in the table, and nothing is half-granted', async () => {
    const limited = `steward_limited_${id}`;
    const pw = randomPassword();
    await asSuperuser((c) =>
      c.query(`CREATE ROLE ${limited} LOGIN PASSWORD '${pw}';
      GRANT USAGE ON SCHEMA steward TO ${limited}; GRANT INSERT ON steward.audit_log TO ${limited};
      GRANT USAGE ON SEQUENCE steward.audit_log_id_seq TO ${limited}; GRANT USAGE ON SCHEMA curated TO ${limited}`),
    );
    const lim = `${WH}-limited`;
    await putSecret('steward-system', `${lim}-creds`, { username: limited, password: pw });
    apply(warehouse(POLICY).replace(`name: ${WH}}`, `name: ${lim}}`).replace(`name: ${WH}-creds`, `name: ${lim}-creds`));
    await waitForCondition(WAREHOUSE_TYPE, lim, undefined, 'Ready', 'True');
    apply(dsa('refused', {}).replace(`name: ${WH}\n`, `name: ${lim}\n`));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'refused', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(obj, 'Ready')?.message).toMatch(/may not change role:stw_dsa_.*: permission denied to create role\. Nothing was changed/);
    expect((await eventsAbout('refused')).some((e) => e.type === 'Warning' && e.reason === 'InsufficientPrivilege')).toBe(true);
    const failures = (await auditRows('refused')).filter((r) => r.outcome === 'failure');
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures[0]).toMatchObject({
      action: 'reconcile',
      error: expect.stringMatching(/permission denied to create role/),
      request_id: expect.any(String),
    });
    expect(await asSuperuser(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [groupRoleName(NS, 'refused')])).rowCount)).toBe(0);
    // Deleting it while nothing was granted completes.
    await deleteAccess('refused');
    await kube.delete(WAREHOUSE_TYPE, lim);
  });

  it('a finalizer removed by hand does not leave the grant behind: the access is revoked from its last state once it is gone', async () => {
    apply(dsa('forced', {}));
    await waitReady('forced');
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true);
    // What people do when a deletion seems stuck: take the finalizer off, then delete.
    await kube.patch(DATASET_ACCESS_TYPE, 'forced', NS, { metadata: { finalizers: null } }, 'merge');
    await kube.delete(DATASET_ACCESS_TYPE, 'forced', NS);
    await waitFor(
      'the forced access revoked',
      async () => (await asSuperuser(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [groupRoleName(NS, 'forced')])).rowCount)) === 0,
      15_000,
    );
    expect(await can('SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
    expect((await auditRows('forced')).some((r) => r.action === 'role.drop' && r.outcome === 'success')).toBe(true);
    expect(steward.logLines().some((l) => l.msg === 'cleaned up after deletion' && l.name === 'forced')).toBe(true);
  });

  it('deletion while the warehouse is unreachable keeps the finalizer and says so, then completes once it is back', async () => {
    apply(dsa('stuck', {}));
    await waitReady('stuck');
    const port = Number(process.env.PGPORT);
    apply(warehouse(POLICY).replace(`port: ${port}`, 'port: 1'));
    await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'False', 'Unreachable');
    await kube.delete(DATASET_ACCESS_TYPE, 'stuck', NS);
    const obj = await waitFor('the finalizer to report', async () => {
      const o = await get('stuck');
      return condition(o, 'Ready')?.reason === 'RevokeFailed' ? o : undefined;
    });
    expect(obj.metadata.finalizers).toContain('steward.dev/revoke-access');
    expect(condition(obj, 'Ready')?.message).toMatch(/cannot revoke yet: .*ECONNREFUSED|cannot revoke yet/);
    expect(await can('SELECT * FROM curated.customer_sales')).toBe(true); // still granted: nothing lost silently
    apply(warehouse(POLICY));
    await waitFor(
      'stuck to be gone',
      async () =>
        kube.get(DATASET_ACCESS_TYPE, 'stuck', NS).then(
          () => false,
          () => true,
        ),
      60_000,
    );
    expect(await can('SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
  });
});

describe('DatasetAccess never leaks', () => {
  it('no password appears in logs, events or statuses', async () => {
    const logs = steward.logs();
    const events = await allEventsText();
    const statuses = JSON.stringify((await kube.list<Conditioned>(DATASET_ACCESS_TYPE)).items.map((a) => a.status));
    for (const secret of [process.env.PGPASSWORD!, ALICE_PW]) {
      expect(logs.includes(secret)).toBe(false);
      expect(events.includes(secret)).toBe(false);
      expect(statuses.includes(secret)).toBe(false);
    }
  });
});
