// Steward's process entry: configuration, logger, HTTP (health, metrics), leader election, the
// controllers, and a graceful shutdown on SIGTERM that finishes reconciles in flight and hands the
// Lease back so a standby replica takes over at once.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { KubeClient } from './runtime/kube.ts';
import { createLogger } from './runtime/logger.ts';
import { Metrics } from './runtime/metrics.ts';
import { startHttpServer } from './runtime/http.ts';
import { startAdmissionServer } from './runtime/admission.ts';
import { LeaderElector } from './runtime/leader.ts';
import { parseDuration } from './runtime/duration.ts';
import { Manager } from './controllers/manager.ts';
import { stewardAdmission } from './controllers/admission.ts';

const { values: flags } = parseArgs({
  options: {
    'metrics-bind-address': { type: 'string', default: process.env.STEWARD_METRICS_ADDR ?? ':8080' },
    'leader-elect': { type: 'string', default: process.env.STEWARD_LEADER_ELECT ?? 'true' },
    'leader-election-namespace': { type: 'string', default: process.env.POD_NAMESPACE ?? 'steward-system' },
    'leader-election-id': { type: 'string', default: 'steward-leader' },
    'lease-duration': { type: 'string', default: process.env.STEWARD_LEASE_DURATION ?? '15s' },
    resync: { type: 'string', default: process.env.STEWARD_RESYNC ?? '5m' },
    concurrency: { type: 'string', default: process.env.STEWARD_CONCURRENCY ?? '8' },
    'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
    // Act as another user (Impersonate-User), as kubectl --as does: e.g. run locally with exactly the
    // permissions of the deployed ServiceAccount to check that its ClusterRole is enough.
    as: { type: 'string', default: process.env.STEWARD_IMPERSONATE },
    'openlineage-url': { type: 'string', default: process.env.STEWARD_OPENLINEAGE_URL },
    'openlineage-file': { type: 'string', default: process.env.STEWARD_OPENLINEAGE_FILE },
    // The mutating admission webhook that stamps who asked on every Steward object (off when empty).
    'webhook-bind-address': { type: 'string', default: process.env.STEWARD_WEBHOOK_ADDR ?? '' },
    'webhook-cert-dir': { type: 'string', default: process.env.STEWARD_WEBHOOK_CERT_DIR ?? '/tmp/k8s-webhook-server/serving-certs' },
    // A DatasetAccess is revoked while its DELETE is admitted (the webhook's /validate, which a
    // ValidatingWebhookConfiguration must send the DELETEs of datasetaccesses), not by a finalizer.
    'revoke-at-admission': { type: 'string', default: process.env.STEWARD_REVOKE_AT_ADMISSION ?? 'false' },
  },
});

const logger = createLogger({ level: flags['log-level'] });
const identity = process.env.POD_NAME ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
const actor =
  process.env.STEWARD_ACTOR ??
  (process.env.POD_NAMESPACE && process.env.SERVICE_ACCOUNT
    ? `system:serviceaccount:${process.env.POD_NAMESPACE}:${process.env.SERVICE_ACCOUNT}`
    : `steward@${hostname()}`);

async function main(): Promise<void> {
  const metrics = new Metrics();
  const client = KubeClient.fromDefault({
    userAgent: `steward/${identity}`,
    impersonateUser: flags.as,
    onRequest: (method, resource, code) => metrics.restClientRequests.inc({ method, resource, code: String(code) }),
  });
  const leaseDurationMs = parseDuration(flags['lease-duration']);
  const revokeAtAdmission = flags['revoke-at-admission'] === 'true';
  if (revokeAtAdmission && !flags['webhook-bind-address'])
    throw new Error('--revoke-at-admission=true needs the webhook it is served by (--webhook-bind-address)');
  const manager = new Manager({
    client,
    logger,
    metrics,
    identity,
    actor,
    resyncMs: parseDuration(flags.resync),
    concurrency: Number(flags.concurrency),
    openLineage: flags['openlineage-url'] || flags['openlineage-file'] ? { url: flags['openlineage-url'], file: flags['openlineage-file'] } : undefined,
    revokeAtAdmission,
  });
  // A standby answers the DELETEs the Service sends it too: its caches of Warehouses, ObjectStores and Secrets are filled now.
  let revoking = !revokeAtAdmission;
  if (revokeAtAdmission) void manager.startRevoking().then(() => (revoking = true));

  let shuttingDown = false;
  const elector =
    flags['leader-elect'] === 'true'
      ? new LeaderElector(client, {
          namespace: flags['leader-election-namespace'],
          name: flags['leader-election-id'],
          identity,
          leaseDurationMs,
          renewDeadlineMs: Math.round(leaseDurationMs * (2 / 3)),
          retryPeriodMs: Math.max(200, Math.round(leaseDurationMs / 7.5)),
          logger,
          onLeadershipChange: (leading) => metrics.leader.set({ name: flags['leader-election-id'] }, leading ? 1 : 0),
        })
      : undefined;

  const server = await startHttpServer(flags['metrics-bind-address'], metrics, {
    live: () => true,
    // A standby is healthy and ready to take over; the leader is ready once its caches synced.
    ready: () => !shuttingDown && revoking && (elector ? !elector.isLeader || manager.ready : manager.ready),
  });
  // Every replica serves admission, leader or not: the API server calls whichever the Service picks.
  const webhook = flags['webhook-bind-address']
    ? await startAdmissionServer(
        flags['webhook-bind-address'],
        flags['webhook-cert-dir'],
        stewardAdmission(revokeAtAdmission ? manager.revokeAtDeletion : undefined),
        logger,
      )
    : undefined;
  const webhookAddress = webhook?.address();
  if (webhookAddress && typeof webhookAddress === 'object')
    logger.info({ webhook: `${webhookAddress.address}:${webhookAddress.port}` }, 'admission webhook serving');
  const address = server.address();
  logger.info({ identity, actor, http: typeof address === 'object' && address ? `${address.address}:${address.port}` : address }, 'steward starting');

  const shutdown = async (signal: string, code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: finishing reconciles in flight');
    const force = setTimeout(() => {
      logger.error('shutdown took longer than 25s; exiting');
      process.exit(code || 1);
    }, 25_000);
    force.unref();
    await manager.stop().catch((err: unknown) => logger.error({ err: String(err) }, 'stopping controllers failed'));
    await elector?.release();
    server.close();
    webhook?.close();
    client.close();
    logger.info('stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  process.on('SIGINT', () => void shutdown('SIGINT', 0));

  if (elector) {
    logger.info({ lease: `${flags['leader-election-namespace']}/${flags['leader-election-id']}` }, 'waiting for leadership');
    if (!(await elector.acquire())) return;
  }
  await manager.start();
  logger.info('controllers running');
  if (elector) {
    await elector.holdUntilLost();
    // A process that lost its Lease may no longer act: exit and let the orchestrator restart it.
    if (!shuttingDown) await shutdown('lease-lost', 1);
  }
}

main().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'steward failed to start');
  process.exit(1);
});
