// The runtime's overhead: N objects through the controller loop (create -> informer -> queue ->
// reconcile -> status Ready, observed through a watch), against a floor measured in the same run on
// the same API server: a bare client that creates the same objects and patches their statuses.
// The reconcile itself does nothing, so the ratio is the cost of the machinery alone.
import { randomBytes } from 'node:crypto';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { Controller } from '../src/runtime/controller.ts';
import { Informer } from '../src/runtime/informer.ts';
import { EventRecorder } from '../src/runtime/events.ts';
import { Metrics } from '../src/runtime/metrics.ts';
import { createLogger } from '../src/runtime/logger.ts';
import { WAREHOUSE_TYPE } from '../src/controllers/warehouse.ts';
import { summaryConditions } from '../src/runtime/controller.ts';
import { setConditions } from '../src/runtime/conditions.ts';

const logger = createLogger({ level: 'warn' });

interface Conditioned extends KubeObject {
  status?: { conditions?: { type: string; status: string }[] };
}

function warehouse(name: string, label: string): KubeObject {
  return {
    apiVersion: 'steward.dev/v1alpha1',
    kind: 'Warehouse',
    metadata: { name, labels: { 'bench.steward.dev/run': label } },
    spec: {
      postgres: {
        host: 'bench.invalid',
        database: 'bench',
        sslMode: 'require',
        credentialsSecretRef: { namespace: 'default', name: 'bench' },
      },
    },
  } as KubeObject;
}

/** Runs fn over items with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function cleanup(client: KubeClient, label: string): Promise<void> {
  await client.request('DELETE', KubeClient.path(WAREHOUSE_TYPE), { query: { labelSelector: `bench.steward.dev/run=${label}` } });
}

const CONCURRENCY = 8;

async function floor(client: KubeClient, n: number): Promise<number> {
  const label = `floor-${randomBytes(3).toString('hex')}`;
  const names = Array.from({ length: n }, (_, i) => `${label}-${i}`);
  const start = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    await client.create(WAREHOUSE_TYPE, warehouse(name, label));
  });
  const conditions = setConditions([], summaryConditions({ state: 'Ready', reason: 'Bench', message: 'bench' }), 1, new Date());
  await pool(names, CONCURRENCY, async (name) => {
    await client.patch(WAREHOUSE_TYPE, name, undefined, { status: { observedGeneration: 1, conditions } }, 'merge', 'status');
  });
  const elapsed = performance.now() - start;
  await cleanup(client, label);
  return elapsed;
}

async function throughController(client: KubeClient, n: number): Promise<number> {
  const label = `ctrl-${randomBytes(3).toString('hex')}`;
  const names = Array.from({ length: n }, (_, i) => `${label}-${i}`);
  const metrics = new Metrics({ processMetrics: false });
  const controller = new Controller<KubeObject>({
    name: 'bench',
    type: WAREHOUSE_TYPE,
    client,
    logger,
    metrics,
    events: new EventRecorder(client, 'steward.dev/bench', 'bench', logger),
    reconcile: async () => ({ state: 'Ready', reason: 'Bench', message: 'bench' }),
    concurrency: CONCURRENCY,
    labelSelector: `bench.steward.dev/run=${label}`,
  });
  // A separate watch observes the result, as a user would with kubectl get -w.
  const observer = new Informer<Conditioned>(client, WAREHOUSE_TYPE, { logger, labelSelector: `bench.steward.dev/run=${label}` });
  const ready = new Set<string>();
  let allReady: () => void = () => undefined;
  const done = new Promise<void>((r) => (allReady = r));
  observer.onEvent((_t, obj) => {
    if (obj.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) ready.add(obj.metadata.name);
    if (ready.size === n) allReady();
  });
  await Promise.all([controller.start(), observer.start()]);
  const start = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    await client.create(WAREHOUSE_TYPE, warehouse(name, label));
  });
  await done;
  const elapsed = performance.now() - start;
  await controller.stop();
  await observer.stop();
  await cleanup(client, label);
  return elapsed;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function runtimeBench(n: number, rounds: number): Promise<{ floorMs: number; controllerMs: number; ratio: number }> {
  const client = KubeClient.fromDefault({ maxSockets: 64 });
  const floors: number[] = [];
  const controllers: number[] = [];
  // Alternate the two, so drift in the shared machine's load hits both alike.
  for (let r = 0; r < rounds; r++) {
    floors.push(await floor(client, n));
    controllers.push(await throughController(client, n));
  }
  client.close();
  const floorMs = median(floors);
  const controllerMs = median(controllers);
  return { floorMs, controllerMs, ratio: controllerMs / floorMs };
}
