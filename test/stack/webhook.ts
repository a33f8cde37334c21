// Steward's admission webhook on the local stack: a CA and a serving certificate for 127.0.0.1
// (openssl, as the chart or cert-manager would provide them in a cluster), and the
// MutatingWebhookConfiguration that points kube-apiserver at a local port. Shared by the tests and
// the bench.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeObject, ResourceType } from '../../src/runtime/kube.ts';

export const WEBHOOK_CONFIGURATION_TYPE: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'mutatingwebhookconfigurations',
  kind: 'MutatingWebhookConfiguration',
  namespaced: false,
};

export const VALIDATING_WEBHOOK_CONFIGURATION_TYPE: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'validatingwebhookconfigurations',
  kind: 'ValidatingWebhookConfiguration',
  namespaced: false,
};

/** A directory holding tls.crt and tls.key for IP 127.0.0.1, and the PEM of the CA that signed them. */
export function loopbackCertificates(): { dir: string; ca: string } {
  const dir = mkdtempSync(join(tmpdir(), 'steward-webhook-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=steward-webhook-test-ca');
  run('req', ...ec, '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  run('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '1', '-extfile', 'ext.cnf');
  return { dir, ca: readFileSync(join(dir, 'ca.crt'), 'utf8') };
}

/** The configuration for a webhook served at 127.0.0.1:port, Steward's kinds, limited by the selectors given. */
export function webhookConfiguration(
  name: string,
  port: number,
  ca: string,
  only: { resources?: string[]; objectSelector?: object; namespaceSelector?: object } = {},
): KubeObject {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'stamp.steward.dev',
        clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(ca).toString('base64') },
        rules: [{ apiGroups: ['steward.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: only.resources ?? ['*'], scope: '*' }],
        ...(only.objectSelector ? { objectSelector: only.objectSelector } : {}),
        ...(only.namespaceSelector ? { namespaceSelector: only.namespaceSelector } : {}),
        failurePolicy: 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 5,
      },
    ],
  } as KubeObject;
}

/**
 * The configuration that sends the DELETEs of datasetaccesses to the webhook at 127.0.0.1:port
 * (revoke at admission: --revoke-at-admission), as the chart's steward-revoke does.
 */
export function revokeWebhookConfiguration(
  name: string,
  port: number,
  ca: string,
  only: { objectSelector?: object; namespaceSelector?: object } = {},
): KubeObject {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'revoke.steward.dev',
        clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: Buffer.from(ca).toString('base64') },
        rules: [{ apiGroups: ['steward.dev'], apiVersions: ['*'], operations: ['DELETE'], resources: ['datasetaccesses'], scope: '*' }],
        ...(only.objectSelector ? { objectSelector: only.objectSelector } : {}),
        ...(only.namespaceSelector ? { namespaceSelector: only.namespaceSelector } : {}),
        failurePolicy: 'Fail',
        sideEffects: 'NoneOnDryRun',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 15,
      },
    ],
  } as KubeObject;
}
