// CPU seconds each server of the local stack spent between two points, read from /proc. On the
// shared two-core machine the benchmarks run on, a phase saturates both cores, so its wall time
// follows the CPU its servers spend, and the CPU varies far less between runs than the wall time
// does: it says where a ratio comes from and which part of it can move. Linux and the local stack
// only (the servers' pids are in $STEWARD_STACK_DIR/pids); elsewhere sampleCpu returns undefined.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CpuSample {
  atMs: number;
  /** Clock ticks, each server's own plus its reaped children's (PostgreSQL's backends). */
  apiserver: number;
  etcd: number;
  postgres: number;
  /** This process: the bench and, when it runs in-process, Steward. Microseconds. */
  selfUs: number;
  /** Every core's non-idle ticks, whoever spent them. */
  machineBusy: number;
}

export interface CpuSpent {
  wallS: number;
  apiserver: number;
  etcd: number;
  postgres: number;
  self: number;
  /** The machine's busy time nobody above accounts for (other tenants, the stack's moto, the kernel). */
  other: number;
  /** Everything: the sum of the above. */
  total: number;
}

const TICKS_PER_S = 100; // USER_HZ, 100 on every Linux this runs on

/** utime + stime + cutime + cstime of a pid, or 0 when it is gone. */
function ticks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // After ") ": state is field 3 of stat(5), so utime (14) is at index 11.
    return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  } catch {
    return 0;
  }
}

/** A process and its live children: a child that has exited is in the parent's cutime/cstime. */
function treeTicks(pid: number): number {
  let total = ticks(pid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.split(') ')[1]!.split(' ')[1]) === pid) total += ticks(Number(entry));
    } catch {
      // gone meanwhile: its ticks are in the parent's now
    }
  }
  return total;
}

function stackPid(name: string): number | undefined {
  const dir = process.env.STEWARD_STACK_DIR;
  if (!dir) return undefined;
  try {
    return Number(readFileSync(join(dir, 'pids', name), 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

export function sampleCpu(): CpuSample | undefined {
  const apiserver = stackPid('kube-apiserver');
  const etcd = stackPid('etcd');
  const postgres = stackPid('postgres');
  if (process.platform !== 'linux' || !apiserver || !etcd || !postgres) return undefined;
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu as number[];
  const self = process.cpuUsage();
  return {
    atMs: performance.now(),
    apiserver: ticks(apiserver),
    etcd: ticks(etcd),
    postgres: treeTicks(postgres),
    selfUs: self.user + self.system,
    machineBusy: user! + nice! + system! + irq! + softirq! + (steal ?? 0),
  };
}

export function cpuSpent(from: CpuSample | undefined, to: CpuSample | undefined = sampleCpu()): CpuSpent | undefined {
  if (!from || !to) return undefined;
  const s = (k: 'apiserver' | 'etcd' | 'postgres' | 'machineBusy') => (to[k] - from[k]) / TICKS_PER_S;
  const self = (to.selfUs - from.selfUs) / 1e6;
  const total = s('machineBusy');
  return {
    wallS: (to.atMs - from.atMs) / 1000,
    apiserver: s('apiserver'),
    etcd: s('etcd'),
    postgres: s('postgres'),
    self,
    other: Math.max(0, total - s('apiserver') - s('etcd') - s('postgres') - self),
    total,
  };
}

export function formatCpu(c: CpuSpent | undefined): string {
  if (!c) return 'CPU not measured (not the local stack on Linux)';
  const f = (n: number) => n.toFixed(1);
  return `CPU ${f(c.total)} s in ${f(c.wallS)} s: kube-apiserver ${f(c.apiserver)}, etcd ${f(c.etcd)}, PostgreSQL ${f(c.postgres)}, bench+Steward ${f(c.self)}, other ${f(c.other)}`;
}
