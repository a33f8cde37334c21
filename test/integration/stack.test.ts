// The local stack's own promises: a missing prerequisite stops it with one line that says what to
// install, and stack-down leaves no process behind. (Run in a separate state folder, so the stack
// the other tests use is untouched.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { REPO } from './harness.ts';

const STACK = join(REPO, 'test/stack/stack.sh');

describe('test/stack/stack.sh', () => {
  it('a missing prerequisite stops it with one line saying what to install', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stack-'));
    // A PATH with the system tools but without moto_server (it lives in a pyenv shim folder here).
    const r = spawnSync('bash', [STACK, 'up'], { encoding: 'utf8', env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin', STEWARD_STACK_DIR: dir } });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^stack: \S+ is missing: install /);
  });

  it('stack-down leaves no process of the stack behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stack-'));
    const up = spawnSync('bash', [STACK, 'up'], { encoding: 'utf8', env: { ...process.env, STEWARD_STACK_DIR: dir } });
    expect(up.status, up.stderr).toBe(0);
    const running = () => spawnSync('pgrep', ['-f', dir], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    expect(running().length).toBeGreaterThanOrEqual(3); // etcd, kube-apiserver, postgres (moto's args do not name the folder)
    const status = spawnSync('bash', [STACK, 'status'], { encoding: 'utf8', env: { ...process.env, STEWARD_STACK_DIR: dir } }).stdout;
    expect(status).toMatch(/moto: running \(pid (\d+)\)/);
    const motoPid = status.match(/moto: running \(pid (\d+)\)/)![1]!;
    const down = spawnSync('bash', [STACK, 'down'], { encoding: 'utf8', env: { ...process.env, STEWARD_STACK_DIR: dir } });
    expect(down.status, down.stderr).toBe(0);
    expect(running()).toEqual([]);
    expect(spawnSync('kill', ['-0', motoPid]).status).not.toBe(0);
  }, 180_000);
});
