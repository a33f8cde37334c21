// The API server is reached without @kubernetes/client-node: as a pod does (a service account's
// token and CA on disk), and through a kubeconfig with a token file, both against the stack's real
// kube-apiserver, which says who it took the caller for (SelfSubjectReview). A token file rewritten
// (as the kubelet rotates projected tokens) is used from the next request on.
import { mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../src/runtime/kube.ts';
import { fromKubeconfig, loadClusterAccess } from '../../src/runtime/kubeconfig.ts';
import { REPO, kube, kubectl, makeUnrelatedCa, unique } from './harness.ts';

const NS = 'default';
const first = unique('kc-a');
const second = unique('kc-b');
const token = (sa: string) => {
  const r = kubectl(['create', 'token', sa, '-n', NS, '--duration', '10m']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
};
const whoAmI = async (client: KubeClient) =>
  (
    await client.request<{ status: { userInfo: { username: string } } }>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    })
  ).status.userInfo.username;
const CA = join(process.env.STEWARD_STACK_DIR ?? join(REPO, '.stack'), 'pki', 'kube-ca.crt');

beforeAll(() => {
  for (const sa of [first, second]) expect(kubectl(['create', 'serviceaccount', sa, '-n', NS]).code).toBe(0);
});

afterAll(() => {
  for (const sa of [first, second]) kubectl(['delete', 'serviceaccount', sa, '-n', NS, '--wait=false']);
});

describe('reaching the API server without client-node', () => {
  it('in a pod: the service account token and CA, and a rotated token from the next request on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sa-'));
    writeFileSync(join(dir, 'ca.crt'), readFileSync(CA));
    writeFileSync(join(dir, 'token'), token(first));
    const env = { KUBECONFIG: join(dir, 'no-such-kubeconfig'), KUBERNETES_SERVICE_HOST: kube.server.hostname, KUBERNETES_SERVICE_PORT: kube.server.port };
    const client = new KubeClient(loadClusterAccess(env, dir));
    expect(await whoAmI(client)).toBe(`system:serviceaccount:${NS}:${first}`);
    writeFileSync(join(dir, 'token'), token(second));
    utimesSync(join(dir, 'token'), new Date(), new Date(Date.now() + 1000));
    expect(await whoAmI(client)).toBe(`system:serviceaccount:${NS}:${second}`);
    client.close();
  });

  it('through a kubeconfig with a token file and a CA file; a wrong CA is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    writeFileSync(join(dir, 'token'), token(first));
    const config = (ca: string) => `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "${kube.server.origin}", certificate-authority: ${ca}}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
    writeFileSync(join(dir, 'config'), config(CA));
    const client = new KubeClient(fromKubeconfig(join(dir, 'config')));
    expect(await whoAmI(client)).toBe(`system:serviceaccount:${NS}:${first}`);
    client.close();
    writeFileSync(join(dir, 'other-ca.crt'), makeUnrelatedCa());
    writeFileSync(join(dir, 'config'), config('other-ca.crt'));
    const wrong = new KubeClient(fromKubeconfig(join(dir, 'config')));
    await expect(whoAmI(wrong)).rejects.toThrow(/certificate/);
    wrong.close();
  });
});
