// BENCH_WEBHOOK=1: Steward's admission webhook, as a deployment runs it, for the bench's Steward:
// served in this process over TLS (a CA made here with openssl), registered for the bench's
// namespace only. The floors' creates go through it too when it is registered for them, so it is
// registered just around Steward's run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mutateStewardObject } from '../src/controllers/admission.ts';
import { startAdmissionServer } from '../src/runtime/admission.ts';
import type { KubeClient, KubeObject, ResourceType } from '../src/runtime/kube.ts';
import type { Logger } from 'pino';

const WEBHOOK_TYPE: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'mutatingwebhookconfigurations',
  kind: 'MutatingWebhookConfiguration',
  namespaced: false,
};

export const benchWebhookEnabled = () => process.env.BENCH_WEBHOOK === '1';

/** Serves the webhook and registers it for `namespace`; returns what undoes both. */
export async function startBenchWebhook(client: KubeClient, namespace: string, logger: Logger): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-webhook-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=bench-ca',
  );
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '1', '-extfile', 'ext.cnf');
  const server: Server = await startAdmissionServer('127.0.0.1:0', dir, mutateStewardObject, logger);
  const address = server.address() as { port: number };
  const name = `steward-bench-${namespace}`;
  await client.create(WEBHOOK_TYPE, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'stamp.steward.dev',
        clientConfig: { url: `https://127.0.0.1:${address.port}/mutate`, caBundle: Buffer.from(readFileSync(join(dir, 'ca.crt'))).toString('base64') },
        rules: [{ apiGroups: ['steward.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['datasetaccesses'], scope: 'Namespaced' }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        failurePolicy: 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 5,
      },
    ],
  } as KubeObject);
  // The API server picks up a new configuration within a second or so.
  await new Promise((r) => setTimeout(r, 2000));
  return async () => {
    await client.delete(WEBHOOK_TYPE, name).catch(() => undefined);
    server.close();
  };
}
