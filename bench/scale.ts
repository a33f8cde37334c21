// Steward at scale, run as it ships: a process of its own with the image's Node flags, info logging,
// leader election off (the Lease is the one request an idle leader makes; it is counted apart).
// N accesses (BENCH_SCALE_OBJECTS) are created and granted; then, with nothing changing, two resyncs
// are counted: API requests (Steward's own counter, and kube-apiserver's apiserver_request_total),
// warehouse transactions (pg_stat_database) and reconciles. Memory is the process's resident set
// (/proc/<pid>/status: VmRSS now, VmHWM its peak), sampled throughout; a second Steward is then
// started on the N accesses already granted, for the start-up peak against its steady state.
// With BENCH_HEAP_SNAPSHOT=1 the first process writes a heap snapshot when idle (see heap-top.ts).
import { readFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Steward } from '../test/integration/harness.ts';
import { DATASET_ACCESS_TYPE } from '../src/controllers/datasetaccess.ts';
import { Fixture, isReady, pool, sql, waitForAll } from './datasetaccess.ts';
import { apiserverMetrics, apiserverRequests, requestDelta } from './apiserver-requests.ts';

const TABLES = 20;

export interface ScaleResult {
  n: number;
  convergeMs: number;
  peakMb: number;
  /** The V8 heap's peak size (nodejs_heap_size_total_bytes, sampled every 0.5 s). */
  peakHeapMb: number;
  steadyMb: number;
  idle: {
    windowMs: number;
    resyncs: number;
    reconciles: number;
    stewardRequests: Record<string, number>;
    apiserverRequests: Record<string, number>;
    transactions: number;
  };
  restart: { peakMb: number; steadyMb: number; reconcileMs: number };
  heapSnapshot?: string;
}

function memory(pid: number): { rssMb: number; hwmMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

async function metrics(s: Steward): Promise<string> {
  const address = s.logLines().find((l) => l.msg === 'steward starting')?.http;
  return (await fetch(`http://${String(address)}/metrics`)).text();
}

const sum = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);

/** Requests by "METHOD resource" from a Prometheus text exposition, with a pattern that captures method, resource, count. */
function byRequest(text: string, re: RegExp): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(re)) out[`${m[1]} ${m[2]}`] = (out[`${m[1]} ${m[2]}`] ?? 0) + Number(m[3]);
  return out;
}

const STEWARD_REQUESTS = /^rest_client_requests_total\{method="([A-Z]+)",resource="([^"]*)",code="[^"]*"\} (\d+)$/gm;

async function transactions(db: string): Promise<number> {
  const r = await sql(db, 'SELECT (xact_commit + xact_rollback)::int AS n FROM pg_stat_database WHERE datname = current_database()');
  return r.rows[0].n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function scaleBench(n: number, resyncS: number): Promise<ScaleResult> {
  const f = new Fixture();
  await f.setUp();
  const snapshotDir = mkdtempSync(join(tmpdir(), 'steward-heap-'));
  const env = {
    LOG_LEVEL: 'info',
    ...(process.env.BENCH_HEAP_SNAPSHOT ? { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshotDir}` } : {}),
  };
  const args = ['--resync', `${resyncS}s`, '--leader-elect=false', '--concurrency', '8'];
  // BENCH_NODE_FLAGS: Node flags to try beside the image's (e.g. --max-old-space-size=64).
  const nodeFlags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  let steward = Steward.start({ args, env, nodeFlags });
  let peak = 0;
  let peakHeapMb = 0;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, memory(steward.pid).hwmMb);
    } catch {
      // the process is gone: its last sample stands
    }
    metrics(steward).then(
      (text) => (peakHeapMb = Math.max(peakHeapMb, sum(text, /^nodejs_heap_size_total_bytes (\d+)$/gm) / 1e6)),
      () => undefined,
    );
  }, 500);
  try {
    await steward.waitForLog('running', (l) => l.msg === 'controllers running', 60_000);
    const names = Array.from({ length: n }, (_, i) => `acc-${i}`);
    const start = performance.now();
    const ready = waitForAll(f, n, isReady, 1_800_000);
    await pool(names, 16, (name) => f.client.create(DATASET_ACCESS_TYPE, f.access(name, `t${Number(name.split('-')[1]) % TABLES}`)));
    await ready;
    const convergeMs = performance.now() - start;
    const members = await sql(f.db, 'SELECT count(*)::int AS n FROM pg_auth_members WHERE member = $1::regrole', [f.principal]);
    if (members.rows[0].n !== n) throw new Error(`not effective: ${members.rows[0].n} memberships for ${n} accesses`);

    // Idle: let the last status writes land and the grants' transactions reach pg_stat_database
    // (a backend flushes its counts when idle, at most every 10 s), then two resyncs and a flush.
    await sleep(15_000);
    const before = { steward: await metrics(steward), apiserver: apiserverMetrics(), xacts: await transactions(f.db) };
    const windowMs = Math.round(2.2 * resyncS * 1000);
    await sleep(windowMs);
    const after = { steward: await metrics(steward), apiserver: apiserverMetrics() };
    const steadyMb = memory(steward.pid).rssMb;
    // Before the snapshot: writing one takes memory of its own.
    const firstPeak = peak;
    const firstPeakHeap = peakHeapMb;
    let heapSnapshot: string | undefined;
    if (process.env.BENCH_HEAP_SNAPSHOT) {
      process.kill(steward.pid, 'SIGUSR2');
      for (let i = 0; i < 600 && !heapSnapshot; i++) {
        await sleep(500);
        const file = readdirSync(snapshotDir).find((x) => x.endsWith('.heapsnapshot'));
        // Written in one go: wait until its size stops changing.
        if (file) {
          const size = () => readFileSync(join(snapshotDir, file)).length;
          const a = size();
          await sleep(2000);
          if (size() === a && a > 0) heapSnapshot = join(snapshotDir, file);
        }
      }
    }
    await sleep(11_000);
    const xacts = (await transactions(f.db)) - before.xacts;
    const reconcileRe = /^controller_runtime_reconcile_total\{controller="datasetaccess",result="[^"]+"\} (\d+)$/gm;
    const idle = {
      windowMs,
      // The flush wait runs resyncs too: the transactions are counted over the longer span.
      resyncs: (windowMs + 11_000) / (resyncS * 1000),
      reconciles: sum(after.steward, reconcileRe) - sum(before.steward, reconcileRe),
      stewardRequests: requestDelta(byRequest(after.steward, STEWARD_REQUESTS), byRequest(before.steward, STEWARD_REQUESTS)),
      apiserverRequests: requestDelta(apiserverRequests(after.apiserver), apiserverRequests(before.apiserver)),
      transactions: xacts,
    };

    // A fresh process on N accesses already granted: its start-up peak against its steady state.
    await steward.stop();
    peak = 0;
    const restarted = performance.now();
    steward = Steward.start({ args, env: { LOG_LEVEL: 'info' }, nodeFlags });
    await steward.waitForLog('running', (l) => l.msg === 'controllers running', 120_000);
    for (;;) {
      const text = await metrics(steward);
      if (sum(text, reconcileRe) >= n) break;
      await sleep(250);
    }
    const reconcileMs = performance.now() - restarted;
    await sleep(20_000);
    const restart = { peakMb: Math.max(peak, memory(steward.pid).hwmMb), steadyMb: memory(steward.pid).rssMb, reconcileMs };
    return { n, convergeMs, peakMb: firstPeak, peakHeapMb: firstPeakHeap, steadyMb, idle, restart, heapSnapshot };
  } finally {
    clearInterval(sampler);
    await steward.stop();
    await f.tearDown();
  }
}
