// The connector: resolves a Warehouse into a live connection pool, reading its credentials and CA
// from Secrets on demand and keeping one pool per Warehouse, and hands out the drivers that work on
// that pool. Every controller (and `steward plan`) gets its connections here, so every connection
// Steward makes uses the same verified TLS settings.
import type pg from 'pg';
import type { Warehouse } from '../../api/warehouse.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { SecretNotFoundError, SecretReader } from '../../runtime/secrets.ts';
import type { AuditSink } from '../../audit/sink.ts';
import {
  PoolCache,
  SingleStatementClient,
  fingerprint,
  observeSession,
  poolConfig,
  type ConnectionSettings,
  type SessionFacts,
  type SslMode,
} from './connection.ts';
import { PostgresAccessDriver, type AccessDriver } from './access-driver.ts';
import { PostgresReviewDriver } from './review-driver.ts';
import { PostgresViewDriver, type ViewDriver } from './view-driver.ts';
import { PostgresLoginDriver } from './login-driver.ts';
import { DelayedAuditTable, ensureAuditTable } from './audit-table.ts';

/** What a reconciler may do in one Warehouse: the drivers of its targets, its audit table, its secrets kept out of messages. */
export interface WarehouseDrivers {
  access: AccessDriver;
  views: ViewDriver;
  /** The logins a SecretRotation changes, tested over this Warehouse's TLS settings. */
  logins: PostgresLoginDriver;
  /** The grants an AccessReview reads, and the out-of-band ones it revokes. */
  reviews: PostgresReviewDriver;
  /** The Warehouse's append-only audit table, for records outside a driver's transaction. */
  auditTable: AuditSink;
  /** The message with every secret of the Warehouse's connection taken out. */
  scrub(message: string): string;
}

/** What the Warehouse reconciler asks of a connection: how the session is protected, and the audit table. */
export interface WarehouseSession {
  sessionFacts(): Promise<SessionFacts>;
  ensureAuditTable(): Promise<void>;
  /** The Warehouse's audit table, keeping what it could not write while the warehouse did not answer. */
  auditTable: DelayedAuditTable;
  /**
   * Keeps one idle session open to the warehouse, so that losing it (the server stops, restarts or
   * drops it) is known at once (onConnectionLost) instead of at the next resync. Costs no query.
   */
  watchHealth(): Promise<void>;
  scrub(message: string): string;
}

/** A reason a Warehouse cannot be connected to that a human must fix in its Secrets. */
export class WarehouseSecretError extends Error {
  /** SecretUnreadable: the Kubernetes API did not answer; it resolves by itself. The others a human must fix. */
  readonly reason: 'CredentialsSecretNotFound' | 'CredentialsSecretInvalid' | 'CASecretNotFound' | 'CASecretInvalid' | 'SecretUnreadable';
  constructor(reason: WarehouseSecretError['reason'], message: string) {
    super(message);
    this.reason = reason;
  }
}

export class WarehouseConnections {
  readonly pools: PoolCache;

  private readonly secrets: SecretReader;
  private readonly byPool = new WeakMap<pg.Pool, WarehouseDrivers>();
  private readonly sessions = new WeakMap<pg.Pool, WarehouseSession>();
  private readonly auditTables = new Map<string, DelayedAuditTable>();
  private readonly sentinels = new Map<string, { fingerprint: string; client: pg.Client }>();
  private readonly onConnectionLost: (warehouse: string) => void;

  /**
   * `secretVersion`: the resourceVersion the Secrets' metadata watch last saw, so values are read
   * once per version. `onConnectionLost`: a Warehouse's health session ended (see watchHealth).
   */
  constructor(
    client: KubeClient,
    maxConnectionsPerWarehouse = 10,
    secretVersion?: (namespace: string, name: string) => string | undefined,
    onConnectionLost: (warehouse: string) => void = () => undefined,
  ) {
    this.secrets = new SecretReader(client, secretVersion);
    this.pools = new PoolCache(maxConnectionsPerWarehouse);
    this.onConnectionLost = onConnectionLost;
  }

  /** One per Warehouse, across pools: what waits for the warehouse to answer survives a new password. */
  private auditTable(name: string): DelayedAuditTable {
    let table = this.auditTables.get(name);
    if (!table) {
      table = new DelayedAuditTable(() => this.pools.current(name), name);
      this.auditTables.set(name, table);
    }
    return table;
  }

  private async watchHealth(name: string, settings: ConnectionSettings): Promise<void> {
    const fp = fingerprint(settings);
    const known = this.sentinels.get(name);
    if (known?.fingerprint === fp) return;
    if (known) void known.client.end().catch(() => undefined);
    const client = new SingleStatementClient({ ...poolConfig(settings, 1), application_name: 'steward-health', keepAlive: true });
    const entry = { fingerprint: fp, client };
    this.sentinels.set(name, entry);
    const lost = () => {
      if (this.sentinels.get(name) !== entry) return; // replaced or closed on purpose
      this.sentinels.delete(name);
      this.onConnectionLost(name);
    };
    client.on('error', lost);
    client.on('end', lost);
    try {
      await client.connect();
    } catch (e) {
      lost();
      throw e;
    }
  }

  async settings(wh: Warehouse): Promise<ConnectionSettings> {
    const pgSpec = wh.spec.postgres;
    const credRef = pgSpec.credentialsSecretRef;
    const creds = await this.secrets.read(credRef.namespace, credRef.name).catch((err: unknown) => {
      throw secretError(err, 'CredentialsSecretNotFound', 'create it with the keys username and password');
    });
    if (!creds.username || !creds.password) {
      throw new WarehouseSecretError('CredentialsSecretInvalid', `Secret ${credRef.namespace}/${credRef.name} must hold non-empty keys username and password`);
    }
    let ca: string | undefined;
    const caRef = pgSpec.caSecretRef;
    if (caRef) {
      const key = caRef.key ?? 'ca.crt';
      const data = await this.secrets.read(caRef.namespace, caRef.name).catch((err: unknown) => {
        throw secretError(err, 'CASecretNotFound', `create it with the CA certificate under the key ${key}`);
      });
      ca = data[key];
      if (!ca?.includes('-----BEGIN CERTIFICATE-----')) {
        throw new WarehouseSecretError('CASecretInvalid', `Secret ${caRef.namespace}/${caRef.name} has no PEM certificate under the key ${key}`);
      }
    }
    return {
      host: pgSpec.host,
      port: pgSpec.port ?? 5432,
      database: pgSpec.database,
      sslMode: (pgSpec.sslMode ?? 'verify-full') as SslMode,
      ca,
      username: creds.username,
      password: creds.password,
    };
  }

  /** The Warehouse's pool, rebuilt when its settings or Secrets changed. */
  async pool(wh: Warehouse): Promise<{ pool: pg.Pool; settings: ConnectionSettings }> {
    const settings = await this.settings(wh);
    return { pool: this.pools.get(wh.metadata.name, settings), settings };
  }

  /** The drivers of a Warehouse, on its pool (rebuilt with the pool). Throws WarehouseSecretError. */
  async drivers(wh: Warehouse): Promise<WarehouseDrivers> {
    const { pool, settings } = await this.pool(wh);
    let drivers = this.byPool.get(pool);
    if (!drivers) {
      drivers = {
        access: new PostgresAccessDriver(pool, wh.metadata.name),
        views: new PostgresViewDriver(pool, wh.metadata.name),
        logins: new PostgresLoginDriver(pool, wh.metadata.name, settings),
        reviews: new PostgresReviewDriver(pool, wh.metadata.name),
        auditTable: this.auditTable(wh.metadata.name),
        scrub: (message) => scrub(message, settings),
      };
      this.byPool.set(pool, drivers);
    }
    return drivers;
  }

  /** What the Warehouse reconciler checks, on the Warehouse's pool: the same object while the pool lives. Throws WarehouseSecretError. */
  async session(wh: Warehouse): Promise<WarehouseSession> {
    const { pool, settings } = await this.pool(wh);
    const known = this.sessions.get(pool);
    if (known) return known;
    const session: WarehouseSession = {
      sessionFacts: async () => {
        const client = await pool.connect();
        try {
          return await observeSession(client);
        } finally {
          client.release();
        }
      },
      ensureAuditTable: () => ensureAuditTable(pool),
      auditTable: this.auditTable(wh.metadata.name),
      watchHealth: () => this.watchHealth(wh.metadata.name, settings),
      scrub: (message) => scrub(message, settings),
    };
    this.sessions.set(pool, session);
    return session;
  }

  async forget(name: string): Promise<void> {
    const sentinel = this.sentinels.get(name);
    this.sentinels.delete(name);
    this.auditTables.delete(name);
    await sentinel?.client.end().catch(() => undefined);
    await this.pools.close(name);
  }

  async closeAll(): Promise<void> {
    const sentinels = [...this.sentinels.values()];
    this.sentinels.clear();
    await Promise.all(sentinels.map((s) => s.client.end().catch(() => undefined)));
    await this.pools.closeAll();
  }
}

/** A missing Secret is for a human to create; any other failure to read it is said as what it is. */
function secretError(err: unknown, missing: 'CredentialsSecretNotFound' | 'CASecretNotFound', advice: string): WarehouseSecretError {
  const message = (err as Error).message;
  if (err instanceof SecretNotFoundError) return new WarehouseSecretError(missing, `${message}: ${advice}`);
  return new WarehouseSecretError('SecretUnreadable', `${message}; retrying`);
}

/** Removes every occurrence of the secret values from a message, before it goes anywhere visible. */
export function scrub(message: string, settings: Pick<ConnectionSettings, 'password'> | undefined): string {
  if (!settings?.password) return message;
  return message.split(settings.password).join('[REDACTED]');
}
