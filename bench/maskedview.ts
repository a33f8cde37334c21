// MaskedView scan cost: a full scan of the masked view Steward builds over N orders, read as an
// unprivileged reader (so every mask is computed), against the floor: the same columns from the raw
// join, in the same run. The views are the api.md example's: a pii role in unmaskedRoles, whose
// membership check is part of what a view costs.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { Metrics } from '../src/runtime/metrics.ts';
import { createLogger } from '../src/runtime/logger.ts';
import { Manager } from '../src/controllers/manager.ts';
import { MASKED_VIEW_TYPE } from '../src/controllers/maskedview.ts';
import { WAREHOUSE_TYPE } from '../src/controllers/warehouse.ts';
import { SECRET_TYPE } from '../src/runtime/secrets.ts';
import type { MaskedViewSpec } from '../src/api/maskedview.ts';

const logger = createLogger({ level: 'warn' });
const NAMESPACE_TYPE = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };

function config(database: string): pg.ClientConfig {
  const env = process.env;
  return {
    host: env.PGHOST,
    port: Number(env.PGPORT),
    user: env.PGUSER,
    password: env.PGPASSWORD,
    database,
    ssl: { ca: readFileSync(env.PGSSLROOTCERT!, 'utf8'), rejectUnauthorized: true },
  };
}

async function sql(database: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client(config(database));
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

/** The data: N orders over N/10 customers (at least 1,000), a few countries rare enough for the guard. */
export function benchDataSql(orders: number): string {
  const customers = Math.max(1000, Math.floor(orders / 10));
  return `
      CREATE SCHEMA raw; CREATE SCHEMA curated;
      CREATE TABLE raw.customers AS SELECT g AS id, 'user' || g || '@example.com' AS email, '555-' || lpad((g % 10000000)::text, 7, '0') AS phone,
        (ARRAY['US','DE','FR','GB','NL','SE','NO','DK','FI','IS'])[1 + g % 10] || CASE WHEN g % 997 = 0 THEN '-rare' || g ELSE '' END AS country
        FROM generate_series(1, ${customers}) g;
      ALTER TABLE raw.customers ADD PRIMARY KEY (id);
      CREATE TABLE raw.orders AS SELECT g AS id, 1 + g % ${customers} AS customer_id, 1 + g % 7 AS quantity, (g % 1000) / 10.0 AS unit_price,
        now() - (g % 365) * interval '1 day' AS created_at FROM generate_series(1, ${orders}) g;
      ALTER TABLE raw.orders ADD PRIMARY KEY (id);
      ANALYZE;`;
}

/** The api.md view over that data, with or without the k-anonymity guard. */
export function benchViewSpec(name: string, kAnon: boolean, pii: string, reader: string): MaskedViewSpec {
  return {
    warehouse: 'bench',
    view: { schema: 'curated', name },
    from: { table: 'raw.orders', alias: 'o' },
    joins: [{ table: 'raw.customers', alias: 'c', on: 'c.id = o.customer_id', type: 'inner' }],
    columns: [
      { name: 'order_id', expr: 'o.id' },
      { name: 'email', expr: 'c.email', mask: 'email' },
      { name: 'phone', expr: 'c.phone', mask: 'phone' },
      { name: 'customer_region', expr: 'c.country' },
      { name: 'gross_revenue', expr: 'o.quantity * o.unit_price' },
      { name: 'created_at', expr: 'o.created_at' },
    ],
    ...(kAnon ? { kAnonymity: { quasiIdentifiers: ['customer_region'], k: 5 } } : {}),
    unmaskedRoles: [pii],
    readers: [reader],
    owner: 'bench',
  } as MaskedViewSpec;
}

// Every value is produced and read (length() of each text, sums of the numbers): what a client
// reading the view would make PostgreSQL compute, without measuring the network.
export const touchAll = (from: string) =>
  `SELECT count(*), sum(order_id), sum(length(email)), sum(length(phone)), sum(length(customer_region)), sum(gross_revenue), max(created_at) FROM ${from}`;
/** The floor: the same columns from the raw join. */
export const RAW_JOIN = `(SELECT o.id AS order_id, c.email, c.phone, c.country AS customer_region, o.quantity * o.unit_price AS gross_revenue, o.created_at
                       FROM raw.orders o JOIN raw.customers c ON c.id = o.customer_id) AS s`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median times, and the median of each round's ratio: the three scans of a round run back to back,
 * so a round's ratio sees the same load on a shared machine, where medians of times taken minutes
 * apart need not.
 */
export interface ScanTimes {
  floorMs: number;
  maskedMs: number;
  kAnonMs: number;
  maskedRatio: number;
  kAnonRatio: number;
}

/**
 * Four measurements: `serial`, with parallel query off for both sides (the same plan shape: what the
 * masks and the guard cost); `planned`, as PostgreSQL plans them with its default settings
 * (parallel workers on either side, as the planner sees fit); `indexed`, planned again with an
 * index on orders.customer_id; and `sharedHash`, planned again once the customers table also has
 * `parallel_workers` set, so that workers share one hash of it.
 */
export async function maskedViewBench(
  orders: number,
  rounds: number,
): Promise<{ serial: ScanTimes; planned: ScanTimes; indexed: ScanTimes; sharedHash: ScanTimes }> {
  const id = randomBytes(3).toString('hex');
  const db = `mvbench_${id}`;
  const ns = `mvbench-${id}`;
  const reader = `mvbench_reader_${id}`;
  const pii = `mvbench_pii_${id}`;
  const client = KubeClient.fromDefault();
  await sql('postgres', `CREATE DATABASE ${db}`);
  const manager = new Manager({
    client,
    logger,
    metrics: new Metrics({ processMetrics: false }),
    identity: 'bench',
    actor: 'steward-bench',
    resyncMs: 600_000,
    concurrency: 4,
  });
  try {
    await sql(
      db,
      `${benchDataSql(orders)}
      CREATE ROLE ${reader} NOLOGIN; CREATE ROLE ${pii} NOLOGIN;`,
    );
    await client.create(NAMESPACE_TYPE, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const secret = (name: string, data: Record<string, string>) =>
      client.create(SECRET_TYPE, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace: 'steward-system' },
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      } as KubeObject);
    await secret(`${ns}-ca`, { 'ca.crt': readFileSync(process.env.PGSSLROOTCERT!, 'utf8') });
    await secret(`${ns}-creds`, { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
    await client.create(WAREHOUSE_TYPE, {
      apiVersion: 'steward.dev/v1alpha1',
      kind: 'Warehouse',
      metadata: { name: ns },
      spec: {
        postgres: {
          host: 'localhost',
          port: Number(process.env.PGPORT),
          database: db,
          caSecretRef: { namespace: 'steward-system', name: `${ns}-ca` },
          credentialsSecretRef: { namespace: 'steward-system', name: `${ns}-creds` },
        },
        accessPolicy: [{ namespaces: { matchNames: [ns] }, schemas: ['raw', 'curated'], privileges: ['SELECT'] }],
      },
    } as KubeObject);
    const view = (name: string, kAnon: boolean) =>
      ({
        apiVersion: 'steward.dev/v1alpha1',
        kind: 'MaskedView',
        metadata: { name: name.replace(/_/g, '-'), namespace: ns },
        spec: { ...benchViewSpec(name, kAnon, pii, reader), warehouse: ns },
      }) as KubeObject;
    await manager.start();
    await client.create(MASKED_VIEW_TYPE, view('sales_masked', false));
    await client.create(MASKED_VIEW_TYPE, view('sales_kanon', true));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await sql(
        db,
        `SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('sales_masked', 'sales_kanon') AND has_table_privilege('${reader}', oid, 'SELECT')`,
      );
      if (r.rows[0].n === 2) break;
      if (Date.now() > deadline) throw new Error('the masked views were not built within 2 minutes');
      await new Promise((res) => setTimeout(res, 200));
    }
    const timed = async (text: string, asReader: boolean, serial: boolean): Promise<number> => {
      const c = new pg.Client(config(db));
      await c.connect();
      try {
        if (serial) await c.query('SET max_parallel_workers_per_gather = 0');
        if (asReader) await c.query(`SET ROLE ${reader}`);
        await c.query(text); // warm the cache and the plan
        const t = performance.now();
        await c.query(text);
        return performance.now() - t;
      } finally {
        await c.end();
      }
    };
    const measure = async (serial: boolean): Promise<ScanTimes> => {
      const floor: number[] = [];
      const masked: number[] = [];
      const kanon: number[] = [];
      for (let r = 0; r < rounds; r++) {
        floor.push(await timed(touchAll(RAW_JOIN), false, serial));
        masked.push(await timed(touchAll('curated.sales_masked'), true, serial));
        kanon.push(await timed(touchAll('curated.sales_kanon'), true, serial));
      }
      if (process.env.BENCH_DEBUG) console.error({ serial, floor: floor.map(Math.round), masked: masked.map(Math.round), kanon: kanon.map(Math.round) });
      return {
        floorMs: median(floor),
        maskedMs: median(masked),
        kAnonMs: median(kanon),
        maskedRatio: median(masked.map((m, r) => m / floor[r]!)),
        kAnonRatio: median(kanon.map((k, r) => k / floor[r]!)),
      };
    };
    const serial = await measure(true);
    const planned = await measure(false);
    // An index on the join key, as a foreign key usually has: the guard's count reads the key only
    // and can read it from the index (once VACUUM has marked the pages all-visible, as autovacuum
    // would). The raw join reads every column and does not use it.
    await sql(db, 'CREATE INDEX ON raw.orders (customer_id)');
    for (const table of ['raw.orders', 'raw.customers']) await sql(db, `VACUUM ANALYZE ${table}`);
    const indexed = await measure(false);
    // The customers (7.4 MB at 100 k) are under min_parallel_table_scan_size, so every process builds
    // its own hash of them, masks included. With parallel_workers set on the table, as an operator
    // may, PostgreSQL builds one shared hash (a Parallel Hash), on both sides alike.
    await sql(db, 'ALTER TABLE raw.customers SET (parallel_workers = 2)');
    const sharedHash = await measure(false);
    return { serial, planned, indexed, sharedHash };
  } finally {
    await manager.stop();
    const views = await client.list<KubeObject>(MASKED_VIEW_TYPE, { namespace: ns }).catch(() => ({ items: [] as KubeObject[] }));
    for (const v of views.items) await client.patch(MASKED_VIEW_TYPE, v.metadata.name, ns, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
    await client.request('DELETE', KubeClient.path(MASKED_VIEW_TYPE, ns)).catch(() => undefined);
    await client.delete(WAREHOUSE_TYPE, ns).catch(() => undefined);
    await sql('postgres', `DROP DATABASE ${db} WITH (FORCE)`);
    const roles = await sql('postgres', `SELECT rolname FROM pg_roles WHERE rolname IN ('${reader}', '${pii}') OR rolname LIKE 'stw\\_mv\\_mvbench\\_${id}%'`);
    for (const r of roles.rows) await sql('postgres', `DROP ROLE "${r.rolname}"`);
    client.close();
  }
}
