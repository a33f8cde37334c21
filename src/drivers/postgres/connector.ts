// The connector: resolves a Warehouse into a live connection pool, reading its credentials and CA
// from Secrets on demand and keeping one pool per Warehouse. Every controller (and `steward plan`)
// gets its pools here, so every connection Steward makes uses the same verified TLS settings.
import type pg from 'pg';
import type { Warehouse } from '../../api/warehouse.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { readSecret } from '../../runtime/secrets.ts';
import { PoolCache, type ConnectionSettings, type SslMode } from './connection.ts';

/** A reason a Warehouse cannot be connected to that a human must fix in its Secrets. */
export class WarehouseSecretError extends Error {
  readonly reason: 'CredentialsSecretNotFound' | 'CredentialsSecretInvalid' | 'CASecretNotFound' | 'CASecretInvalid';
  constructor(reason: WarehouseSecretError['reason'], message: string) {
    super(message);
    this.reason = reason;
  }
}

export class WarehouseConnections {
  readonly pools: PoolCache;

  private readonly client: KubeClient;

  constructor(client: KubeClient, maxConnectionsPerWarehouse = 10) {
    this.client = client;
    this.pools = new PoolCache(maxConnectionsPerWarehouse);
  }

  async settings(wh: Warehouse): Promise<ConnectionSettings> {
    const pgSpec = wh.spec.postgres;
    const credRef = pgSpec.credentialsSecretRef;
    const creds = await readSecret(this.client, credRef.namespace, credRef.name).catch((err: unknown) => {
      throw new WarehouseSecretError('CredentialsSecretNotFound', `${(err as Error).message}: create it with the keys username and password`);
    });
    if (!creds.username || !creds.password) {
      throw new WarehouseSecretError('CredentialsSecretInvalid', `Secret ${credRef.namespace}/${credRef.name} must hold non-empty keys username and password`);
    }
    let ca: string | undefined;
    const caRef = pgSpec.caSecretRef;
    if (caRef) {
      const key = caRef.key ?? 'ca.crt';
      const data = await readSecret(this.client, caRef.namespace, caRef.name).catch((err: unknown) => {
        throw new WarehouseSecretError('CASecretNotFound', `${(err as Error).message}: create it with the CA certificate under the key ${key}`);
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

  forget(name: string): Promise<void> {
    return this.pools.close(name);
  }

  closeAll(): Promise<void> {
    return this.pools.closeAll();
  }
}

/** Removes every occurrence of the secret values from a message, before it goes anywhere visible. */
export function scrub(message: string, settings: Pick<ConnectionSettings, 'password'> | undefined): string {
  if (!settings?.password) return message;
  return message.split(settings.password).join('[REDACTED]');
}
