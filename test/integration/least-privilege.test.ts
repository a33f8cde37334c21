// Steward as it runs in production: a login that is not a superuser (as on RDS or Cloud SQL), holding
// only what docs/warehouse.md lists. DatasetAccess and MaskedView must work end to end with it, and
// what it was not given must end in a condition that says so, not in a grant.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { MASKED_VIEW_TYPE, readerRoleName } from '../../src/controllers/maskedview.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { groupRoleName } from '../../src/governance/grants.ts';
import { observeRole, observeRoles } from '../../src/drivers/postgres/grants.ts';
import {
  REPO,
  Steward,
  apply,
  condition,
  ensureNamespace,
  kube,
  maskedViewYaml,
  putSecret,
  randomPassword,
  stackCa,
  unique,
  waitFor,
  waitForCondition,
  warehouseYaml,
  withPg,
  type Conditioned,
} from './harness.ts';

const id = unique('x').slice(2).replace(/-/g, '');
const DB = `lp_${id}`;
const AUDITED_DB = `lp_audited_${id}`;
const AUDITED_WH = `wh-lp-audited-${id}`;
const AUDITOR = `auditor_${id}`;
const NS = `lp-${id}`;
const WH = `wh-lp-${id}`;
const STEWARD = `steward_${id}`;
const OWNER = `data_owner_${id}`;
const READER = `analytics_reader_${id}`;
const ALICE = `alice_${id}`;
const BI = `bi_tool_${id}`;
const BOB = `bob_${id}`;
const PW = randomPassword();
let steward: Steward;

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });
async function as(user: string, sql: string): Promise<Record<string, any>[] | string> {
  return withPg(
    async (c) =>
      c.query(sql).then(
        (r) => r.rows,
        (e: Error) => e.message,
      ),
    { database: DB, user, password: PW },
  );
}
const asAlice = (sql: string) => as(ALICE, sql);

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) =>
    c.query(`
    CREATE ROLE ${OWNER} NOLOGIN;
    CREATE SCHEMA raw AUTHORIZATION ${OWNER}; CREATE SCHEMA curated AUTHORIZATION ${OWNER};
    SET ROLE ${OWNER};
    CREATE TABLE raw.customers (id int PRIMARY KEY, email text, phone text, country text);
    CREATE TABLE raw.orders (id int PRIMARY KEY, customer_id int, quantity int, unit_price numeric(10,2));
    CREATE TABLE raw.payroll (id int PRIMARY KEY, salary int);
    CREATE TABLE raw.refunds (id int PRIMARY KEY, amount int);
    INSERT INTO raw.customers VALUES (1, 'alice@example.com', '555-010-1234', 'US'), (2, 'bob@example.org', '555-010-5678', 'US');
    INSERT INTO raw.orders VALUES (100, 1, 2, 9.50), (101, 2, 1, 120.00);
    RESET ROLE;
    -- The recipe in docs/warehouse.md, word for word.
    CREATE ROLE ${STEWARD} LOGIN PASSWORD '${PW}' CREATEROLE;
    GRANT CREATE ON DATABASE ${DB} TO ${STEWARD};
    GRANT USAGE ON SCHEMA raw TO ${STEWARD} WITH GRANT OPTION;
    GRANT SELECT, INSERT ON raw.customers, raw.orders TO ${STEWARD} WITH GRANT OPTION;
    GRANT USAGE, CREATE ON SCHEMA curated TO ${STEWARD} WITH GRANT OPTION;
    -- Beyond the recipe: SELECT on refunds may be passed on, INSERT may not.
    GRANT SELECT ON raw.refunds TO ${STEWARD} WITH GRANT OPTION;
    GRANT INSERT ON raw.refunds TO ${STEWARD};
    -- People.
    CREATE ROLE ${READER} NOLOGIN;
    CREATE ROLE ${ALICE} LOGIN PASSWORD '${PW}';
    CREATE ROLE ${BI} NOLOGIN;
    CREATE ROLE ${BOB} LOGIN PASSWORD '${PW}' IN ROLE ${BI};
  `),
  );
  await ensureNamespace(NS);
  await putSecret('steward-system', `${WH}-ca`, { 'ca.crt': stackCa() });
  await putSecret('steward-system', `${WH}-creds`, { username: STEWARD, password: PW });
  apply(
    warehouseYaml({
      name: WH,
      database: DB,
      caSecret: `${WH}-ca`,
      credsSecret: `${WH}-creds`,
      policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [raw, curated]\n      privileges: [SELECT, INSERT]`,
    }),
  );
  steward = Steward.start({ args: ['--resync', '2s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
});

afterAll(async () => {
  for (const type of [DATASET_ACCESS_TYPE, MASKED_VIEW_TYPE]) {
    const items = await kube.list<Conditioned>(type, { namespace: NS }).catch(() => ({ items: [] as Conditioned[] }));
    for (const o of items.items) await kube.delete(type, o.metadata.name, NS).catch(() => undefined);
    await waitFor('objects to be gone', async () => (await kube.list(type, { namespace: NS })).items.length === 0, 30_000).catch(() => undefined);
  }
  await kube.delete(WAREHOUSE_TYPE, AUDITED_WH).catch(() => undefined);
  await steward?.stop();
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

const access = (name: string, tables: string[], privileges = ['SELECT'], schema = 'raw', role = READER) => `
apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${NS}}
spec:
  principal: {role: ${role}}
  warehouse: {name: ${WH}, schema: ${schema}, tables: ${JSON.stringify(tables)}, privileges: ${JSON.stringify(privileges)}}
  justification: least-privilege test
`;

const maskedView = (name: string, body: string) => maskedViewYaml({ name, namespace: NS, warehouse: WH, body, readers: [READER] });
async function deleteAndWait(type: typeof DATASET_ACCESS_TYPE, name: string): Promise<void> {
  await kube.delete(type, name, NS);
  await waitFor(`${type.kind} ${name} to be gone`, async () =>
    kube.get(type, name, NS).then(
      () => false,
      () => true,
    ),
  );
}

describe('Steward as a login without superuser', () => {
  it('runs the Warehouse: TLS verified and the audit table created by that login', async () => {
    const owner = await asSuperuser(
      async (c) => (await c.query(`SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE oid = 'steward.audit_log'::regclass`)).rows[0].o,
    );
    expect(owner).toBe(STEWARD);
    const superuser = await asSuperuser(async (c) => (await c.query('SELECT rolsuper FROM pg_roles WHERE rolname = $1', [STEWARD])).rows[0].rolsuper);
    expect(superuser).toBe(false);
  });

  it('grants and revokes a DatasetAccess: the principal reads the table, then cannot', async () => {
    await asSuperuser((c) => c.query(`GRANT ${READER} TO ${ALICE}`));
    apply(access('orders', ['orders']));
    await waitForCondition(DATASET_ACCESS_TYPE, 'orders', NS, 'Ready', 'True', 'Granted');
    expect(await asAlice('SELECT id FROM raw.orders ORDER BY id')).toEqual([{ id: 100 }, { id: 101 }]);
    expect(await asAlice('SELECT * FROM raw.customers')).toMatch(/permission denied/);
    await deleteAndWait(DATASET_ACCESS_TYPE, 'orders');
    expect(await asAlice('SELECT id FROM raw.orders')).toMatch(/permission denied/);
  });

  it('does not report drift corrected when PostgreSQL would not let it revoke (a warning, not an error)', async () => {
    await asSuperuser((c) => c.query(`GRANT ${READER} TO ${ALICE}`));
    apply(access('drift', ['orders']));
    await waitForCondition(DATASET_ACCESS_TYPE, 'drift', NS, 'Ready', 'True', 'Granted');
    // Out of band, by the superuser: Steward's login is not the grantor, so its REVOKE revokes nothing.
    const group = groupRoleName(NS, 'drift');
    await asSuperuser((c) => c.query(`GRANT SELECT ON raw.customers TO "${group}"`));
    const stuck = await waitForCondition(DATASET_ACCESS_TYPE, 'drift', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(stuck, 'Ready')?.message).toMatch(
      /may not change raw\.customers: PostgreSQL left it unchanged \(REVOKE SELECT ON TABLE "raw"\."customers"/,
    );
    // What the status says is what the catalog says: the grant is still there.
    expect(await asAlice('SELECT count(*)::int AS n FROM raw.customers')).toEqual([{ n: 2 }]);
    await asSuperuser((c) => c.query(`REVOKE SELECT ON raw.customers FROM "${group}"`));
    await waitForCondition(DATASET_ACCESS_TYPE, 'drift', NS, 'Ready', 'True', 'Granted');
    expect(await asAlice('SELECT * FROM raw.customers')).toMatch(/permission denied/);
    await deleteAndWait(DATASET_ACCESS_TYPE, 'drift');
  });

  it('refuses, with a condition naming the table, a grant it was not given the right to make', async () => {
    apply(access('payroll', ['payroll']));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'payroll', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(obj, 'Ready')?.message).toContain('raw.payroll');
    expect(await asAlice('SELECT * FROM raw.payroll')).toMatch(/permission denied/);
    await deleteAndWait(DATASET_ACCESS_TYPE, 'payroll');
  });

  it('does not report a grant PostgreSQL carried out only in part (a warning, not an error)', async () => {
    await asSuperuser((c) => c.query(`GRANT ${READER} TO ${ALICE}`));
    apply(access('refunds', ['refunds'], ['SELECT', 'INSERT']));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'refunds', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(obj, 'Ready')?.message).toMatch(/raw\.refunds: not all privileges were granted/);
    // Rolled back whole: not even the SELECT PostgreSQL would have granted.
    expect(await asAlice('SELECT * FROM raw.refunds')).toMatch(/permission denied/);
    await deleteAndWait(DATASET_ACCESS_TYPE, 'refunds');
  });

  it('grants tables: ["*"] (future tables too) only once the login is a member of the tables\' owner', async () => {
    await asSuperuser((c) => c.query(`GRANT ${READER} TO ${ALICE}`));
    apply(access('everything', ['*']));
    const refused = await waitForCondition(DATASET_ACCESS_TYPE, 'everything', NS, 'Ready', 'False', 'InsufficientPrivilege');
    // Every table includes payroll, which the login may not pass on.
    expect(condition(refused, 'Ready')?.message).toMatch(/may not change raw\.(payroll|refunds)|default privileges/);
    expect(await asAlice('SELECT id FROM raw.orders')).toMatch(/permission denied/);
    // What docs/warehouse.md says to do; the next resync grants it.
    await asSuperuser((c) => c.query(`GRANT ${OWNER} TO ${STEWARD}`));
    await waitForCondition(DATASET_ACCESS_TYPE, 'everything', NS, 'Ready', 'True', 'Granted');
    await asSuperuser((c) => c.query(`SET ROLE ${OWNER}; CREATE TABLE raw.later (id int); INSERT INTO raw.later VALUES (7)`));
    expect(await asAlice('SELECT id FROM raw.later')).toEqual([{ id: 7 }]);
    await deleteAndWait(DATASET_ACCESS_TYPE, 'everything');
    expect(await asAlice('SELECT id FROM raw.later')).toMatch(/permission denied/);
    await asSuperuser((c) => c.query(`REVOKE ${OWNER} FROM ${STEWARD}`));
  });

  it('refuses a MaskedView over a table it may not pass on, and changes nothing', async () => {
    apply(
      maskedView(
        'pay',
        `  view: {schema: curated, name: pay}
  from: {table: raw.payroll, alias: p}
  columns: [{name: id, expr: p.id}, {name: salary, expr: p.salary, mask: redact}]`,
      ),
    );
    const obj = await waitForCondition(MASKED_VIEW_TYPE, 'pay', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(obj, 'Ready')?.message).toContain('raw.payroll');
    expect(await asSuperuser(async (c) => (await c.query(`SELECT to_regclass('curated.pay') AS v`)).rows[0].v)).toBeNull();
    await deleteAndWait(MASKED_VIEW_TYPE, 'pay');
  });

  const SALES = `  view: {schema: curated, name: sales}
  from: {table: raw.orders, alias: o}
  joins: [{table: raw.customers, alias: c, on: c.id = o.customer_id, type: inner}]
  columns:
    - {name: order_id, expr: o.id}
    - {name: email, expr: c.email, mask: email}
    - {name: email_hash, expr: c.email, mask: hash}`;

  it('removes the readers while the reader role holds what the login may not revoke, and gives the view back once it is revoked', async () => {
    apply(
      maskedView(
        'drift',
        `  view: {schema: curated, name: drift}
  from: {table: raw.customers, alias: c}
  columns: [{name: id, expr: c.id}, {name: email, expr: c.email, mask: email}]`,
      ),
    );
    await waitForCondition(MASKED_VIEW_TYPE, 'drift', NS, 'Ready', 'True', 'ViewReady');
    await asSuperuser((c) => c.query(`GRANT ${READER} TO ${ALICE}`));
    expect(await asAlice('SELECT email FROM curated.drift WHERE id = 1')).toEqual([{ email: 'al***@example.com' }]);
    // Granted by an administrator: the login holds nothing on raw.payroll, and did not grant the USAGE.
    const role = readerRoleName(NS, 'drift');
    await asSuperuser((c) => c.query(`GRANT USAGE ON SCHEMA raw TO ${role}; GRANT SELECT ON raw.payroll TO ${role}`));
    const obj = await waitForCondition(MASKED_VIEW_TYPE, 'drift', NS, 'Ready', 'False', 'ReaderRoleDrift', 20_000);
    expect(condition(obj, 'Ready')?.message).toContain('SELECT on raw.payroll');
    expect(condition(obj, 'Ready')?.message).toContain('the readers were removed until it is revoked');
    expect(await asAlice('SELECT 1 FROM raw.payroll')).toMatch(/permission denied/);
    expect(await asAlice('SELECT 1 FROM curated.drift')).toMatch(/permission denied/);
    await asSuperuser((c) => c.query(`REVOKE SELECT ON raw.payroll FROM ${role}; REVOKE USAGE ON SCHEMA raw FROM ${role}`));
    await waitForCondition(MASKED_VIEW_TYPE, 'drift', NS, 'Ready', 'True', 'ViewReady', 20_000);
    expect(await asAlice('SELECT email FROM curated.drift WHERE id = 1')).toEqual([{ email: 'al***@example.com' }]);
    await deleteAndWait(MASKED_VIEW_TYPE, 'drift');
  });

  it('builds a MaskedView: readers see masked values, the raw tables stay closed, and deletion drops it', async () => {
    apply(maskedView('sales', SALES));
    await waitForCondition(MASKED_VIEW_TYPE, 'sales', NS, 'Ready', 'True', 'ViewReady');
    const rows = (await asAlice('SELECT order_id, email, email_hash FROM curated.sales ORDER BY order_id')) as Record<string, any>[];
    expect(rows[0]).toMatchObject({ order_id: 100, email: 'al***@example.com' });
    expect(rows[0]!.email_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await asAlice('SELECT * FROM raw.customers')).toMatch(/permission denied/);

    // A DatasetAccess on the view (granted by a login that does not own it), kept across a change
    // that re-creates the view, and revoked on deletion.
    apply(access('bi-sales', ['sales'], ['SELECT'], 'curated', BI));
    await waitForCondition(DATASET_ACCESS_TYPE, 'bi-sales', NS, 'Ready', 'True', 'Granted');
    expect(await as(BOB, 'SELECT email FROM curated.sales ORDER BY order_id LIMIT 1')).toEqual([{ email: 'al***@example.com' }]);
    apply(
      maskedView(
        'sales',
        `${SALES}
    - {name: quantity, expr: o.quantity}`,
      ),
    );
    await waitFor('the view to have its new column', async () => Array.isArray(await as(BOB, 'SELECT quantity FROM curated.sales')));
    await deleteAndWait(DATASET_ACCESS_TYPE, 'bi-sales');
    expect(await as(BOB, 'SELECT 1 FROM curated.sales')).toMatch(/permission denied/);
    expect(await asAlice('SELECT quantity FROM curated.sales ORDER BY order_id LIMIT 1')).toEqual([{ quantity: 2 }]);

    await deleteAndWait(MASKED_VIEW_TYPE, 'sales');
    const left = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT to_regclass('curated.sales') AS v, (SELECT count(*)::int FROM pg_roles WHERE rolname LIKE 'stw\\_mv%' AND shobj_description(oid, 'pg_authid') LIKE $1) AS roles`,
            [`%${NS}%`],
          )
        ).rows[0],
    );
    expect(left).toEqual({ v: null, roles: 0 });
  });
});

describe("an audit trail Steward's login cannot rewrite", () => {
  const asAuditor = (sql: string) => withPg((c) => c.query(`SET ROLE ${AUDITOR}; ${sql}`), { database: AUDITED_DB });
  const asSteward = (sql: string) =>
    withPg(
      async (c) =>
        c.query(sql).then(
          () => 'ok',
          (e: Error) => e.message,
        ),
      { database: AUDITED_DB, user: STEWARD, password: PW },
    );

  it('is created by another role from `steward audit-table`; Steward appends to it and can do nothing else', async () => {
    await withPg((c) => c.query(`CREATE DATABASE ${AUDITED_DB}`));
    await withPg((c) => c.query(`CREATE ROLE ${AUDITOR} NOLOGIN; GRANT CREATE ON DATABASE ${AUDITED_DB} TO ${AUDITOR}`), { database: AUDITED_DB });
    const printed = spawnSync(join(REPO, 'bin/steward'), ['audit-table', '--writer', STEWARD], { encoding: 'utf8', env: process.env });
    expect(printed.status, printed.stderr).toBe(0);
    const [ddl, grants] = printed.stdout.split("-- Steward's login appends");
    await asAuditor(ddl!);

    // Without the grants Steward says which ones it needs, and does not take the Warehouse into use.
    apply(
      warehouseYaml({
        name: AUDITED_WH,
        database: AUDITED_DB,
        caSecret: `${WH}-ca`,
        credsSecret: `${WH}-creds`,
        policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [raw, curated]`,
      }),
    );
    const unusable = await waitForCondition(WAREHOUSE_TYPE, AUDITED_WH, undefined, 'Ready', 'False', 'AuditTableUnavailable');
    expect(condition(unusable, 'Ready')?.message).toContain(`GRANT USAGE ON SEQUENCE steward.audit_log_id_seq TO "${STEWARD}";`);

    await asAuditor(grants!.slice(grants!.indexOf('\n') + 1));
    await waitForCondition(WAREHOUSE_TYPE, AUDITED_WH, undefined, 'Ready', 'True', 'Connected');
    const written = await withPg(async (c) => (await c.query(`SELECT action FROM steward.audit_log WHERE name = $1`, [AUDITED_WH])).rows.map((r) => r.action), {
      database: AUDITED_DB,
    });
    expect(written).toContain('warehouse.connect');
    expect(await asSteward('DELETE FROM steward.audit_log')).toMatch(/permission denied/);
    expect(await asSteward('ALTER TABLE steward.audit_log DISABLE TRIGGER ALL')).toMatch(/must be owner/);
    expect(await asSteward('DROP TABLE steward.audit_log')).toMatch(/must be owner/);

    // MaskedView hash keys still find a home in the auditor's schema (the last printed grant).
    await withPg(
      (c) =>
        c.query(`CREATE SCHEMA raw; CREATE SCHEMA curated; CREATE TABLE raw.people (id int, email text);
      INSERT INTO raw.people VALUES (1, 'alice@example.com');
      GRANT USAGE ON SCHEMA raw TO ${STEWARD} WITH GRANT OPTION; GRANT SELECT ON raw.people TO ${STEWARD} WITH GRANT OPTION;
      GRANT USAGE, CREATE ON SCHEMA curated TO ${STEWARD} WITH GRANT OPTION`),
      { database: AUDITED_DB },
    );
    // Without CREATE on this database Steward cannot install pgcrypto, and says so.
    apply(
      maskedViewYaml({
        name: 'hashed',
        namespace: NS,
        warehouse: AUDITED_WH,
        readers: [READER],
        body: `  view: {schema: curated, name: hashed}
  from: {table: raw.people, alias: p}
  columns: [{name: id, expr: p.id}, {name: email, expr: p.email, mask: hash}]`,
      }),
    );
    const refused = await waitForCondition(MASKED_VIEW_TYPE, 'hashed', NS, 'Ready', 'False', 'InsufficientPrivilege');
    expect(condition(refused, 'Ready')?.message).toContain('permission denied to create extension "pgcrypto"');
    await withPg((c) => c.query('CREATE EXTENSION pgcrypto'), { database: AUDITED_DB });
    await waitForCondition(MASKED_VIEW_TYPE, 'hashed', NS, 'Ready', 'True', 'ViewReady');
    await deleteAndWait(MASKED_VIEW_TYPE, 'hashed');
  });
});

describe("the batched read ahead and a reconcile's own read", () => {
  it('observe the same facts, field for field, for every kind of group role', async () => {
    const g = (n: string) => `stw_agree_${id}_${n}`;
    await asSuperuser((c) =>
      c.query(`
        CREATE ROLE ${g('full')} NOLOGIN CREATEDB; COMMENT ON ROLE ${g('full')} IS 'managed by steward: test';
        CREATE ROLE ${g('usage')} NOLOGIN; GRANT USAGE ON SCHEMA curated TO ${g('usage')};
        GRANT SELECT, INSERT ON raw.orders TO ${g('full')}; GRANT SELECT ON raw.customers TO ${g('full')};
        GRANT USAGE ON SCHEMA raw TO ${g('full')}; GRANT ${g('usage')} TO ${g('full')}; GRANT ${g('full')} TO ${READER};
        ALTER DEFAULT PRIVILEGES FOR ROLE ${OWNER} IN SCHEMA raw GRANT SELECT ON TABLES TO ${g('full')};
        CREATE ROLE ${g('bare')} NOLOGIN;
        -- The one-role read finds ACLs through pg_shdepend: an ownership, a grant made by another
        -- grantor and a grant on a system catalog must all be there, as in the full scan.
        CREATE ROLE ${g('owns')} NOLOGIN; CREATE TABLE raw.owned_${id} (x int); ALTER TABLE raw.owned_${id} OWNER TO ${g('owns')};
        GRANT SELECT ON raw.owned_${id} TO ${READER}; GRANT SELECT ON pg_catalog.pg_roles TO ${g('owns')};
        GRANT SELECT ON raw.customers TO ${OWNER} WITH GRANT OPTION; SET ROLE ${OWNER}; GRANT SELECT ON raw.customers TO ${g('owns')}; RESET ROLE;`),
    );
    try {
      const targets = [
        { groupRole: g('full'), schema: 'raw', principal: READER, usageRole: g('usage') },
        { groupRole: g('bare'), schema: 'curated', principal: READER, usageRole: g('usage') },
        { groupRole: g('missing'), schema: 'curated', principal: 'nobody_at_all', usageRole: g('absent') },
        { groupRole: g('full'), schema: 'no_such_schema', principal: undefined, usageRole: g('usage') },
        { groupRole: g('owns'), schema: 'raw', principal: READER, usageRole: g('usage') },
      ];
      const [one, many] = await asSuperuser(async (c) => {
        // One after another: a plain client runs one query at a time (queuing more is deprecated in pg).
        const each = [];
        for (const t of targets) each.push(await observeRole(c, t));
        return [each, await observeRoles(c, targets)];
      });
      expect(many).toEqual(one);
      // And the facts are there to agree on: grants, default privileges, members, memberships, attributes.
      expect(one[0]!.state.tablePrivileges).toHaveLength(3);
      expect(one[0]!.state.defaultPrivileges).toHaveLength(1);
      expect(one[0]!.state.members).toEqual([READER]);
      expect(one[0]!.state.memberOf).toEqual([g('usage')]);
      expect(one[0]!.role.dangerousAttributes).toEqual(['CREATEDB']);
      expect(one[0]!.usageRole).toEqual({ exists: true, comment: null, hasUsage: false });
      expect(one[1]!.usageRole.hasUsage).toBe(true);
      expect(one[2]!.role.exists).toBe(false);
      expect(one[3]!.schemaExists).toBe(false);
      expect(one[4]!.state.tablePrivileges.map((p) => `${p.schema}.${p.table}:${p.privilege}`)).toEqual(
        expect.arrayContaining(['pg_catalog.pg_roles:SELECT', 'raw.customers:SELECT', `raw.owned_${id}:SELECT`, `raw.owned_${id}:INSERT`]),
      );
    } finally {
      await asSuperuser((c) =>
        c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${OWNER} IN SCHEMA raw REVOKE SELECT ON TABLES FROM ${g('full')};
          DROP OWNED BY ${g('full')}, ${g('usage')}, ${g('owns')}; DROP ROLE ${g('full')}; DROP ROLE ${g('usage')}; DROP ROLE ${g('bare')};
          REVOKE SELECT ON raw.customers FROM ${OWNER}; DROP ROLE ${g('owns')};`),
      );
    }
  });
});
