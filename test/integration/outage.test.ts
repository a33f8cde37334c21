// What Steward says while its warehouse is down, and what it keeps: PostgreSQL is stopped for real
// (a fast shutdown of the stack's server), then started again on the same port. The resync here is
// ten minutes, so whatever happens within seconds is not a resync's doing.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { parse } from 'yaml';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import {
  REPO,
  Steward,
  apply,
  condition,
  ensureNamespace,
  kube,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  sumMetric,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('o').slice(2).replace(/-/g, '');
const DB = `outage_${id}`;
const NS = `outage-${id}`;
const WH = `wh-outage-${id}`;
const READER = `outage_reader_${id}`;
let steward: Steward;

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });
const stack = (command: string) => {
  const r = spawnSync('bash', [join(REPO, 'test/stack/stack.sh'), command], { encoding: 'utf8' });
  expect(r.status, r.stdout + r.stderr).toBe(0);
};

function access(name: string): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${NS}}
spec:
  principal: {role: ${READER}}
  warehouse: {name: ${WH}, schema: curated, tables: [t], privileges: [SELECT]}
  justification: outage test
`;
}

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) => c.query(`CREATE SCHEMA curated; CREATE TABLE curated.t (x int); CREATE ROLE ${READER} NOLOGIN;`));
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  apply(
    stackWarehouseYaml({
      name: WH,
      database: DB,
      policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [curated]\n      privileges: [SELECT]`,
    }),
  );
  // A lease that outlasts the API server outage below: a leader that cannot renew exits, by design (docs/operations.md).
  steward = Steward.start({ args: ['--resync', '10m', '--lease-duration', '90s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
  apply(access('kept'));
  apply(access('gone'));
  await waitForCondition(DATASET_ACCESS_TYPE, 'kept', NS, 'Ready', 'True');
  await waitForCondition(DATASET_ACCESS_TYPE, 'gone', NS, 'Ready', 'True');
});

afterAll(async () => {
  // Whatever happened, the next test file needs its server.
  spawnSync('bash', [join(REPO, 'test/stack/stack.sh'), 'start-postgres'], { encoding: 'utf8' });
  // The accesses go first, revoked while the Warehouse is still there to revoke them in.
  for (const name of ['kept', 'gone']) await kube.delete(DATASET_ACCESS_TYPE, name, NS).catch(() => undefined);
  await waitFor('the accesses to be gone', async () => (await kube.list(DATASET_ACCESS_TYPE, { namespace: NS })).items.length === 0, 60_000).catch(
    () => undefined,
  );
  await steward?.stop();
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('a PostgreSQL outage', () => {
  it('turns the Warehouse Ready=False within seconds and back by itself; what failed meanwhile reaches the audit table after', async () => {
    const stopped = new Date();
    stack('stop-postgres');
    const down = await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'False', undefined, 15_000);
    const noticedMs = Date.now() - stopped.getTime();
    console.log(`Warehouse Ready=False ${noticedMs} ms after PostgreSQL stopped`);
    expect(condition(down, 'Ready')?.reason).toMatch(/Unreachable|ConnectionFailed/);

    // A revoke asked for during the outage: it waits, and its failure is kept.
    await kube.delete(DATASET_ACCESS_TYPE, 'gone', NS);
    await waitFor('the revoke to fail for now', async () => {
      const o = await kube.get<Conditioned>(DATASET_ACCESS_TYPE, 'gone', NS);
      return condition(o, 'Ready')?.reason === 'RevokeFailed';
    });
    await new Promise((r) => setTimeout(r, 2000));
    const restarted = new Date();
    stack('start-postgres');

    await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True', 'Connected', 90_000);
    console.log(`Warehouse Ready again ${Date.now() - restarted.getTime()} ms after PostgreSQL started`);
    await waitFor(
      'the revoke to complete',
      async () =>
        kube.get(DATASET_ACCESS_TYPE, 'gone', NS).then(
          () => false,
          () => true,
        ),
      90_000,
    );
    await waitForCondition(DATASET_ACCESS_TYPE, 'kept', NS, 'Ready', 'True');

    // The failures of the outage, in the table now, in order, marked delayed, with the time they happened.
    const rows = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT action, outcome, ts, details->>'delayed' AS delayed, name FROM steward.audit_log
              WHERE ts >= $1 AND ts < $2 AND outcome = 'failure' ORDER BY id`,
            [stopped, restarted],
          )
        ).rows,
    );
    expect(rows.map((r) => [r.name, r.action, r.delayed])).toEqual(
      expect.arrayContaining([
        [WH, 'warehouse.connect', 'true'],
        ['gone', 'role.drop', 'true'],
      ]),
    );
    const times = rows.map((r) => new Date(r.ts).getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(steward.logLines().filter((l) => /audit record could not be written/.test(String(l.msg)))).toEqual([]);
  });
});

describe('an API server outage', () => {
  it('while 60 accesses are being granted: reconciles back off, each cause is logged a few times, not once per object, and all end Ready', async () => {
    const names = Array.from({ length: 60 }, (_, i) => `api-${i}`);
    const metric = async (re: RegExp) => sumMetric(await steward.metricsText(), re);
    const errorsBefore = await metric(/^controller_runtime_reconcile_errors_total\{controller="datasetaccess"\} (\d+)$/gm);
    // Steward's grants on curated.t wait behind this session's hold on the table's advisory lock: so
    // the reconciles are under way, and queued, when the API server goes.
    await asSuperuser(async (holder) => {
      try {
        await holder.query("SELECT pg_advisory_lock(hashtextextended('steward:table:curated.t', 0))");
        await Promise.all(names.map((n) => kube.create(DATASET_ACCESS_TYPE, parse(access(n)))));
        await waitFor(
          'a grant waiting on the lock',
          async () => (await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0].n > 0,
        );
        const from = steward.logLines().length;
        stack('stop-apiserver');
        await holder.query("SELECT pg_advisory_unlock(hashtextextended('steward:table:curated.t', 0))");
        await new Promise((r) => setTimeout(r, 8000)); // every queued access fails against the missing API server, and backs off
        stack('start-apiserver');
        await waitFor(
          '60 accesses Ready after the API server came back',
          async () =>
            (await kube.list<Conditioned>(DATASET_ACCESS_TYPE, { namespace: NS })).items.filter(
              (a) => a.metadata.name.startsWith('api-') && condition(a, 'Ready')?.status === 'True',
            ).length === 60,
          120_000,
          500,
        );
        const lines = steward
          .logLines()
          .slice(from)
          .filter((l) => Number(l.level) >= 40 || l.level === 'warn' || l.level === 'error');
        const byCause = new Map<string, number>();
        for (const l of lines) byCause.set(String(l.msg), (byCause.get(String(l.msg)) ?? 0) + 1);
        console.log(`API server outage: warnings and errors logged, by message: ${JSON.stringify(Object.fromEntries(byCause))}`);
        const failures = (await metric(/^controller_runtime_reconcile_errors_total\{controller="datasetaccess"\} (\d+)$/gm)) - errorsBefore;
        console.log(`API server outage: ${failures} failed DatasetAccess reconciles`);
        // The outage was real for the reconciles: most of the 60 failed at least once.
        expect(failures).toBeGreaterThanOrEqual(30);
        for (const cause of ['reconcile failed', 'could not write status', 'could not record event'])
          expect(byCause.get(cause) ?? 0, cause).toBeLessThanOrEqual(3);
        // A watch failure is a warning once per informer (five here), its retries debug.
        expect(byCause.get('watch failed; retrying') ?? 0).toBeLessThanOrEqual(14);
        expect(byCause.get('reconcile failed') ?? 0).toBeGreaterThanOrEqual(1);
        // Nothing was reported as a missing Secret while the API server was away.
        expect(steward.logs()).not.toContain('create it with the keys');
      } finally {
        await Promise.all(names.map((n) => kube.delete(DATASET_ACCESS_TYPE, n, NS).catch(() => undefined)));
      }
    });
  });
});
