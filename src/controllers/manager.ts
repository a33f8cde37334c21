// Builds every controller with its dependencies and starts/stops them together.
import type { Logger } from 'pino';
import { isNotFound, splitKey, type KubeClient, type KubeObject } from '../runtime/kube.ts';
import { hasFinalizer } from '../runtime/finalizers.ts';
import { Controller, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { Informer } from '../runtime/informer.ts';
import { EventRecorder } from '../runtime/events.ts';
import type { Metrics } from '../runtime/metrics.ts';
import { SECRET_TYPE } from '../runtime/secrets.ts';
import type { ResourceType } from '../runtime/kube.ts';

const NAMESPACE_TYPE: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };
import { AuditTrail, LogSink } from '../audit/sink.ts';
import type { Warehouse } from '../api/warehouse.ts';
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { MaskedView } from '../api/maskedview.ts';
import {
  MASKED_VIEW_FINALIZER,
  MASKED_VIEW_TYPE,
  maskedViewCleanup,
  maskedViewReconciler,
  readAheadViews,
  viewsInNamespace,
  viewsOfWarehouse,
  type OpenLineageTarget,
} from './maskedview.ts';
import {
  DATASET_ACCESS_FINALIZER,
  DATASET_ACCESS_TYPE,
  accessesInNamespace,
  accessesOfWarehouse,
  datasetAccessCleanup,
  datasetAccessReconciler,
  expiredFirst,
  readAheadAccesses,
} from './datasetaccess.ts';
import { WarehouseConnections } from '../drivers/postgres/connector.ts';
import { WAREHOUSE_TYPE, warehouseReconciler, warehousesUsingSecret } from './warehouse.ts';
import type { ObjectStore } from '../api/objectstore.ts';
import { ObjectStoreConnections } from '../drivers/aws/clients.ts';
import type { SecretRotation } from '../api/secretrotation.ts';
import { OwnedSecrets } from '../drivers/kubernetes/owned-secret.ts';
import type { AccessReview } from '../api/accessreview.ts';
import { ACCESS_REVIEW_TYPE, accessReviewReconciler, accessesRevokedBy, reviewRevocation, reviewsOfStore, reviewsOfWarehouse } from './accessreview.ts';
import { SecretsManagerTarget } from '../drivers/aws/secrets-manager.ts';
import { SECRET_ROTATION_TYPE, rotationsOfWarehouse, secretRotationReconciler } from './secretrotation.ts';
import { OBJECT_STORE_TYPE, accessesOfStore, objectStoreReconciler, storesOfBucket, storesUsingSecret } from './objectstore.ts';

export interface ManagerOptions {
  client: KubeClient;
  logger: Logger;
  metrics: Metrics;
  identity: string;
  actor: string;
  resyncMs: number;
  concurrency: number;
  /** Where MaskedView lineage is sent as OpenLineage RunEvents (HTTP endpoint and/or NDJSON file). */
  openLineage?: OpenLineageTarget;
  /**
   * A DatasetAccess is revoked while the API server admits its DELETE (revokeAtDeletion, behind a
   * ValidatingWebhookConfiguration), not through a finalizer: docs/datasetaccess.md, Deletion.
   */
  revokeAtAdmission?: boolean;
}

/** A revoke at admission is tried this often, and again only this long after the first try began. */
const REVOKE_TRIES = 3;
const REVOKE_RETRY_WINDOW_MS = 3_000;

export class Manager {
  readonly connections: WarehouseConnections;
  /** The AWS clients of every ObjectStore. */
  readonly stores: ObjectStoreConnections;
  private readonly controllers: Controller<KubeObject>[] = [];
  private started = false;
  /** What a replica that does not lead needs to revoke at admission: the Warehouses, ObjectStores and their Secrets. */
  private readonly revokeCaches: Informer<KubeObject>[];
  private readonly accesses: Controller<DatasetAccess>;
  private readonly cleanupAccess: (dsa: DatasetAccess, ctx: ReconcileContext) => Promise<Outcome>;
  private readonly client: KubeClient;

  constructor(opts: ManagerOptions) {
    const { client, logger, metrics } = opts;
    this.client = client;
    const secrets = new Informer<KubeObject>(client, SECRET_TYPE, { logger, metadataOnly: true });
    // Secret values are read again only when the watch sees a new resourceVersion: an idle resync costs no GET.
    const secretVersion = (namespace: string, name: string) => secrets.get(`${namespace}/${name}`)?.metadata.resourceVersion;
    this.connections = new WarehouseConnections(
      client,
      10,
      secretVersion,
      // A Warehouse whose health session ended is checked again now, not at its next resync.
      (name) => warehouses.queue.add(name),
    );
    const events = new EventRecorder(client, 'steward.dev/steward', opts.identity, logger);
    const audit = new AuditTrail(opts.actor, new LogSink(logger.child({ component: 'audit' })), logger);

    const warehouses: Controller<Warehouse> = new Controller<Warehouse>({
      name: 'warehouse',
      type: WAREHOUSE_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: warehouseReconciler({ connections: this.connections, audit }),
      forget: (name) => void this.connections.forget(name),
      watches: [{ informer: secrets, map: warehousesUsingSecret(() => warehouses.informer.list()) }],
      resyncMs: opts.resyncMs,
      concurrency: opts.concurrency,
    });
    this.controllers.push(warehouses as unknown as Controller<KubeObject>);

    const namespaces = new Informer<KubeObject>(client, NAMESPACE_TYPE, { logger });
    this.stores = new ObjectStoreConnections(client, secretVersion, (service, operation) => metrics.awsCalls.inc({ service, operation }));
    const stores: Controller<ObjectStore> = new Controller<ObjectStore>({
      name: 'objectstore',
      type: OBJECT_STORE_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: objectStoreReconciler({ stores: this.stores }),
      forget: (name) => this.stores.forget(name),
      watches: [{ informer: secrets, map: storesUsingSecret(() => stores.informer.list()) }],
      resyncMs: opts.resyncMs,
      concurrency: 2,
    });
    this.controllers.push(stores as unknown as Controller<KubeObject>);
    const namespaceLabels = (name: string) => namespaces.get(name)?.metadata.labels;
    const warehouse = (name: string) => warehouses.informer.get(name);
    const objectStore = (name: string) => stores.informer.get(name);
    // The audit Warehouse's table, delayed and kept while it does not answer (DelayedAuditTable).
    const auditTable = async (name: string) => {
      const wh = warehouse(name);
      return wh ? (await this.connections.drivers(wh).catch(() => undefined))?.auditTable : undefined;
    };
    // Reviews first: the accesses they revoke watch them. Their reconciles read accesses and views (below).
    const reviews: Controller<AccessReview> = new Controller<AccessReview>({
      name: 'accessreview',
      type: ACCESS_REVIEW_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: accessReviewReconciler({
        connections: this.connections,
        stores: this.stores,
        warehouse,
        objectStore,
        audit,
        namespaceLabels,
        accesses: () => accesses.informer.list(),
        views: () => views.informer.list(),
        auditTable,
        onRead: (source) => metrics.reviewReads.inc({ source }),
      }),
      watches: [
        { informer: warehouses.informer as unknown as Informer<KubeObject>, map: reviewsOfWarehouse(() => reviews.informer.list()) },
        { informer: stores.informer as unknown as Informer<KubeObject>, map: reviewsOfStore(() => reviews.informer.list()) },
      ],
      resyncMs: opts.resyncMs,
      concurrency: 1,
    });
    this.controllers.push(reviews as unknown as Controller<KubeObject>);
    const revocations = reviewRevocation(() => reviews.informer.list(), warehouse, objectStore, namespaceLabels);
    const accessDeps = {
      connections: this.connections,
      audit,
      warehouse,
      namespaceLabels,
      reviewRevocation: revocations,
      s3: {
        stores: this.stores,
        audit,
        namespaceLabels,
        objectStores: storesOfBucket(() => stores.informer.list()),
        auditTable,
        reviewRevocation: revocations,
      },
    };
    this.cleanupAccess = datasetAccessCleanup(accessDeps);
    const accesses: Controller<DatasetAccess> = new Controller<DatasetAccess>({
      name: 'datasetaccess',
      type: DATASET_ACCESS_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: datasetAccessReconciler(accessDeps),
      finalizer: DATASET_ACCESS_FINALIZER,
      cleanup: this.cleanupAccess,
      deletionGuard: opts.revokeAtAdmission ? 'admission' : 'finalizer',
      // A Warehouse's policy or readiness, or a namespace's labels, change what an access may hold.
      watches: [
        { informer: warehouses.informer as unknown as Informer<KubeObject>, map: accessesOfWarehouse(() => accesses.informer.list()) },
        { informer: namespaces, map: accessesInNamespace(() => accesses.informer.list()) },
        { informer: stores.informer as unknown as Informer<KubeObject>, map: accessesOfStore(() => accesses.informer.list()) },
        // A review's decision (or its due time) revokes: at once, not at the next resync.
        { informer: reviews.informer as unknown as Informer<KubeObject>, map: accessesRevokedBy },
      ],
      startupOrder: expiredFirst,
      readAhead: readAheadAccesses(accessDeps),
      resyncMs: opts.resyncMs,
      concurrency: opts.concurrency,
    });
    this.controllers.push(accesses as unknown as Controller<KubeObject>);
    this.accesses = accesses;
    this.revokeCaches = [secrets, warehouses.informer, stores.informer] as Informer<KubeObject>[];

    const viewDeps = {
      client,
      connections: this.connections,
      audit,
      warehouse: accessDeps.warehouse,
      namespaceLabels: accessDeps.namespaceLabels,
      openLineage: opts.openLineage,
    };
    const views: Controller<MaskedView> = new Controller<MaskedView>({
      name: 'maskedview',
      type: MASKED_VIEW_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: maskedViewReconciler(viewDeps),
      finalizer: MASKED_VIEW_FINALIZER,
      cleanup: maskedViewCleanup(viewDeps),
      readAhead: readAheadViews(viewDeps),
      // As for DatasetAccess: a policy or a namespace's labels change what a view may serve.
      watches: [
        { informer: warehouses.informer as unknown as Informer<KubeObject>, map: viewsOfWarehouse(() => views.informer.list()) },
        { informer: namespaces, map: viewsInNamespace(() => views.informer.list()) },
      ],
      resyncMs: opts.resyncMs,
      concurrency: opts.concurrency,
    });
    this.controllers.push(views as unknown as Controller<KubeObject>);

    // The SecretRotation's own Secrets, read again only when the watch sees them change.
    const ownedSecrets = new OwnedSecrets(client, secretVersion);
    const rotations: Controller<SecretRotation> = new Controller<SecretRotation>({
      name: 'secretrotation',
      type: SECRET_ROTATION_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: secretRotationReconciler({
        connections: this.connections,
        warehouse,
        audit,
        namespaceLabels,
        secrets: ownedSecrets,
        rotations: () => rotations.informer.list(),
        awsSecrets: new SecretsManagerTarget((operation) => metrics.awsCalls.inc({ service: 'secretsmanager', operation })),
      }),
      watches: [{ informer: warehouses.informer as unknown as Informer<KubeObject>, map: rotationsOfWarehouse(() => rotations.informer.list()) }],
      forget: (key) => {
        const { namespace, name } = splitKey(key);
        ownedSecrets.forgetOwner(namespace!, name);
      },
      resyncMs: opts.resyncMs,
      concurrency: 2,
    });
    this.controllers.push(rotations as unknown as Controller<KubeObject>);
  }

  get ready(): boolean {
    return this.started;
  }

  /**
   * Revokes an access whose DELETE is being admitted, as `user` (ManagerOptions.revokeAtAdmission).
   * The leader does it between its own reconciles of the access (Controller.cleanupAtAdmission); a
   * replica that does not lead does it from the caches startRevoking() filled, and the leader's watch
   * then cleans up whatever a reconcile of its own granted meanwhile.
   */
  readonly revokeAtDeletion = async (requested: DatasetAccess, user: string): Promise<Outcome> => {
    const ctx = this.accesses.context(`${requested.metadata.namespace}/${requested.metadata.name}`, user);
    await this.startRevoking();
    // The webhook's port answers anyone who reaches it, so what the request says is not taken on
    // trust: the revoke is of the access as it is, and only if it is the one named (its uid, which
    // only those who may read it know). A DELETE of an access that is not there deletes nothing; one
    // that still carries the finalizer (made before, or without this webhook) is revoked through it.
    const access = await this.liveAccess(requested);
    if (!access || hasFinalizer(access, DATASET_ACCESS_FINALIZER)) {
      if (!access) ctx.logger.warn({ uid: requested.metadata.uid }, 'a DELETE was admitted for an access that is not there as named; nothing revoked');
      return { state: 'Ready', reason: access ? 'Finalizer' : 'NotFound', message: access ? 'revoked through its finalizer' : 'no such access' };
    }
    const revoke = () => (this.started ? this.accesses.cleanupAtAdmission(access, ctx) : this.cleanupAccess(access, ctx));
    // What fails for a passing reason (another transaction changed the role between the look and the
    // revoke) is tried again at once, briefly; what persists (a warehouse that does not answer) is
    // answered with the last try's reason well within the webhook's timeout.
    const began = Date.now();
    for (let tries = 1; ; tries++) {
      const outcome = await revoke().catch(
        (err: unknown): Outcome => ({ state: 'Progressing', reason: 'RevokeFailed', message: err instanceof Error ? err.message : String(err) }),
      );
      if (outcome.state === 'Ready' || tries >= REVOKE_TRIES || Date.now() - began > REVOKE_RETRY_WINDOW_MS) return outcome;
      ctx.logger.info({ reason: outcome.reason, err: outcome.message, tries }, 'revoke at admission failed; trying again');
      await new Promise((r) => setTimeout(r, 50 * 4 ** tries));
    }
  };

  /** The access a DELETE names, as the cache or else the API server has it, if it has the uid the request says. */
  private async liveAccess(requested: DatasetAccess): Promise<DatasetAccess | undefined> {
    const { namespace, name, uid } = requested.metadata;
    const cached = this.started ? this.accesses.informer.get(`${namespace}/${name}`) : undefined;
    if (cached && cached.metadata.uid === uid) return cached;
    const live = await this.client.get<DatasetAccess>(DATASET_ACCESS_TYPE, name, namespace).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    return live?.metadata.uid === uid ? live : undefined;
  }

  /** Fills the caches revokeAtDeletion needs on a replica that does not lead (the leader's controllers share them). */
  async startRevoking(): Promise<void> {
    await Promise.all(this.revokeCaches.map((informer) => informer.start()));
  }

  async start(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.start()));
    this.started = true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
    await this.connections.closeAll();
  }
}
