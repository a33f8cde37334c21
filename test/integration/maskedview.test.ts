// MaskedView on the real stack, with the guide's mini project (raw.customers, raw.orders) and the
// roles analytics_reader and pii_reader: proven by connecting as members of each.
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { MASKED_VIEW_TYPE, ownerRoleName, readerRoleName } from '../../src/controllers/maskedview.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import {
  REPO,
  Steward,
  apply,
  condition,
  ensureNamespace,
  kube,
  kubectl,
  maskedViewYaml,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('x').slice(2).replace(/-/g, '');
const DB = `mv_${id}`;
const NS = `mv-${id}`;
const WH = `wh-mv-${id}`;
const READER = `analytics_reader_${id}`;
const PII = `pii_reader_${id}`;
const ANA = `ana_${id}`;
const PIA = `pia_${id}`;
const PW = randomPassword();
const lineageFile = join(mkdtempSync(join(tmpdir(), 'openlineage-')), 'events.ndjson');
let steward: Steward;
// An OpenLineage endpoint on loopback, collecting what Steward POSTs.
const received: any[] = [];
const endpoint = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    received.push({ path: req.url, contentType: req.headers['content-type'], event: JSON.parse(body) });
    res.writeHead(201).end();
  });
});

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });
async function query(user: string, sql: string): Promise<Record<string, any>[] | string> {
  return withPg(
    async (c) =>
      c.query(sql).then(
        (r) => r.rows,
        (e: Error) => e.message,
      ),
    { database: DB, user, password: PW },
  );
}

function view(name: string, body: string): string {
  return maskedViewYaml({ name, namespace: NS, warehouse: WH, body, readers: [READER], unmaskedRoles: [PII] });
}
const CUSTOMER_SALES = view(
  'customer-sales',
  `  view: {schema: curated, name: customer_sales}
  from: {table: raw.orders, alias: o}
  joins:
    - {table: raw.customers, alias: c, on: c.id = o.customer_id, type: inner}
  columns:
    - {name: order_id, expr: o.id}
    - {name: email, expr: c.email, mask: email}
    - {name: phone, expr: c.phone, mask: phone}
    - {name: customer_region, expr: c.country}
    - {name: gross_revenue, expr: o.quantity * o.unit_price}
    - {name: created_at, expr: o.created_at}`,
);

const ALL_MASKS = view(
  'all-masks',
  `  view: {schema: curated, name: all_masks}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: id, expr: c.id}
    - {name: email_hash, expr: c.email, mask: hash}
    - {name: phone_last4, expr: c.phone, mask: last4}
    - {name: email_partial, expr: c.email, mask: partial, partial: {keepStart: 1, keepEnd: 4}}
    - {name: phone_redacted, expr: c.phone, mask: redact}
    - {name: email_null, expr: c.email, mask: nullify}
    - {name: signup_month, expr: c.signed_up, mask: truncate, truncate: {unit: month}}
    - {name: country, expr: c.country}
    - {name: id_redacted, expr: c.points, mask: redact}
  kAnonymity: {quasiIdentifiers: [country], k: 2}`,
);

// Two quasi-identifiers, NULLs among them, and phone numbers written every usual way.
const GUARD = view(
  'guard',
  `  view: {schema: curated, name: guard}
  from: {table: raw.people, alias: p}
  columns:
    - {name: id, expr: p.id}
    - {name: phone, expr: p.phone, mask: phone}
    - {name: country, expr: p.country}
    - {name: city, expr: p.city}
  kAnonymity: {quasiIdentifiers: [country, city], k: 2}`,
);

// Masks on a joined table, a hash among them, and the guard: the shape that must still run in
// parallel workers.
const PARALLEL = view(
  'parallel',
  `  view: {schema: curated, name: parallel}
  from: {table: raw.orders, alias: o}
  joins:
    - {table: raw.customers, alias: c, on: c.id = o.customer_id, type: inner}
  columns:
    - {name: order_id, expr: o.id}
    - {name: email, expr: c.email, mask: email}
    - {name: email_hash, expr: c.email, mask: hash}
    - {name: country, expr: c.country}
  kAnonymity: {quasiIdentifiers: [country], k: 2}`,
);

// Everyday analytics SQL: each expression must mean in the view exactly what it means typed into psql.
const EVERYDAY_EXPRESSIONS: [string, string][] = [
  ['region', "CASE WHEN p.country IN ('US', 'CA') THEN 'NA' WHEN p.country NOT IN ('DE') THEN 'other' END"],
  ['austin', "p.city ILIKE 'aus%'"],
  ['not_b', "p.city NOT LIKE 'B%'"],
  ['middle', 'p.id BETWEEN 2 AND 4'],
  ['not_paris', "NULLIF(p.city, 'Paris')"],
  ['same', 'p.country IS NOT DISTINCT FROM p.city'],
  ['id_dec', 'p.id::numeric(10,2) / 3'],
  ['month_start', 'make_date(2026, p.id, 1)'],
  ['year', 'extract(year from make_date(2026, p.id, 1))'],
  ['next_day', "make_date(2026, p.id, 1) + interval '1 day'"],
  ['utc', "(make_date(2026, p.id, 1) + interval '12 hours') AT TIME ZONE 'UTC'"],
  ['code', "lpad(p.id::text, 3, '0') || '-' || upper(coalesce(p.country, 'xx'))"],
];
const EVERYDAY = view(
  'everyday',
  `  view: {schema: curated, name: everyday}
  from: {table: raw.people, alias: p}
  columns:
    - {name: id, expr: p.id}
${EVERYDAY_EXPRESSIONS.map(([name, expr]) => `    - {name: ${name}, expr: ${JSON.stringify(expr)}}`).join('\n')}`,
);

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) =>
    c.query(`
    CREATE SCHEMA raw; CREATE SCHEMA curated;
    CREATE TABLE raw.customers (id int PRIMARY KEY, email text, phone text, country text, signed_up date, points int);
    CREATE TABLE raw.orders (id int PRIMARY KEY, customer_id int REFERENCES raw.customers, quantity int, unit_price numeric(10,2), created_at timestamptz);
    INSERT INTO raw.customers VALUES
      (1, 'alice@example.com', '555-010-1234', 'US', '2026-03-14', 1), (2, 'bob@example.org', '555-010-5678', 'US', '2026-04-02', 2),
      (3, 'carol@example.net', '555-010-9012', 'US', '2026-04-20', 3), (4, 'dave@example.de', '555-010-3456', 'DE', '2026-05-05', 4),
      (5, 'erin@example.fr', '555-010-7890', 'FR', '2026-06-30', 5);
    INSERT INTO raw.orders VALUES (100, 1, 2, 9.50, now()), (101, 2, 1, 120.00, now()), (102, 4, 5, 3.20, now());
    CREATE TABLE raw.people (id int PRIMARY KEY, phone text, country text, city text);
    INSERT INTO raw.people VALUES (1, '+1 (555) 010-1234', 'US', 'Austin'), (2, '555.010.5678', 'US', 'Austin'),
      (3, '555/010 9012', 'US', 'Boston'), (4, '5550103456', NULL, 'Paris'), (5, '+33 1 23 45 67 89', NULL, 'Paris'), (6, NULL, 'DE', NULL);
    CREATE ROLE ${READER} NOLOGIN; CREATE ROLE ${PII} NOLOGIN;
    CREATE ROLE ${ANA} LOGIN PASSWORD '${PW}' IN ROLE ${READER};
    CREATE ROLE ${PIA} LOGIN PASSWORD '${PW}' IN ROLE ${READER}, ${PII};
  `),
  );
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  apply(
    stackWarehouseYaml({
      name: WH,
      database: DB,
      policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [raw, curated]`,
    }),
  );
  await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(endpoint.address() as { port: number }).port}/api/v1/lineage`;
  steward = Steward.start({ args: ['--resync', '2s', '--openlineage-file', lineageFile, '--openlineage-url', url] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
  apply(CUSTOMER_SALES);
  apply(ALL_MASKS);
  apply(GUARD);
  apply(EVERYDAY);
  apply(PARALLEL);
  await waitForCondition(MASKED_VIEW_TYPE, 'customer-sales', NS, 'Ready', 'True');
  await waitForCondition(MASKED_VIEW_TYPE, 'all-masks', NS, 'Ready', 'True');
  await waitForCondition(MASKED_VIEW_TYPE, 'guard', NS, 'Ready', 'True');
  await waitForCondition(MASKED_VIEW_TYPE, 'everyday', NS, 'Ready', 'True');
  await waitForCondition(MASKED_VIEW_TYPE, 'parallel', NS, 'Ready', 'True');
});

afterAll(async () => {
  // Views first (their finalizers need the Warehouse), then the Warehouse.
  const views = await kube.list<Conditioned>(MASKED_VIEW_TYPE, { namespace: NS }).catch(() => ({ items: [] as Conditioned[] }));
  for (const v of views.items) await kube.delete(MASKED_VIEW_TYPE, v.metadata.name, NS).catch(() => undefined);
  await waitFor('views to be dropped', async () => (await kube.list(MASKED_VIEW_TYPE, { namespace: NS })).items.length === 0, 30_000).catch(() => undefined);
  await steward?.stop();
  endpoint.close();
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('MaskedView', () => {
  it('analytics_reader sees email and phone masked, and is denied the raw tables', async () => {
    const rows = (await query(ANA, 'SELECT * FROM curated.customer_sales ORDER BY order_id')) as Record<string, any>[];
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatchObject({ order_id: 100, email: 'al***@example.com', phone: '(***)***-1234', customer_region: 'US', gross_revenue: '19.00' });
    expect(rows.every((r) => !String(r.email).startsWith('alice@'))).toBe(true);
    expect(await query(ANA, 'SELECT * FROM raw.customers')).toMatch(/permission denied/);
    expect(await query(ANA, 'SELECT * FROM raw.orders')).toMatch(/permission denied/);
    const obj = await kube.get<Conditioned>(MASKED_VIEW_TYPE, 'customer-sales', NS);
    expect(condition(obj, 'SourcesLocked')?.status).toBe('True');
    expect(kubectl(['get', 'mv', '-n', NS, 'customer-sales']).stdout).toMatch(new RegExp(`customer-sales\\s+curated.customer_sales\\s+2\\s+${READER}\\s+True`));
  });

  it('a member of pii_reader sees the raw email and phone in the same view', async () => {
    const rows = (await query(PIA, 'SELECT email, phone FROM curated.customer_sales ORDER BY order_id')) as Record<string, any>[];
    expect(rows[0]).toEqual({ email: 'alice@example.com', phone: '555-010-1234' });
    expect(await query(PIA, 'SELECT * FROM raw.customers')).toMatch(/permission denied/);
  });

  it('the view is a security_barrier view owned by a Steward role that alone can read the sources', async () => {
    const v = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT pg_get_userbyid(c.relowner) AS owner, c.reloptions FROM pg_class c WHERE c.oid = 'curated.customer_sales'::regclass`)).rows[0],
    );
    expect(v.owner).toMatch(/^stw_mv_/);
    expect(v.reloptions).toContain('security_barrier=true');
  });

  it('every mask gives the documented output; the hash is keyed, stable, and not in the view definition', async () => {
    const rows = (await query(ANA, 'SELECT * FROM curated.all_masks ORDER BY id')) as Record<string, any>[];
    const alice = rows[0]!;
    expect(alice).toMatchObject({
      phone_last4: '****1234',
      email_partial: 'a************.com',
      phone_redacted: '[REDACTED]',
      email_null: null,
      country: 'US',
      id_redacted: '[REDACTED]',
    });
    // A text mask over an integer makes the column text for everyone: privileged readers get '1'.
    expect(await query(PIA, 'SELECT id_redacted FROM curated.all_masks WHERE id = 1')).toEqual([{ id_redacted: '1' }]); // points 1
    expect(new Date(alice.signup_month).toISOString().slice(0, 10)).toBe('2026-03-01');
    expect(alice.email_hash).toMatch(/^[0-9a-f]{64}$/);
    const key = await asSuperuser(
      async (c) => (await c.query(`SELECT key FROM steward.mask_keys WHERE view_name = 'curated.all_masks'`)).rows[0].key as Buffer,
    );
    expect(alice.email_hash).toBe(createHmac('sha256', key).update('alice@example.com').digest('hex'));
    const again = (await query(ANA, 'SELECT email_hash FROM curated.all_masks WHERE id = 1')) as Record<string, any>[];
    expect(again[0]!.email_hash).toBe(alice.email_hash);
    const def = await asSuperuser(async (c) => (await c.query(`SELECT pg_get_viewdef('curated.all_masks'::regclass) AS d`)).rows[0].d as string);
    expect(def).not.toContain(key.toString('hex'));
    expect(def).toContain('mask_keys');
    expect(await query(ANA, 'SELECT * FROM steward.mask_keys')).toMatch(/permission denied/);
  });

  it('the k-anonymity guard sets to NULL exactly the quasi-identifiers of groups smaller than k', async () => {
    const rows = (await query(ANA, 'SELECT id, country FROM curated.all_masks ORDER BY id')) as Record<string, any>[];
    expect(rows).toEqual([
      { id: 1, country: 'US' },
      { id: 2, country: 'US' },
      { id: 3, country: 'US' },
      { id: 4, country: null },
      { id: 5, country: null },
    ]);
    const privileged = (await query(PIA, 'SELECT id, country FROM curated.all_masks ORDER BY id')) as Record<string, any>[];
    expect(privileged.map((r) => r.country)).toEqual(['US', 'US', 'US', 'DE', 'FR']);
  });

  it('the guard counts combinations of several quasi-identifiers over the whole view, NULL being a value like any other', async () => {
    const rows = (await query(ANA, 'SELECT id, country, city FROM curated.guard ORDER BY id')) as Record<string, any>[];
    expect(rows).toEqual([
      { id: 1, country: 'US', city: 'Austin' },
      { id: 2, country: 'US', city: 'Austin' },
      { id: 3, country: null, city: null }, // (US, Boston) occurs once
      { id: 4, country: null, city: 'Paris' },
      { id: 5, country: null, city: 'Paris' }, // (NULL, Paris) occurs twice
      { id: 6, country: null, city: null }, // (DE, NULL) occurs once
    ]);
    // A reader's WHERE does not shrink the population the guard counts.
    expect(await query(ANA, 'SELECT country, city FROM curated.guard WHERE id = 1')).toEqual([{ country: 'US', city: 'Austin' }]);
    expect(await query(ANA, `SELECT id FROM curated.guard WHERE city = 'Boston'`)).toEqual([]);
    const privileged = (await query(PIA, 'SELECT country, city FROM curated.guard ORDER BY id')) as Record<string, any>[];
    expect(privileged.map((r) => `${r.country}/${r.city}`)).toEqual(['US/Austin', 'US/Austin', 'US/Boston', 'null/Paris', 'null/Paris', 'DE/null']);
  });

  it("runs a reader's aggregate in parallel workers, which mask, hash and guard exactly as a serial scan does", async () => {
    // With an InitPlan inside (a scalar subquery: a membership check once per query, say),
    // PostgreSQL 15 can still gather the view's rows from workers but cannot compute a reader's
    // aggregate in them: every row goes through the leader first. The view must hold none.
    // Parallel plans are made free here so that three-row tables get one, and forced to run.
    const parallel = (user: string, sql: string) =>
      withPg(
        async (c) => {
          await c.query('SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET force_parallel_mode = on');
          return (await c.query(sql)).rows;
        },
        { database: DB, user, password: PW },
      );
    const plan = JSON.stringify(
      (await parallel(ANA, 'EXPLAIN (FORMAT JSON) SELECT count(*), max(email), max(email_hash) FROM curated.parallel'))[0]['QUERY PLAN'],
    );
    expect(plan).toMatch(/"Node Type":"Gather( Merge)?"/);
    expect(plan).toContain('"Partial Mode":"Partial"');
    expect(plan).not.toContain('InitPlan');
    const key = await asSuperuser(async (c) => (await c.query(`SELECT key FROM steward.mask_keys WHERE view_name = 'curated.parallel'`)).rows[0].key as Buffer);
    const hmac = (v: string) => createHmac('sha256', key).update(v).digest('hex');
    const read = 'SELECT order_id, email, email_hash, country FROM curated.parallel ORDER BY order_id';
    const masked = [
      { order_id: 100, email: 'al***@example.com', email_hash: hmac('alice@example.com'), country: 'US' },
      { order_id: 101, email: 'bo***@example.org', email_hash: hmac('bob@example.org'), country: 'US' },
      { order_id: 102, email: 'da***@example.de', email_hash: hmac('dave@example.de'), country: null }, // DE: one order
    ];
    expect(await parallel(ANA, read)).toEqual(masked);
    expect(await query(ANA, read)).toEqual(masked);
    const raw = [
      { order_id: 100, email: 'alice@example.com', email_hash: 'alice@example.com', country: 'US' },
      { order_id: 101, email: 'bob@example.org', email_hash: 'bob@example.org', country: 'US' },
      { order_id: 102, email: 'dave@example.de', email_hash: 'dave@example.de', country: 'DE' },
    ];
    expect(await parallel(PIA, read)).toEqual(raw);
    expect(await query(PIA, read)).toEqual(raw);
  });

  it('the guard counts every join type exactly, also when it counts the first table per join key', async () => {
    // Visits with no person (NULL or unknown person_id), people with no visit: each join type keeps
    // or drops different rows, and the guard must count what the view holds. RIGHT and FULL joins
    // add unmatched people, which the per-key count of visits has no row for.
    await asSuperuser((c) =>
      c.query(`
      CREATE TABLE raw.visits (id int PRIMARY KEY, person_id int);
      INSERT INTO raw.visits VALUES (1, 1), (2, 1), (3, 2), (4, 3), (5, 4), (6, NULL), (7, NULL), (8, 99);`),
    );
    const types = ['inner', 'left', 'right', 'full'];
    for (const type of types) {
      apply(
        view(
          `visits-${type}`,
          `  view: {schema: curated, name: visits_${type}}
  from: {table: raw.visits, alias: v}
  joins:
    - {table: raw.people, alias: p, on: p.id = v.person_id, type: ${type}}
  columns:
    - {name: visit_id, expr: v.id}
    - {name: person_id, expr: p.id}
    - {name: city, expr: p.city}
  kAnonymity: {quasiIdentifiers: [city], k: 2}`,
        ),
      );
    }
    for (const type of types) await waitForCondition(MASKED_VIEW_TYPE, `visits-${type}`, NS, 'Ready', 'True');
    for (const type of types) {
      const def = await asSuperuser(async (c) => (await c.query(`SELECT pg_get_viewdef('curated.visits_${type}'::regclass) AS d`)).rows[0].d as string);
      expect(def, 'visits are counted per join key').toContain('__steward_rows');
      // The reference: a window count over the same join, typed into psql.
      const expected = await asSuperuser(
        async (c) =>
          (
            await c.query(`
        SELECT v.id AS visit_id, p.id AS person_id, CASE WHEN count(*) OVER (PARTITION BY p.city) >= 2 THEN p.city END AS city
          FROM raw.visits v ${type.toUpperCase()} JOIN raw.people p ON p.id = v.person_id ORDER BY 1 NULLS LAST, 2 NULLS LAST`)
          ).rows,
      );
      const seen = await query(ANA, `SELECT * FROM curated.visits_${type} ORDER BY 1 NULLS LAST, 2 NULLS LAST`);
      expect(seen, type).toEqual(expected);
    }
    // Spot checks of the reference itself: Paris has one visit, and one more row from an unmatched
    // person in RIGHT and FULL joins only.
    const paris = async (type: string) =>
      ((await query(ANA, `SELECT count(*)::int AS n FROM curated.visits_${type} WHERE city = 'Paris'`)) as { n: number }[])[0]!.n;
    expect([await paris('inner'), await paris('left'), await paris('right'), await paris('full')]).toEqual([0, 0, 2, 2]);
    for (const type of types) await kube.delete(MASKED_VIEW_TYPE, `visits-${type}`, NS);
    // Gone before the next test: their cleanup REVOKEs on schema raw would race the next test's own
    // out-of-band REVOKE there ("tuple concurrently updated" is PostgreSQL's answer to two at once).
    for (const type of types) {
      await waitFor(`visits-${type} to be dropped`, async () =>
        kube.get(MASKED_VIEW_TYPE, `visits-${type}`, NS).then(
          () => false,
          () => true,
        ),
      );
    }
  });

  it('everyday SQL (IN, LIKE, BETWEEN, NULLIF, IS DISTINCT FROM, typmods, EXTRACT, intervals, AT TIME ZONE) means what it means in psql', async () => {
    const direct = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT p.id, ${EVERYDAY_EXPRESSIONS.map(([name, expr]) => `${expr} AS ${name}`).join(', ')} FROM raw.people p ORDER BY p.id`)).rows,
    );
    const viaView = await query(ANA, 'SELECT * FROM curated.everyday ORDER BY id');
    expect(direct).toHaveLength(6);
    expect(viaView).toEqual(direct);
  });

  it('the phone mask keeps the last four digits whatever the separators', async () => {
    const rows = (await query(ANA, 'SELECT phone FROM curated.guard ORDER BY id')) as Record<string, any>[];
    expect(rows.map((r) => r.phone)).toEqual(['(***)***-1234', '(***)***-5678', '(***)***-9012', '(***)***-3456', '(***)***-6789', null]);
  });

  it('an out-of-band GRANT on a source turns SourcesLocked False, removes readers, and recovers once revoked', async () => {
    await asSuperuser((c) => c.query(`GRANT USAGE ON SCHEMA raw TO ${READER}; GRANT SELECT ON raw.customers TO ${READER}`));
    const obj = await waitForCondition(MASKED_VIEW_TYPE, 'customer-sales', NS, 'SourcesLocked', 'False', undefined, 20_000);
    expect(condition(obj, 'Ready')).toMatchObject({ status: 'False', reason: 'SourcesExposed' });
    expect(condition(obj, 'SourcesLocked')?.message).toContain(`${READER} can read raw.customers`);
    expect(await query(ANA, 'SELECT * FROM curated.customer_sales')).toMatch(/permission denied/);
    await asSuperuser((c) => c.query(`REVOKE SELECT ON raw.customers FROM ${READER}; REVOKE USAGE ON SCHEMA raw FROM ${READER}`));
    await waitForCondition(MASKED_VIEW_TYPE, 'customer-sales', NS, 'SourcesLocked', 'True', undefined, 20_000);
    await waitFor('the reader to read again', async () => Array.isArray(await query(ANA, 'SELECT 1 FROM curated.customer_sales')));
  });

  it('readers reach the view through its reader role; a direct grant an earlier Steward made to a reader is replaced by it', async () => {
    const role = readerRoleName(NS, 'customer-sales');
    const grantees = () =>
      asSuperuser(
        async (c) =>
          (
            await c.query(
              `SELECT ARRAY(SELECT DISTINCT pg_get_userbyid(a.grantee)::text FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'curated.customer_sales'::regclass AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner ORDER BY 1) AS selects,
              ARRAY(SELECT pg_get_userbyid(m.member)::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = $1) AS members`,
              [role],
            )
          ).rows[0],
      );
    expect(await grantees()).toEqual({ selects: [role], members: [READER] });
    // What Steward before the reader role did: SELECT on the view to the reader itself.
    await asSuperuser((c) => c.query(`GRANT SELECT ON curated.customer_sales TO ${READER}`));
    await waitFor('the direct grant to be revoked', async () => (await grantees()).selects.length === 1, 20_000);
    expect(await grantees()).toEqual({ selects: [role], members: [READER] });
    expect(await query(ANA, 'SELECT email FROM curated.customer_sales WHERE order_id = 100')).toEqual([{ email: 'al***@example.com' }]);
  });

  it("the reader role is Steward's: a member, a membership or a grant elsewhere added out of band is taken away", async () => {
    const role = readerRoleName(NS, 'customer-sales');
    const OUTSIDER = `outsider_${id}`;
    const held = () =>
      asSuperuser(
        async (c) =>
          (
            await c.query(
              `SELECT ARRAY(SELECT pg_get_userbyid(m.member)::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = $1 ORDER BY 1) AS members,
              ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1) AS "memberOf",
              has_table_privilege($1, 'raw.people', 'SELECT') AS people, has_table_privilege($1, 'raw.customers', 'SELECT') AS customers,
              has_schema_privilege($1, 'raw', 'USAGE') AS raw`,
              [role],
            )
          ).rows[0],
      );
    // Left in place, pii_reader would show the readers raw values, and the grants would let them read
    // another table and a source of the view directly (the login here may revoke them all; where it
    // may not, see least-privilege.test.ts: the readers are removed instead).
    await asSuperuser((c) =>
      c.query(`CREATE ROLE ${OUTSIDER} LOGIN PASSWORD '${PW}'; GRANT ${role} TO ${OUTSIDER}; GRANT ${PII} TO ${role};
      GRANT USAGE ON SCHEMA raw TO ${role}; GRANT SELECT ON raw.people, raw.customers TO ${role}`),
    );
    const clean = { members: [READER], memberOf: [], people: false, customers: false, raw: false };
    await waitFor('the drift to be taken away', async () => JSON.stringify(await held()) === JSON.stringify(clean), 20_000);
    await waitForCondition(MASKED_VIEW_TYPE, 'customer-sales', NS, 'Ready', 'True', undefined, 20_000);
    await waitFor('the reader to read again', async () => Array.isArray(await query(ANA, 'SELECT 1 FROM curated.customer_sales')));
    expect(await query(ANA, 'SELECT email FROM curated.customer_sales WHERE order_id = 100')).toEqual([{ email: 'al***@example.com' }]);
    expect(await query(ANA, 'SELECT 1 FROM raw.customers')).toMatch(/permission denied/);
    expect(await query(OUTSIDER, 'SELECT 1 FROM curated.customer_sales')).toMatch(/permission denied/);
    await asSuperuser((c) => c.query(`DROP ROLE ${OUTSIDER}`));
  });

  it.each([
    [
      'a subquery in expr',
      (y: string) => y.replace('expr: o.id}', 'expr: "(SELECT max(id) FROM raw.customers)"}'),
      /subqueries are not allowed \(at position \d+\)/,
    ],
    ['a semicolon in expr', (y: string) => y.replace('expr: o.id}', 'expr: "o.id; DROP TABLE raw.orders"}'), /single expression .*\(at position \d+\)/],
    ['a comment in expr', (y: string) => y.replace('expr: o.id}', 'expr: "o.id -- hidden"}'), /comments are not allowed \(at position 6\)/],
    [
      'a function that is not allowed in expr',
      (y: string) => y.replace('expr: o.id}', 'expr: "pg_read_file(\'/etc/passwd\')"}'),
      /function pg_read_file is not allowed \(at position 1\)/,
    ],
    [
      'a subquery in on',
      (y: string) => y.replace('on: c.id = o.customer_id', 'on: "c.id = (SELECT 1)"'),
      /joins\[0\]\.on: subqueries are not allowed \(at position \d+\)/,
    ],
    [
      'a comment in on',
      (y: string) => y.replace('on: c.id = o.customer_id', 'on: "c.id = o.customer_id /* x */"'),
      /comments are not allowed \(at position \d+\)/,
    ],
    ['a function in on', (y: string) => y.replace('on: c.id = o.customer_id', 'on: "pg_sleep(1) IS NULL"'), /function pg_sleep is not allowed/],
    [
      "a column that does not exist (PostgreSQL's verdict)",
      (y: string) => y.replace('expr: o.id}', 'expr: o.idd}'),
      /PostgreSQL refused the view: column o.idd does not exist/,
    ],
    [
      "types that do not match (PostgreSQL's verdict)",
      (y: string) => y.replace('expr: o.id}', 'expr: "o.id + c.country"}'),
      /PostgreSQL refused the view: operator does not exist: integer \+ text/,
    ],
  ])('refuses %s with a position, and leaves the view unchanged', async (_what, mutate, message) => {
    const name = unique('bad');
    apply(
      mutate(CUSTOMER_SALES)
        .replace('name: customer-sales', `name: ${name}`)
        .replace('name: customer_sales}', `name: ${name.replace(/-/g, '_')}}`),
    );
    const obj = await waitForCondition(MASKED_VIEW_TYPE, name, NS, 'Ready', 'False', 'InvalidExpression');
    expect(condition(obj, 'Ready')?.message).toMatch(message);
    const exists = await asSuperuser(async (c) => (await c.query('SELECT to_regclass($1) AS r', [`curated.${name.replace(/-/g, '_')}`])).rows[0].r);
    expect(exists).toBeNull();
    await kube.delete(MASKED_VIEW_TYPE, name, NS);
  });

  it('refuses a join on something other than schema.table, and an alias Steward reserves, at admission', () => {
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], CUSTOMER_SALES.replace('table: raw.customers', 'table: "(SELECT * FROM raw.customers)"'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/spec.joins\[0\].table in body should match/);
    const reserved = kubectl(['apply', '--dry-run=server', '-f', '-'], CUSTOMER_SALES.replace('alias: c,', 'alias: __steward_member,'));
    expect(reserved.code).not.toBe(0);
    expect(reserved.stderr).toContain('aliases starting with __ are reserved for Steward');
    expect(kubectl(['apply', '--dry-run=server', '-f', '-'], CUSTOMER_SALES.replace('alias: c,', 'alias: c_,')).code).toBe(0);
  });

  it('publishes column lineage in status, a ConfigMap and an OpenLineage event that agree', async () => {
    const obj = await kube.get<Conditioned>(MASKED_VIEW_TYPE, 'customer-sales', NS);
    const lineage = obj.status?.lineage as { dataset: string; columns: { name: string; source: string; inputs: string[]; masked: boolean }[] };
    expect(lineage.dataset).toBe('curated.customer_sales');
    expect(lineage.columns.map((c) => c.name)).toEqual(['order_id', 'email', 'phone', 'customer_region', 'gross_revenue', 'created_at']);
    expect(lineage.columns.find((c) => c.name === 'gross_revenue')).toEqual({
      name: 'gross_revenue',
      source: 'raw.orders.quantity * raw.orders.unit_price',
      inputs: ['raw.orders.quantity', 'raw.orders.unit_price'],
      masked: false,
    });
    expect(lineage.columns.find((c) => c.name === 'email')).toMatchObject({ inputs: ['raw.customers.email'], masked: true, mask: 'email' });
    const cm = await kube.get<{ data: Record<string, string> } & Conditioned>(
      { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
      'customer-sales-lineage',
      NS,
    );
    const doc = JSON.parse(cm.data['lineage.json']!);
    expect(doc).toMatchObject({ dataset: 'curated.customer_sales', owner: 'data-eng', last_updated: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(doc.columns).toEqual(lineage.columns);
    expect(existsSync(lineageFile)).toBe(true);
    const events = readFileSync(lineageFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const event = events.reverse().find((e) => e.job.name === `${NS}/customer-sales`);
    expect(event.eventType).toBe('COMPLETE');
    const fields = event.outputs[0].facets.columnLineage.fields;
    expect(Object.keys(fields)).toEqual(lineage.columns.map((c) => c.name));
    for (const c of lineage.columns) {
      expect(fields[c.name].inputFields.map((f: { name: string; field: string }) => `${f.name.split('.').slice(1).join('.')}.${f.field}`)).toEqual(c.inputs);
      expect(fields[c.name].inputFields.every((f: { transformations: { masking: boolean }[] }) => f.transformations[0]!.masking === c.masked)).toBe(true);
    }
    // The same event reached the HTTP endpoint.
    const posted = received.filter((r) => r.event.job.name === `${NS}/customer-sales`).map((r) => r.event);
    expect(received[0]).toMatchObject({ path: '/api/v1/lineage', contentType: 'application/json' });
    expect(posted.some((e) => JSON.stringify(e.outputs[0].facets.columnLineage.fields) === JSON.stringify(fields))).toBe(true);
  });

  it("steward lineage prints every view's lineage as one report", () => {
    const r = spawnSync(join(REPO, 'bin/steward'), ['lineage'], { encoding: 'utf8', env: process.env });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const mine = report.views.find((v: { namespace: string; name: string }) => v.namespace === NS && v.name === 'customer-sales');
    expect(mine).toMatchObject({ warehouse: WH, dataset: 'curated.customer_sales', owner: 'data-eng' });
    expect(mine.columns.find((c: { name: string }) => c.name === 'gross_revenue').inputs).toEqual(['raw.orders.quantity', 'raw.orders.unit_price']);
    const text = spawnSync(join(REPO, 'bin/steward'), ['lineage', '-o', 'text'], { encoding: 'utf8', env: process.env }).stdout;
    expect(text).toContain('gross_revenue        <- raw.orders.quantity * raw.orders.unit_price');
  });

  it('an idle resync rewrites nothing: same view row, same ConfigMap, no new audit record', async () => {
    const CM = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };
    const snapshot = async () => ({
      view: await asSuperuser(async (c) => (await c.query(`SELECT oid::int, xmin::text FROM pg_class WHERE oid = 'curated.customer_sales'::regclass`)).rows[0]),
      cm: (await kube.get<Conditioned>(CM, 'customer-sales-lineage', NS)).metadata.resourceVersion,
      audit: await asSuperuser(
        async (c) => (await c.query(`SELECT count(*)::int AS n FROM steward.audit_log WHERE kind = 'MaskedView' AND name = 'customer-sales'`)).rows[0].n,
      ),
      status: (await kube.get<Conditioned>(MASKED_VIEW_TYPE, 'customer-sales', NS)).metadata.resourceVersion,
    });
    const before = await snapshot();
    // Proof the resyncs did run meanwhile: the reconcile counter moved.
    const reconciles = async () => {
      const text = await steward.metricsText();
      return Number(/controller_runtime_reconcile_total\{controller="maskedview",result="success"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const seen = await reconciles();
    await new Promise((r) => setTimeout(r, 5000)); // resync is 2 s here
    expect(await reconciles()).toBeGreaterThan(seen);
    expect(await snapshot()).toEqual(before);
  });

  it('a changed spec replaces the view in one transaction and readers keep seeing masked data', async () => {
    const seen: string[] = [];
    let stop = false;
    const poll = (async () => {
      while (!stop) {
        const r = await query(ANA, 'SELECT email FROM curated.customer_sales');
        if (Array.isArray(r)) seen.push(...r.map((x) => String(x.email)));
      }
    })();
    apply(
      CUSTOMER_SALES.replace(
        '    - {name: created_at, expr: o.created_at}',
        '    - {name: created_at, expr: o.created_at}\n    - {name: quantity, expr: o.quantity}',
      ),
    );
    await waitFor(
      'the new column',
      async () => {
        const r = await query(ANA, 'SELECT quantity FROM curated.customer_sales LIMIT 1');
        return Array.isArray(r);
      },
      20_000,
    );
    stop = true;
    await poll;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter((e) => !e.includes('***@'))).toEqual([]);
  });

  it('waits for a role it names that does not exist, and follows a role dropped and re-created under its name', async () => {
    const LATE = `late_${id}`;
    const LATE_READER = `latereader_${id}`;
    const LATE_LOGIN = `latelogin_${id}`;
    apply(
      maskedViewYaml({
        name: 'late-role',
        namespace: NS,
        warehouse: WH,
        readers: [READER, LATE_READER],
        unmaskedRoles: [LATE],
        body: `  view: {schema: curated, name: late_role}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: id, expr: c.id}
    - {name: email, expr: c.email, mask: email}`,
      }),
    );
    const stalled = await waitForCondition(MASKED_VIEW_TYPE, 'late-role', NS, 'Ready', 'False', 'RoleNotFound');
    expect(condition(stalled, 'Ready')?.message).toContain(`roles ${LATE_READER} (readers), ${LATE} (unmaskedRoles) do not exist`);
    expect(await asSuperuser(async (c) => (await c.query(`SELECT to_regclass('curated.late_role') AS r`)).rows[0].r)).toBeNull();

    const email = (user: string) => query(user, 'SELECT email FROM curated.late_role WHERE id = 1');
    // One of the two created: still waiting, and the message names the one left.
    await asSuperuser((c) => c.query(`CREATE ROLE ${LATE_READER} NOLOGIN`));
    await waitFor('the message to name the role left', async () => {
      const mv = await kube.get<Conditioned>(MASKED_VIEW_TYPE, 'late-role', NS);
      return condition(mv, 'Ready')?.message?.startsWith(`role ${LATE} (unmaskedRoles) does not exist`) ?? false;
    });
    expect(await asSuperuser(async (c) => (await c.query(`SELECT to_regclass('curated.late_role') AS r`)).rows[0].r)).toBeNull();
    await asSuperuser((c) => c.query(`CREATE ROLE ${LATE} NOLOGIN; CREATE ROLE ${LATE_LOGIN} LOGIN PASSWORD '${PW}' IN ROLE ${READER}, ${LATE}`));
    await waitForCondition(MASKED_VIEW_TYPE, 'late-role', NS, 'Ready', 'True');
    expect(await email(LATE_LOGIN)).toEqual([{ email: 'alice@example.com' }]);
    expect(await email(ANA)).toEqual([{ email: 'al***@example.com' }]);

    // The view checks membership by OID: once the role is dropped its members see masked values,
    // and the role re-created under the same name (a new OID) gets raw values again after a resync.
    await asSuperuser((c) => c.query(`DROP ROLE ${LATE}`));
    expect(await email(LATE_LOGIN)).toEqual([{ email: 'al***@example.com' }]);
    await asSuperuser((c) => c.query(`CREATE ROLE ${LATE} NOLOGIN; GRANT ${LATE} TO ${LATE_LOGIN}`));
    await waitFor(
      'the view rebuilt for the new role',
      async () => JSON.stringify(await email(LATE_LOGIN)) === JSON.stringify([{ email: 'alice@example.com' }]),
      20_000,
    );
    expect(await email(ANA)).toEqual([{ email: 'al***@example.com' }]);

    // A reader reaches the view through the view's reader role. Taken out of readers, it loses the
    // view and the schema's USAGE with it; the other reader keeps both.
    const reach = (role: string) =>
      asSuperuser(
        async (c) =>
          (
            await c.query(`SELECT has_table_privilege($1, 'curated.late_role', 'SELECT') AS view, has_schema_privilege($1, 'curated', 'USAGE') AS schema`, [
              role,
            ])
          ).rows[0],
      );
    expect(await reach(LATE_READER)).toEqual({ view: true, schema: true });
    apply(
      maskedViewYaml({
        name: 'late-role',
        namespace: NS,
        warehouse: WH,
        readers: [READER],
        unmaskedRoles: [LATE],
        body: `  view: {schema: curated, name: late_role}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: id, expr: c.id}
    - {name: email, expr: c.email, mask: email}`,
      }),
    );
    await waitFor('the reader taken out to lose the view', async () => !(await reach(LATE_READER)).view, 20_000);
    expect(await reach(LATE_READER)).toEqual({ view: false, schema: false });
    expect(await reach(READER)).toEqual({ view: true, schema: true });

    await kube.delete(MASKED_VIEW_TYPE, 'late-role', NS);
    await waitFor(
      'the view to be dropped',
      async () => (await asSuperuser(async (c) => (await c.query(`SELECT to_regclass('curated.late_role') AS r`)).rows[0].r)) === null,
    );
    expect(await query(LATE_LOGIN, 'SELECT 1 FROM raw.customers')).toMatch(/permission denied/);
    await asSuperuser((c) => c.query(`DROP ROLE ${LATE_LOGIN}; DROP ROLE ${LATE}; DROP ROLE ${LATE_READER}`));
  });

  it('a finalizer removed by hand does not leave the view behind: it is dropped from its last state once the object is gone', async () => {
    apply(
      view(
        'forced',
        `  view: {schema: curated, name: forced}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: id, expr: c.id}
    - {name: email, expr: c.email, mask: email}`,
      ),
    );
    await waitForCondition(MASKED_VIEW_TYPE, 'forced', NS, 'Ready', 'True');
    expect(await query(ANA, 'SELECT count(*)::int AS n FROM curated.forced')).toEqual([{ n: 5 }]); // raw.customers' rows
    await kube.patch(MASKED_VIEW_TYPE, 'forced', NS, { metadata: { finalizers: null } }, 'merge');
    await kube.delete(MASKED_VIEW_TYPE, 'forced', NS);
    await waitFor(
      'the forced view dropped',
      async () => (await asSuperuser(async (c) => (await c.query(`SELECT to_regclass('curated.forced') AS v`)).rows[0].v)) === null,
      15_000,
    );
    expect(await query(ANA, 'SELECT count(*) FROM curated.forced')).toMatch(/does not exist/);
  });

  it('deletion drops the view, its owner role and its reader role, and leaves the reader nothing it gave', async () => {
    const roles = [ownerRoleName(NS, 'all-masks'), readerRoleName(NS, 'all-masks')];
    const left = () =>
      asSuperuser(
        async (c) =>
          (
            await c.query(
              `SELECT to_regclass('curated.all_masks') AS view, ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1) AS roles`,
              [roles],
            )
          ).rows[0],
      );
    expect(await left()).toMatchObject({ roles: [...roles].sort() });
    await kube.delete(MASKED_VIEW_TYPE, 'all-masks', NS);
    await waitFor('the object to be gone', async () =>
      kube.get(MASKED_VIEW_TYPE, 'all-masks', NS).then(
        () => false,
        () => true,
      ),
    );
    expect(await left()).toEqual({ view: null, roles: [] });
    // The reader still reads the views it is a reader of, through their own reader roles.
    expect(await query(ANA, 'SELECT count(*)::int AS n FROM curated.customer_sales')).toEqual([{ n: 3 }]);
  });
});
