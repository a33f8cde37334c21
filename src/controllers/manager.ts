// Builds every controller with its dependencies and starts/stops them together.
import type { Logger } from 'pino';
import { splitKey, type KubeClient, type KubeObject } from '../runtime/kube.ts';
import { Controller } from '../runtime/controller.ts';
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
}

export class Manager {
  readonly connections: WarehouseConnections;
  /** The AWS clients of every ObjectStore. */
  readonly stores: ObjectStoreConnections;
  private readonly controllers: Controller<KubeObject>[] = [];
  private started = false;

  constructor(opts: ManagerOptions) {
    const { client, logger, metrics } = opts;
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
    const accesses: Controller<DatasetAccess> = new Controller<DatasetAccess>({
      name: 'datasetaccess',
      type: DATASET_ACCESS_TYPE,
      client,
      logger,
      metrics,
      events,
      reconcile: datasetAccessReconciler(accessDeps),
      finalizer: DATASET_ACCESS_FINALIZER,
      cleanup: datasetAccessCleanup(accessDeps),
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

  async start(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.start()));
    this.started = true;
  }

  async stop(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
    await this.connections.closeAll();
  }
}
