// Once before the integration tests: the CRDs installed and established, Steward's namespace there.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO, loadStackEnv } from '../stack/env.ts';

function kubectl(args: string[]): void {
  const r = spawnSync('kubectl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
}

export default function setup(): void {
  loadStackEnv();
  kubectl(['apply', '--server-side', '--force-conflicts', '-k', join(REPO, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '-l', 'app.kubernetes.io/part-of=steward']);
  const ns = spawnSync('kubectl', ['create', 'namespace', 'steward-system'], { encoding: 'utf8' });
  if (ns.status !== 0 && !ns.stderr.includes('AlreadyExists')) throw new Error(ns.stderr);
}
