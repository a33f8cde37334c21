// bench/cpu.ts: the CPU accounting the convergence bench prints. Pointed at this process as every
// "server", what it reports must follow CPU this test really spends.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuSpent, formatCpu, sampleCpu } from '../../bench/cpu.ts';

const saved = process.env.STEWARD_STACK_DIR;
afterEach(() => {
  if (saved === undefined) delete process.env.STEWARD_STACK_DIR;
  else process.env.STEWARD_STACK_DIR = saved;
});

function fakeStack(pid: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'cpu-'));
  mkdirSync(join(dir, 'pids'));
  for (const name of ['kube-apiserver', 'etcd', 'postgres']) writeFileSync(join(dir, 'pids', name), `${pid}\n`);
  return dir;
}

/**
 * Spends at least `ms` of this process's CPU and at least `ms` of wall time. Either alone is not
 * enough: the machine may be busy (CPU lags the clock), and the process's CPU counts its other
 * threads too (GC, the test runner's), so it can run ahead of the clock (a flake at 0.398 s wall).
 */
function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  const startMs = performance.now();
  let x = 0;
  for (;;) {
    for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms && performance.now() - startMs >= ms) break;
  }
  if (x < 0) throw new Error('unreachable');
}

describe.runIf(process.platform === 'linux')('bench CPU accounting', () => {
  it('counts the CPU a process spends between two samples, for the stack pids and for itself', () => {
    const dir = fakeStack(process.pid);
    try {
      process.env.STEWARD_STACK_DIR = dir;
      const from = sampleCpu();
      expect(from).toBeDefined();
      burnCpu(400);
      const spent = cpuSpent(from)!;
      expect(spent.self).toBeGreaterThanOrEqual(0.4);
      // /proc's ticks for the same process (as the "API server") agree, to a tick or two.
      expect(spent.apiserver).toBeGreaterThan(0.35);
      expect(spent.apiserver).toBeLessThan(spent.self + 0.2);
      expect(spent.wallS).toBeGreaterThanOrEqual(0.4);
      // The machine was busy at least as much as this process was.
      expect(spent.total).toBeGreaterThan(0.35);
      expect(formatCpu(spent)).toMatch(/^CPU \d+\.\d s in \d+\.\d s: kube-apiserver \d+\.\d, etcd/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says it did not measure, rather than printing zeros, without the stack', () => {
    process.env.STEWARD_STACK_DIR = join(tmpdir(), 'no-such-stack');
    expect(sampleCpu()).toBeUndefined();
    expect(cpuSpent(undefined)).toBeUndefined();
    expect(formatCpu(undefined)).toMatch(/not measured/);
  });
});
