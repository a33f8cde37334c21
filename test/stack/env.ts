// Loads .stack/env.sh (written by test/stack/stack.sh) into process.env, unless it is already there
// (make test sources it). Shared by the integration tests, the demo and the benchmarks.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');

export function loadStackEnv(): void {
  if (process.env.KUBECONFIG && process.env.PGPORT && process.env.AWS_ENDPOINT_URL) return;
  const file = join(process.env.STEWARD_STACK_DIR ?? join(REPO, '.stack'), 'env.sh');
  if (!existsSync(file)) throw new Error('the local stack is not running: run `make stack` first');
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trimStart().startsWith('export')) continue;
    for (const m of line.matchAll(/(\w+)='([^']*)'|(\w+)=([^\s']+)/g)) {
      const key = m[1] ?? m[3];
      const value = m[2] ?? m[4];
      if (key && value !== undefined) process.env[key] = value;
    }
  }
}
