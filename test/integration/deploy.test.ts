// The install paths, checked as far as this machine allows (no container runtime here): the kustomize
// manifests and the Helm chart render and are accepted by the real API server, and the ClusterRole
// they grant is enough for Steward to work — proven by running Steward as that ServiceAccount — and
// no more than it needs.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { KINDS } from '../../src/api/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { REPO, Steward, apply, ensureNamespace, kube, kubectl, putSecret, stackCa, unique, waitForCondition, warehouseYaml } from './harness.ts';

const SA = 'system:serviceaccount:steward-system:steward';
let steward: Steward | undefined;
let warehouse: string | undefined;

function docs(yaml: string): Record<string, any>[] {
  return parseAllDocuments(yaml)
    .map((d) => d.toJSON())
    .filter(Boolean);
}

function helm(): string {
  const r = spawnSync('bash', [join(REPO, 'test/stack/build-helm.sh')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`no helm: ${r.stderr}`);
  return r.stdout.trim();
}

/** The helm binary, built from source once per machine (minutes on a fresh one: not inside a test's timeout). */
let helmBin: string;

beforeAll(async () => {
  await ensureNamespace('steward-system');
  helmBin = helm();
}, 900_000);

afterAll(async () => {
  await steward?.stop();
  if (warehouse) await kube.delete(WAREHOUSE_TYPE, warehouse).catch(() => undefined);
});

describe('install manifests', () => {
  it('kubectl apply -k deploy/ is accepted by the API server', () => {
    const r = kubectl(['apply', '--dry-run=server', '-k', join(REPO, 'deploy')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deployment.apps\/steward (created|configured|unchanged)/);
  });

  it('kubectl apply -f crds/ and -k crds/ are both accepted: the first thing users type works', () => {
    for (const flag of ['-f', '-k']) {
      const r = kubectl(['apply', '--server-side', '--dry-run=server', flag, join(REPO, 'crds')]);
      expect(r.code, `${flag}: ${r.stderr}`).toBe(0);
      expect(r.stdout.match(/customresourcedefinition.apiextensions.k8s.io\/\S+ serverside-applied/g) ?? [], flag).toHaveLength(KINDS.length);
    }
  });

  it('the Helm chart renders, lints and is accepted by the API server, with the same ClusterRole as deploy/', () => {
    const bin = helmBin;
    const lint = spawnSync(bin, ['lint', join(REPO, 'charts/steward')], { encoding: 'utf8' });
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
    const rendered = spawnSync(bin, ['template', 'steward', join(REPO, 'charts/steward'), '--namespace', 'steward-system', '--include-crds'], {
      encoding: 'utf8',
    });
    expect(rendered.status, rendered.stderr).toBe(0);
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
    expect(r.code, r.stderr).toBe(0);
    const chartRole = docs(rendered.stdout).find((d) => d.kind === 'ClusterRole');
    const kustomizeRole = docs(kubectl(['kustomize', join(REPO, 'deploy')]).stdout).find((d) => d.kind === 'ClusterRole');
    expect(chartRole?.rules).toEqual(kustomizeRole?.rules);
    expect(docs(rendered.stdout).filter((d) => d.kind === 'CustomResourceDefinition')).toHaveLength(KINDS.length);
  });
});

describe('RBAC', () => {
  it('Steward running as its ServiceAccount, with only the ClusterRole of deploy/, reconciles a Warehouse', async () => {
    const r = kubectl(['apply', '-f', join(REPO, 'deploy/base/rbac.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    await putSecret('steward-system', 'rbac-test-ca', { 'ca.crt': stackCa() });
    await putSecret('steward-system', 'rbac-test-creds', { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
    steward = Steward.start({ args: ['--as', SA] });
    await steward.waitForLog('controllers running as the ServiceAccount', (l) => l.msg === 'controllers running');
    warehouse = unique('wh-rbac');
    apply(warehouseYaml({ name: warehouse, caSecret: 'rbac-test-ca', credsSecret: 'rbac-test-creds' }));
    await waitForCondition(WAREHOUSE_TYPE, warehouse, undefined, 'Ready', 'True');
    const forbidden = steward.logs().match(/.*(: 403 |Forbidden).*/g) ?? [];
    expect(forbidden).toEqual([]);
  });

  it.each([
    // A SecretRotation's own Secrets are created, updated and deleted (ownership checked in code); nothing more.
    ['patch', 'secrets', '-A'],
    ['deletecollection', 'secrets', '-A'],
    ['delete', 'warehouses.steward.dev', ''],
    ['create', 'datasetaccesses.steward.dev', '-A'],
    ['get', 'pods', '-A'],
    ['create', 'clusterrolebindings', ''],
    ['update', 'leases', '-n default'],
  ])('the ServiceAccount cannot %s %s', (verb, resource, scope) => {
    const r = kubectl(['auth', 'can-i', verb, resource, ...scope.split(' ').filter(Boolean), '--as', SA]);
    expect(r.stdout.trim()).toBe('no');
  });
});
