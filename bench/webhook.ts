// Steward's admission webhook, as the chart deploys it by default (webhook.enabled), for the bench's
// Steward: served in this process over TLS, registered for the bench's namespace only, and just
// around Steward's run (the floors' creates do not go through it). BENCH_WEBHOOK=0 measures Steward
// without it, as deploy/ (kustomize) installs it: Steward then adds its finalizer with a patch.
import type { Logger } from 'pino';
import { mutateStewardObject } from '../src/controllers/admission.ts';
import { startAdmissionServer } from '../src/runtime/admission.ts';
import type { KubeClient } from '../src/runtime/kube.ts';
import { WEBHOOK_CONFIGURATION_TYPE, loopbackCertificates, webhookConfiguration } from '../test/stack/webhook.ts';

export const benchWebhookEnabled = () => process.env.BENCH_WEBHOOK !== '0';

/** Serves the webhook and registers it for `namespace`; returns what undoes both. */
export async function startBenchWebhook(client: KubeClient, namespace: string, logger: Logger): Promise<() => Promise<void>> {
  const { dir, ca } = loopbackCertificates();
  const server = await startAdmissionServer('127.0.0.1:0', dir, mutateStewardObject, logger);
  const name = `steward-bench-${namespace}`;
  await client.create(
    WEBHOOK_CONFIGURATION_TYPE,
    webhookConfiguration(name, (server.address() as { port: number }).port, ca, {
      resources: ['datasetaccesses'],
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
    }),
  );
  // The API server picks up a new configuration within a second or so.
  await new Promise((r) => setTimeout(r, 2000));
  return async () => {
    await client.delete(WEBHOOK_CONFIGURATION_TYPE, name).catch(() => undefined);
    server.close();
  };
}
