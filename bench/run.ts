// `npm run bench` (or `make bench`): every benchmark, each printed as a ratio against a floor measured
// in the same run on the same servers. Absolute times are printed for context only: the machine is
// shared, so only the ratios are meant to be compared between runs.
import { loadStackEnv } from '../test/stack/env.ts';
import { runtimeBench } from './runtime.ts';

loadStackEnv();
const n = Number(process.env.BENCH_OBJECTS ?? 1000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const runtime = await runtimeBench(n, rounds);
console.log(`runtime overhead: ${n} objects create -> reconcile -> status Ready (median of ${rounds} rounds)`);
console.log(`  floor (bare client: create + patch status): ${runtime.floorMs.toFixed(0)} ms`);
console.log(`  through the controller loop:                ${runtime.controllerMs.toFixed(0)} ms`);
console.log(`  ratio: ${runtime.ratio.toFixed(2)}x the floor`);
