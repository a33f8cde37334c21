// SecretRotation: the time of one rotation end to end (annotation -> the new credential published
// and recorded in status) against a floor of the same work done directly (the pending Secret
// written, ALTER ROLE ... PASSWORD with a verifier, a login over TLS, the target Secret written,
// the status patched, the pending Secret deleted), in the same run; and the queries examples/pipeline
// saw fail while it queried every 100 ms through the mounted Secret, across the rotations, for each
// strategy. Steward runs in this process (Manager), as in the MaskedView bench.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { Metrics } from '../src/runtime/metrics.ts';
import { createLogger } from '../src/runtime/logger.ts';
import { Manager } from '../src/controllers/manager.ts';
import { WAREHOUSE_TYPE } from '../src/controllers/warehouse.ts';
import { SECRET_ROTATION_TYPE } from '../src/controllers/secretrotation.ts';
import { SECRET_TYPE } from '../src/runtime/secrets.ts';
import { generatePassword, scramVerifier } from '../src/drivers/postgres/scram.ts';
import { Pipeline, SecretProjection, failureWindows, type PipelineResult } from '../test/stack/pipeline.ts';

const logger = createLogger({ level: 'warn' });
const NAMESPACE_TYPE = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function config(database: string, user = process.env.PGUSER!, password = process.env.PGPASSWORD!): pg.ClientConfig {
  const env = process.env;
  return {
    host: env.PGHOST,
    port: Number(env.PGPORT),
    user,
    password,
    database,
    ssl: { ca: readFileSync(env.PGSSLROOTCERT!, 'utf8'), rejectUnauthorized: true },
  };
}

async function sql(database: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client(config(database));
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

const b64 = (data: Record<string, string>) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));

export interface RotationBenchResult {
  floorMs: number;
  alternating: { rotationMs: number; pipeline: PipelineResult; windowsMs: number[] };
  single: { rotationMs: number; pipeline: PipelineResult; windowsMs: number[] };
}

export async function secretRotationBench(rotations: number): Promise<RotationBenchResult> {
  const id = randomBytes(3).toString('hex');
  const db = `srbench_${id}`;
  const ns = `srbench-${id}`;
  const roles = { alternating: `srbench_alt_${id}`, single: `srbench_one_${id}` };
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
    await sql(db, `CREATE ROLE ${roles.alternating} LOGIN; CREATE ROLE ${roles.single} LOGIN; CREATE ROLE srfloor_${id} LOGIN;`);
    await client.create(NAMESPACE_TYPE, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const secret = (name: string, namespace: string, data: Record<string, string>) =>
      client.create(SECRET_TYPE, { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, data: b64(data) } as KubeObject);
    await secret(`${ns}-ca`, 'steward-system', { 'ca.crt': readFileSync(process.env.PGSSLROOTCERT!, 'utf8') });
    await secret(`${ns}-creds`, 'steward-system', { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
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
        accessPolicy: [{ namespaces: { matchNames: [ns] }, schemas: ['public'], principals: ['srbench_*'] }],
      },
    } as KubeObject);
    await manager.start();

    // The floor: what one rotation does, done directly, one step after the other.
    const floor: number[] = [];
    // A role the policy does not name: Steward refuses the floor's SecretRotation, which is only there to have its status patched.
    const floorRole = `srfloor_${id}`;
    await secret('floor-target', ns, { password: '' });
    const status = {
      apiVersion: 'steward.dev/v1alpha1',
      kind: 'SecretRotation',
      metadata: { name: 'floor', namespace: ns },
      spec: rotationSpec(ns, floorRole, 'single', 'floor'),
    };
    await client.create(SECRET_ROTATION_TYPE, status as unknown as KubeObject);
    for (let i = 0; i < Math.min(rotations, 20); i++) {
      const password = generatePassword(32);
      const t = performance.now();
      await secret('floor-pending', ns, { rotationId: randomUUID(), login: floorRole, password });
      await sql(db, `ALTER ROLE ${floorRole} PASSWORD '${scramVerifier(password)}' VALID UNTIL 'infinity'`);
      const login = new pg.Client(config(db, floorRole, password));
      await login.connect();
      await login.query('SELECT session_user');
      await login.end();
      const target = await client.get<KubeObject>(SECRET_TYPE, 'floor-target', ns);
      await client.replace(SECRET_TYPE, { ...target, data: b64({ username: floorRole, password }) } as KubeObject);
      await client.patch(SECRET_ROTATION_TYPE, 'floor', ns, { status: { lastRotatedAt: new Date().toISOString() } }, 'merge', 'status');
      await client.delete(SECRET_TYPE, 'floor-pending', ns);
      floor.push(performance.now() - t);
    }
    await client.delete(SECRET_ROTATION_TYPE, 'floor', ns);

    const run = async (strategy: 'alternating' | 'single') => {
      const name = `rot-${strategy}`;
      await client.create(SECRET_ROTATION_TYPE, {
        apiVersion: 'steward.dev/v1alpha1',
        kind: 'SecretRotation',
        metadata: { name, namespace: ns },
        spec: rotationSpec(ns, roles[strategy], strategy, name),
      } as unknown as KubeObject);
      const lastId = async () =>
        (await client.get<{ status?: { lastRotationId?: string } } & KubeObject>(SECRET_ROTATION_TYPE, name, ns)).status?.lastRotationId;
      await waitUntil(async () => (await lastId()) !== undefined);
      const mount = new SecretProjection(async () => {
        const s = await client.get<{ data: Record<string, string> } & KubeObject>(SECRET_TYPE, `${name}-credentials`, ns);
        return { data: s.data, resourceVersion: s.metadata.resourceVersion! };
      });
      await mount.sync();
      mount.start(300);
      const pipeline = new Pipeline(mount.dir, 'SELECT 1');
      const times: number[] = [];
      for (let i = 0; i < rotations; i++) {
        // The previous login's grace period (1 s) is over before the next is asked for: what is timed is the rotation.
        await waitUntil(
          async () => !(await client.get<{ status?: { previousLogin?: string } } & KubeObject>(SECRET_ROTATION_TYPE, name, ns)).status?.previousLogin,
        );
        // single: a second of queries between rotations, so each rotation's failure window is its own.
        if (strategy === 'single') await new Promise((r) => setTimeout(r, 1_000));
        const before = await lastId();
        const t = performance.now();
        await client.patch(
          SECRET_ROTATION_TYPE,
          name,
          ns,
          { metadata: { annotations: { 'steward.dev/rotate-requested-at': new Date().toISOString() } } },
          'merge',
        );
        await waitUntil(async () => (await lastId()) !== before, 5);
        times.push(performance.now() - t);
      }
      await new Promise((r) => setTimeout(r, 1_000));
      const result = await pipeline.stop();
      mount.stop();
      return { rotationMs: median(times), pipeline: result, windowsMs: failureWindows(result) };
    };
    const alternating = await run('alternating');
    const single = await run('single');
    return { floorMs: median(floor), alternating, single };
  } finally {
    await manager.stop();
    await client.request('DELETE', KubeClient.path(SECRET_ROTATION_TYPE, ns)).catch(() => undefined);
    await client.delete(WAREHOUSE_TYPE, ns).catch(() => undefined);
    await client.delete(NAMESPACE_TYPE, ns).catch(() => undefined);
    await sql('postgres', `DROP DATABASE ${db} WITH (FORCE)`);
    const left = await sql(
      'postgres',
      `SELECT rolname FROM pg_roles WHERE rolname LIKE 'srbench\\_%${id}' OR rolname = 'srfloor_${id}' OR rolname LIKE 'stw\\_alt\\_srbench\\_%'`,
    );
    for (const r of left.rows) await sql('postgres', `DROP ROLE "${r.rolname}"`);
  }
}

function rotationSpec(ns: string, role: string, strategy: string, name: string) {
  return { warehouse: ns, role, strategy, schedule: { every: '720h' }, targets: { kubernetesSecret: { name: `${name}-credentials` } }, gracePeriod: '1s' };
}

async function waitUntil(probe: () => Promise<boolean>, intervalMs = 50, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
