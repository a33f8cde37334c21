// The connector: resolves a Warehouse into a live connection pool, reading its credentials and CA
// from Secrets on demand and keeping one pool per Warehouse, and hands out the drivers that work on
// that pool. Every controller (and `steward plan`) gets its connections here, so every connection
// Steward makes uses the same verified TLS settings.
import type pg from 'pg';
import type { Warehouse } from '../../api/warehouse.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { SecretNotFoundError, SecretReader } from '../../runtime/secrets.ts';
import type { AuditSink } from '../../audit/sink.ts';
import { PoolCache, observeSession, type ConnectionSettings, type SessionFacts, type SslMode } from './connection.ts';
import { PostgresAccessDriver, type AccessDriver } from './access-driver.ts';
import { PostgresViewDriver, type ViewDriver } from './view-driver.ts';
import { AuditTableSink, ensureAuditTable } from './audit-table.ts';

/** What a reconciler may do in one Warehouse: the drivers of its targets, its audit table, its secrets kept out of messages. */
export interface WarehouseDrivers {
  access: AccessDriver;
  views: ViewDriver;
  /** The Warehouse's append-only audit table, for records outside a driver's transaction. */
  auditTable: AuditSink;
  /** The message with every secret of the Warehouse's connection taken out. */
  scrub(message: string): string;
}

/** What the Warehouse reconciler asks of a connection: how the session is protected, and the audit table. */
export interface WarehouseSession {
  sessionFacts(): Promise<SessionFacts>;
  ensureAuditTable(): Promise<void>;
  auditTable: AuditSink;
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

  /** `secretVersion`: the resourceVersion the Secrets' metadata watch last saw, so values are read once per version. */
  constructor(client: KubeClient, maxConnectionsPerWarehouse = 10, secretVersion?: (namespace: string, name: string) => string | undefined) {
    this.secrets = new SecretReader(client, secretVersion);
    this.pools = new PoolCache(maxConnectionsPerWarehouse);
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
        auditTable: new AuditTableSink(pool),
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
      auditTable: new AuditTableSink(pool),
      scrub: (message) => scrub(message, settings),
    };
    this.sessions.set(pool, session);
    return session;
  }

  forget(name: string): Promise<void> {
    return this.pools.close(name);
  }

  closeAll(): Promise<void> {
    return this.pools.closeAll();
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
