// Builds every controller with its dependencies and starts/stops them together.
import type { Logger } from 'pino';
import type { KubeClient, KubeObject } from '../runtime/kube.ts';
import { Controller } from '../runtime/controller.ts';
import { Informer } from '../runtime/informer.ts';
import { EventRecorder } from '../runtime/events.ts';
import type { Metrics } from '../runtime/metrics.ts';
import { SECRET_TYPE } from '../runtime/secrets.ts';
import { AuditTrail, LogSink } from '../audit/sink.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { WarehouseConnections } from './warehouse-connections.ts';
import { WAREHOUSE_TYPE, warehouseReconciler, warehousesUsingSecret } from './warehouse.ts';

export interface ManagerOptions {
  client: KubeClient;
  logger: Logger;
  metrics: Metrics;
  identity: string;
  actor: string;
  resyncMs: number;
  concurrency: number;
}

export class Manager {
  readonly connections: WarehouseConnections;
  private readonly controllers: Controller<KubeObject>[] = [];
  private started = false;

  constructor(opts: ManagerOptions) {
    const { client, logger, metrics } = opts;
    this.connections = new WarehouseConnections(client);
    const events = new EventRecorder(client, 'steward.dev/steward', opts.identity, logger);
    const audit = new AuditTrail(opts.actor, new LogSink(logger.child({ component: 'audit' })), logger);

    const secrets = new Informer<KubeObject>(client, SECRET_TYPE, { logger, metadataOnly: true });
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
