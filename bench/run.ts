// `npm run bench` (or `make bench`): every benchmark, each printed as a ratio against a floor measured
// in the same run on the same servers. Absolute times are printed for context only: the machine is
// shared, so only the ratios are meant to be compared between runs.
//   npm run bench                 all of them
//   npm run bench -- runtime      only those whose name contains "runtime"
import installCrdsAndNamespace from '../test/integration/global-setup.ts';
import { runtimeBench } from './runtime.ts';
import { convergenceBench, expiryBench } from './datasetaccess.ts';
import { maskedViewBench } from './maskedview.ts';
import { scaleBench } from './scale.ts';
import { formatCpu, type CpuSpent } from './cpu.ts';
import { formatRequests } from './apiserver-requests.ts';
import { benchWebhookEnabled } from './webhook.ts';
import { secretRotationBench } from './secretrotation.ts';
import { maskedViewInstructions, valgrindAvailable } from './maskedview-instructions.ts';

// What the integration tests start from (the stack's env, the CRDs, steward-system for the
// Warehouses' Secrets): a stack that only `make stack` started has none of it yet.
installCrdsAndNamespace();
const n = Number(process.env.BENCH_OBJECTS ?? 1000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const only = process.argv[2] ?? '';

const benches: [string, () => Promise<void>][] = [
  [
    'runtime',
    async () => {
      const r = await runtimeBench(n, rounds);
      console.log(`runtime overhead: ${n} objects create -> reconcile -> status Ready (median of ${rounds} rounds)`);
      console.log(`  floor (bare client: create + patch status): ${r.floorMs.toFixed(0)} ms`);
      console.log(`  through the controller loop:                ${r.controllerMs.toFixed(0)} ms`);
      console.log(`  ratio: ${r.ratio.toFixed(2)}x the floor`);
    },
  ],
  [
    'datasetaccess-convergence',
    async () => {
      const r = await convergenceBench(n);
      const byCpu = (a?: CpuSpent, b?: CpuSpent) => (a && b ? ` (by CPU ${(a.total / b.total).toFixed(2)}x)` : '');
      const ratio = (a: { ms: number; cpu?: CpuSpent }, b: { ms: number; cpu?: CpuSpent }) => `${(a.ms / b.ms).toFixed(2)}x${byCpu(a.cpu, b.cpu)}`;
      // The phase's time and CPU; under it, what the API server served for DatasetAccesses in it.
      const line = (label: string, p: { ms: number; cpu?: CpuSpent; requests: Record<string, number> }) =>
        `  ${label.padEnd(44)} ${p.ms.toFixed(0).padStart(6)} ms  ${formatCpu(p.cpu)}\n${' '.repeat(48)}requests: ${formatRequests(p.requests)}`;
      const floor = r.floor.create;
      const steward = r.steward.create;
      const webhook = benchWebhookEnabled()
        ? 'with its admission webhook, as the chart installs it; BENCH_WEBHOOK=0 for without'
        : 'without its admission webhook (BENCH_WEBHOOK=0)';
      console.log(`DatasetAccess convergence: ${n} accesses over 20 tables -> Ready, privileges effective; Steward ${webhook}`);
      console.log(line('floor (API writes + the same SQL directly):', floor));
      console.log(line("tight floor (the creates + Steward's SQL):", r.tight));
      console.log(`${' '.repeat(48)}the median of ${r.tight.runsMs.length} runs: ${r.tight.runsMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
      console.log(line('through Steward:', steward));
      console.log(`  ratio: ${ratio(steward, floor)} the floor (target: within 2x)`);
      console.log(`  ratio: ${ratio(steward, r.tight)} the tight floor (target: within 5x)`);
      const deleteFloor = r.floor.delete;
      const deleteSteward = r.steward.delete;
      console.log(`DatasetAccess deletion: the same ${n} accesses deleted -> revoked, group roles dropped`);
      console.log(line('floor (API deletes + the same SQL directly):', deleteFloor));
      console.log(line('finalizer floor (+ the finalizers removed):', r.finalizerDeletion));
      console.log(line(benchWebhookEnabled() ? 'through Steward (revoked at admission):' : 'through Steward (finalizers):', deleteSteward));
      console.log(`  ratio: ${ratio(deleteSteward, deleteFloor)} the floor (target: within 2x)`);
      console.log(`  ratio: ${ratio(deleteSteward, r.finalizerDeletion)} the finalizer floor`);
      console.log(
        `  the finalizer floor is ${ratio(r.finalizerDeletion, deleteFloor)} the floor: what holding an object with a finalizer until its grant is revoked costs at the least`,
      );
    },
  ],
  [
    'secretrotation',
    async () => {
      const rotations = Number(process.env.BENCH_ROTATIONS ?? 100);
      const r = await secretRotationBench(rotations);
      console.log(`SecretRotation: ${rotations} forced rotations per strategy, examples/pipeline querying every 100 ms through the mounted Secret`);
      console.log(`  floor (the same Secret writes, ALTER ROLE, test login and status patch, directly): ${r.floorMs.toFixed(0)} ms`);
      for (const strategy of ['alternating', 'single'] as const) {
        const s = r[strategy];
        console.log(
          `  ${strategy.padEnd(11)}: ${s.rotationMs.toFixed(0)} ms per rotation, ${(s.rotationMs / r.floorMs).toFixed(2)}x the floor; ` +
            `pipeline: ${s.pipeline.failures} of ${s.pipeline.queries} queries failed` +
            (s.windowsMs.length
              ? `, in ${s.windowsMs.length} window(s): median ${[...s.windowsMs].sort((a, b) => a - b)[Math.floor(s.windowsMs.length / 2)]} ms, longest ${Math.max(...s.windowsMs)} ms`
              : ''),
        );
      }
    },
  ],
  [
    'scale',
    async () => {
      const objects = Number(process.env.BENCH_SCALE_OBJECTS ?? n);
      const resyncS = Number(process.env.BENCH_RESYNC_S ?? 60);
      const r = await scaleBench(objects, resyncS);
      const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
      console.log(`Steward at scale: ${objects} DatasetAccess, its own process with the image's Node flags, resync ${resyncS} s`);
      console.log(
        `  converged in ${(r.convergeMs / 1000).toFixed(1)} s; resident memory peak ${r.peakMb.toFixed(0)} MB (V8 heap peak ${r.peakHeapMb.toFixed(0)} MB), idle ${r.steadyMb.toFixed(0)} MB`,
      );
      console.log(
        `  idle, ${r.idle.windowMs / 1000} s (${r.idle.resyncs.toFixed(1)} resyncs counted for transactions): ${r.idle.reconciles} reconciles, ` +
          `${total(r.idle.stewardRequests)} API requests by Steward ${JSON.stringify(r.idle.stewardRequests)}, ` +
          `${total(r.idle.apiserverRequests)} non-watch requests served by kube-apiserver ${JSON.stringify(r.idle.apiserverRequests)}`,
      );
      console.log(
        `  warehouse transactions: ${r.idle.transactions} (${(r.idle.transactions / r.idle.resyncs).toFixed(1)} per resync; one per access would be ${objects} per resync)`,
      );
      console.log(
        `  restarted on ${objects} granted accesses: all reconciled in ${(r.restart.reconcileMs / 1000).toFixed(1)} s; peak ${r.restart.peakMb.toFixed(0)} MB, steady ${r.restart.steadyMb.toFixed(0)} MB`,
      );
      if (r.heapSnapshot) console.log(`  heap snapshot (idle, first process): ${r.heapSnapshot}`);
    },
  ],
  [
    'datasetaccess-expiry',
    async () => {
      const r = await expiryBench(n, 30_000);
      console.log(`DatasetAccess expiry lag: ${n} accesses expiring within the same 30 s`);
      console.log(`  floor (a timer per deadline + the REVOKE directly): p50 ${r.floor.p50} ms, p99 ${r.floor.p99} ms`);
      console.log(`  through Steward:                                    p50 ${r.steward.p50} ms, p99 ${r.steward.p99} ms, max ${r.steward.max} ms`);
      console.log(`  ratio: p99 ${(r.steward.p99 / Math.max(1, r.floor.p99)).toFixed(2)}x the floor (target: p99 under 1000 ms)`);
    },
  ],
  [
    'maskedview-scan',
    async () => {
      const orders = Number(process.env.BENCH_ORDERS ?? 1_000_000);
      const r = await maskedViewBench(orders, Number(process.env.BENCH_SCAN_ROUNDS ?? 7));
      console.log(
        `MaskedView scan: ${orders} orders joined to customers, every column read as an unprivileged reader (times: medians; ratios: median of each round's ratio)`,
      );
      for (const [label, t] of [
        ['serial (parallel query off on both sides: the cost of the masks)', r.serial],
        ['as planned (PostgreSQL chooses; both sides may use parallel workers)', r.planned],
        ['as planned, with an index on orders (customer_id)', r.indexed],
        ['as planned, that index and customers with parallel_workers = 2 (one shared hash of customers)', r.sharedHash],
      ] as const) {
        console.log(`  ${label}`);
        console.log(`    floor (the same SELECT on the raw join): ${t.floorMs.toFixed(0)} ms`);
        console.log(`    masked view:                             ${t.maskedMs.toFixed(0)} ms   ratio ${t.maskedRatio.toFixed(2)}x (target: at most 1.1x)`);
        console.log(`    masked view with the k-anonymity guard:  ${t.kAnonMs.toFixed(0)} ms   ratio ${t.kAnonRatio.toFixed(2)}x (target: at most 2x)`);
      }
    },
  ],
  [
    'maskedview-instructions',
    async () => {
      const orders = Number(process.env.BENCH_ORDERS ?? 1_000_000);
      if (!valgrindAvailable()) {
        console.log('MaskedView scan in CPU instructions: skipped, valgrind is not installed');
        return;
      }
      const r = await maskedViewInstructions(orders);
      const m = (n: number) => `${(n / 1e6).toFixed(0)} M`;
      console.log(`MaskedView scan in CPU instructions: the same queries, one single-user backend each, serial, counted by valgrind (noise-free)`);
      console.log(`  floor (the same SELECT on the raw join):  ${m(r.floor)}`);
      console.log(`  masked view:                              ${m(r.masked)}   ratio ${(r.masked / r.floor).toFixed(3)}x`);
      console.log(`  masked view with the k-anonymity guard:   ${m(r.kAnon)}   ratio ${(r.kAnon / r.floor).toFixed(3)}x`);
    },
  ],
];

for (const [name, run] of benches) {
  if (name.includes(only)) await run();
}
process.exit(0);
