// The install paths, checked as far as this machine allows (no container runtime here): the kustomize
// manifests and the Helm chart render and are accepted by the real API server, and the ClusterRole
// they grant is enough for Steward to work — proven by running Steward as that ServiceAccount — and
// no more than it needs.
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it("the chart's admission webhook: its certificate is signed by the caBundle, for the Service's name, and mounted where Steward reads it", () => {
    const rendered = spawnSync(helmBin, ['template', 'steward', join(REPO, 'charts/steward'), '--namespace', 'steward-system'], { encoding: 'utf8' });
    expect(rendered.status, rendered.stderr).toBe(0);
    const all = docs(rendered.stdout);
    const config = all.find((d) => d.kind === 'MutatingWebhookConfiguration')!;
    const secret = all.find((d) => d.kind === 'Secret' && d.metadata.name === 'steward-webhook-tls')!;
    const hook = config.webhooks[0];
    expect(hook).toMatchObject({
      failurePolicy: 'Fail',
      sideEffects: 'None',
      clientConfig: { service: { name: 'steward-webhook', namespace: 'steward-system', path: '/mutate' } },
    });
    const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, 'base64'));
    const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'], 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('steward-webhook.steward-system.svc')).toBe('steward-webhook.steward-system.svc');
    const container = all.find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0];
    expect(container.args).toEqual(
      expect.arrayContaining(['--webhook-bind-address=:9443', '--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs', '--revoke-at-admission=true']),
    );
    expect(container.volumeMounts).toEqual([{ name: 'webhook-tls', mountPath: '/tmp/k8s-webhook-server/serving-certs', readOnly: true }]);
    // Revoke at admission: the DELETEs of DatasetAccesses, and nothing else, go to /validate with the same CA; a dry run has no side effect.
    const revoke = all.find((d) => d.kind === 'ValidatingWebhookConfiguration')!.webhooks[0];
    expect(revoke).toMatchObject({
      name: 'revoke.steward.dev',
      failurePolicy: 'Fail',
      sideEffects: 'NoneOnDryRun',
      clientConfig: { service: { name: 'steward-webhook', namespace: 'steward-system', path: '/validate' }, caBundle: hook.clientConfig.caBundle },
      rules: [{ apiGroups: ['steward.dev'], operations: ['DELETE'], resources: ['datasetaccesses'] }],
    });
    expect(revoke.timeoutSeconds).toBeLessThanOrEqual(30);
    // And the whole of it is accepted by the API server (dry run: no webhook is really registered).
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('mutatingwebhookconfiguration.admissionregistration.k8s.io/steward-stamp created (server dry run)');
    expect(r.stdout).toContain('validatingwebhookconfiguration.admissionregistration.k8s.io/steward-revoke created (server dry run)');
    // Turned off, the finalizer does the work again: no configuration, and Steward is told so.
    const off = spawnSync(helmBin, ['template', 'steward', join(REPO, 'charts/steward'), '-n', 'steward-system', '--set', 'webhook.revokeAtAdmission=false'], {
      encoding: 'utf8',
    });
    expect(off.status, off.stderr).toBe(0);
    expect(docs(off.stdout).some((d) => d.kind === 'ValidatingWebhookConfiguration')).toBe(false);
    expect(docs(off.stdout).find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0].args).toContain('--revoke-at-admission=false');
  });
});

describe('kind (make kind-demo): what can be checked without Docker', () => {
  it("deploy/kind/cluster.yaml is a kind Cluster by kind's own types; a misspelt field is refused", async () => {
    // Not spawnSync: the first `go run` compiles for minutes, and an event loop held that long
    // cannot close its idle API server sockets before the server does (kube.ts, IDLE_SOCKET_MS):
    // the next test's first POST then met a closed socket ("socket hang up").
    const check = (file: string) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
        execFile('go', ['run', '.', file], { cwd: join(REPO, 'test/stack/kind-config-check'), encoding: 'utf8', timeout: 600_000 }, (err, stdout, stderr) =>
          resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const ok = await check(join(REPO, 'deploy/kind/cluster.yaml'));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('ok: cluster steward, 1 node(s), 1 control-plane');
    const dir = mkdtempSync(join(tmpdir(), 'kind-'));
    writeFileSync(join(dir, 'bad.yaml'), 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n    extraPortMapping: []\n');
    const bad = await check(join(dir, 'bad.yaml'));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('unknown field "extraPortMapping"');
  }, 600_000);

  it("the demo's PostgreSQL and the chart with the kind values are accepted by the API server; demo.sh parses", async () => {
    await ensureNamespace('data');
    const db = kubectl(['apply', '--dry-run=server', '-f', join(REPO, 'deploy/kind/postgres.yaml')]);
    expect(db.code, db.stderr).toBe(0);
    expect(db.stdout).toContain('deployment.apps/analytics-db created (server dry run)');
    const rendered = spawnSync(
      helmBin,
      ['template', 'steward', join(REPO, 'charts/steward'), '-n', 'steward-system', '-f', join(REPO, 'deploy/kind/values.yaml')],
      {
        encoding: 'utf8',
      },
    );
    expect(rendered.status, rendered.stderr).toBe(0);
    const container = docs(rendered.stdout).find((d) => d.kind === 'Deployment')!.spec.template.spec.containers[0];
    expect(container).toMatchObject({ image: 'steward:kind', imagePullPolicy: 'Never' });
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
    expect(r.code, r.stderr).toBe(0);
    const syntax = spawnSync('bash', ['-n', join(REPO, 'deploy/kind/demo.sh')], { encoding: 'utf8' });
    expect(syntax.status, syntax.stderr).toBe(0);
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
