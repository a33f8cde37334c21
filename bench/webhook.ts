// Steward's admission webhook, as the chart deploys it by default (webhook.enabled), for the bench's
// Steward: served in this process over TLS, registered for the bench's namespace only, and just
// around Steward's run (the floors' creates and deletes do not go through it): the stamp on create
// and, with revokeAtAdmission, the revoke on DELETE (steward-revoke). BENCH_WEBHOOK=0 measures
// Steward without it, as deploy/ (kustomize) installs it: Steward then adds its finalizer with a
// patch, and a deletion waits for the finalizer's removal.
import type { Logger } from 'pino';
import { stewardAdmission, type RevokeAtDeletion } from '../src/controllers/admission.ts';
import { startAdmissionServer } from '../src/runtime/admission.ts';
import type { KubeClient } from '../src/runtime/kube.ts';
import {
  VALIDATING_WEBHOOK_CONFIGURATION_TYPE,
  WEBHOOK_CONFIGURATION_TYPE,
  loopbackCertificates,
  revokeWebhookConfiguration,
  webhookConfiguration,
} from '../test/stack/webhook.ts';

export const benchWebhookEnabled = () => process.env.BENCH_WEBHOOK !== '0';

/** Serves the webhook and registers it for `namespace` (the revoke too, given `revoke`); returns what undoes both. */
export async function startBenchWebhook(client: KubeClient, namespace: string, logger: Logger, revoke?: RevokeAtDeletion): Promise<() => Promise<void>> {
  const { dir, ca } = loopbackCertificates();
  const server = await startAdmissionServer('127.0.0.1:0', dir, stewardAdmission(revoke), logger);
  const name = `steward-bench-${namespace}`;
  const port = (server.address() as { port: number }).port;
  const namespaceSelector = { matchLabels: { 'kubernetes.io/metadata.name': namespace } };
  await client.create(WEBHOOK_CONFIGURATION_TYPE, webhookConfiguration(name, port, ca, { resources: ['datasetaccesses'], namespaceSelector }));
  if (revoke) await client.create(VALIDATING_WEBHOOK_CONFIGURATION_TYPE, revokeWebhookConfiguration(name, port, ca, { namespaceSelector }));
  // The API server picks up a new configuration within a second or so.
  await new Promise((r) => setTimeout(r, 2000));
  return async () => {
    await client.delete(WEBHOOK_CONFIGURATION_TYPE, name).catch(() => undefined);
    await client.delete(VALIDATING_WEBHOOK_CONFIGURATION_TYPE, name).catch(() => undefined);
    server.close();
  };
}
