// Once before the integration tests: Steward compiled as the image has it, the CRDs installed and
// established, Steward's namespace there.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO, loadStackEnv } from '../stack/env.ts';

function kubectl(args: string[]): void {
  const r = spawnSync('kubectl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
}

/** dist/, as the image builds it: the tests run the compiled Steward the image ships (harness.ts imageScript). */
export function buildDist(): void {
  const tsc = join(REPO, 'node_modules', '.bin', 'tsc');
  const r = spawnSync(tsc, ['-p', join(REPO, 'tsconfig.build.json')], { encoding: 'utf8', cwd: REPO });
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed: ${r.stdout}${r.stderr}`);
}

export default function setup(): void {
  buildDist();
  loadStackEnv();
  kubectl(['apply', '--server-side', '--force-conflicts', '-k', join(REPO, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=steward']);
  const ns = spawnSync('kubectl', ['create', 'namespace', 'steward-system'], { encoding: 'utf8' });
  if (ns.status !== 0 && !ns.stderr.includes('AlreadyExists')) throw new Error(ns.stderr);
}
