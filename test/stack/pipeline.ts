// What a pod does with a rotated Secret, on a machine with no kubelet: SecretProjection writes a
// Secret's keys as files the way the kubelet fills a Secret volume (a timestamped directory, swapped
// in at once through the ..data link), and Pipeline runs examples/pipeline on those files. Shared by
// the SecretRotation tests, the bench and the demo.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './env.ts';

/** Reads the Secret: its base64 data and resourceVersion, or undefined while it does not exist. */
export type SecretRead = () => Promise<{ data: Record<string, string>; resourceVersion: string } | undefined>;

export class SecretProjection {
  readonly dir = mkdtempSync(join(tmpdir(), 'steward-mount-'));
  private timer: NodeJS.Timeout | undefined;
  private n = 0;
  private version = '';
  private readonly read: SecretRead;
  constructor(read: SecretRead) {
    this.read = read;
  }

  async sync(): Promise<void> {
    const s = await this.read().catch(() => undefined);
    if (!s || s.resourceVersion === this.version) return;
    const next = join(this.dir, `..${++this.n}`);
    mkdirSync(next);
    for (const [k, v] of Object.entries(s.data)) {
      writeFileSync(join(next, k), Buffer.from(v, 'base64'));
      symlinkSync(join('..data', k), join(this.dir, `${k}.tmp`));
      renameSync(join(this.dir, `${k}.tmp`), join(this.dir, k));
    }
    symlinkSync(`..${this.n}`, join(this.dir, '..data.tmp'));
    renameSync(join(this.dir, '..data.tmp'), join(this.dir, '..data'));
    this.version = s.resourceVersion;
  }

  /** Syncs every periodMs, as the kubelet does at its sync period (a minute by default). */
  start(periodMs: number): void {
    this.timer = setInterval(() => void this.sync(), periodMs);
  }

  stop(): void {
    clearInterval(this.timer);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface PipelineResult {
  queries: number;
  failures: number;
  logins: string[];
  /** One JSON line per failed query. */
  lines: string[];
}

/**
 * How long each outage lasted, as the pipeline saw it: failures less than three intervals apart are
 * one window, from its first failure to its last plus one interval (the query that next succeeded
 * ran at most that much later).
 */
export function failureWindows(result: PipelineResult, intervalMs = 100): number[] {
  const times = result.lines.map((l) => Date.parse((JSON.parse(l) as { failure: { at: string } }).failure.at)).sort((a, b) => a - b);
  const windows: number[] = [];
  let start: number | undefined;
  let last = 0;
  for (const t of times) {
    if (start !== undefined && t - last >= 3 * intervalMs) {
      windows.push(last - start + intervalMs);
      start = undefined;
    }
    start ??= t;
    last = t;
  }
  if (start !== undefined) windows.push(last - start + intervalMs);
  return windows;
}

/** examples/pipeline, run as a pod would run it: a query every intervalMs through the mounted credentials. */
export class Pipeline {
  private readonly child: ChildProcess;
  private out = '';
  constructor(dir: string, query: string, intervalMs = 100) {
    this.child = spawn(process.execPath, [join(REPO, 'examples/pipeline/pipeline.mjs')], {
      env: { ...process.env, CREDENTIALS_DIR: dir, INTERVAL_MS: String(intervalMs), QUERY: query },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.out += d.toString();
    });
  }

  async stop(): Promise<PipelineResult> {
    const exited = new Promise((r) => this.child.on('exit', r));
    this.child.kill('SIGTERM');
    await exited;
    const lines = this.out.split('\n').filter(Boolean);
    const summary = JSON.parse(lines.find((l) => l.includes('"summary"')) ?? '{"summary":{"queries":0,"failures":0,"logins":[]}}').summary;
    return { ...summary, lines: lines.filter((l) => l.includes('"failure"')) };
  }
}
