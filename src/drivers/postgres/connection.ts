// Connections to a warehouse: TLS settings from sslMode, one pool per Warehouse (rebuilt when its
// settings or credentials change), and the server's own view of the session's TLS (pg_stat_ssl).
import { createHash } from 'node:crypto';
import pg from 'pg';

export type SslMode = 'verify-full' | 'verify-ca' | 'require';

export interface ConnectionSettings {
  host: string;
  port: number;
  database: string;
  sslMode: SslMode;
  /** PEM bundle to verify the server against; the system trust store when absent. */
  ca?: string;
  username: string;
  password: string;
}

export interface SessionFacts {
  ssl: boolean;
  tlsVersion: string | null;
  cipher: string | null;
  serverVersion: string;
  currentUser: string;
}

/**
 * Settings Steward's SQL depends on, pinned for each of its sessions as startup options, which
 * outrank what ALTER ROLE or ALTER DATABASE set: literals are read the standard way (quoteLiteral
 * writes E'...' anyway), a backslash never escapes a quote, text is UTF-8, and names resolve in
 * pg_catalog only (then the session's own temporary schema, last), so no function, operator or
 * table someone created in a schema on the login's search_path can stand in for the built-in one.
 * Everything Steward names outside pg_catalog it names with its schema.
 */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  standard_conforming_strings: 'on',
  backslash_quote: 'off',
  escape_string_warning: 'off',
  client_encoding: 'UTF8',
  search_path: 'pg_catalog,pg_temp',
};

export function startupOptions(settings: Readonly<Record<string, string>> = PINNED_SETTINGS): string {
  return Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
}

/**
 * A client that sends every statement through the extended query protocol (Parse/Bind/Execute),
 * where PostgreSQL accepts exactly one statement: a text that a broken literal or a stray semicolon
 * turned into two is refused whole ("cannot insert multiple commands into a prepared statement")
 * instead of running its second half.
 */
export class SingleStatementClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: one signature standing in for pg.Client's many overloads, each passed on as it came
  override query(config: any, values?: any, callback?: any): any {
    const single =
      typeof config === 'string'
        ? { text: config, queryMode: 'extended' }
        : config && typeof config === 'object' && typeof config.submit !== 'function'
          ? { ...config, queryMode: 'extended' }
          : config;
    return (super.query as (...args: unknown[]) => unknown).call(this, single, values, callback);
  }
}

export function poolConfig(s: ConnectionSettings, max = 10): pg.PoolConfig {
  const ssl =
    s.sslMode === 'require'
      ? { rejectUnauthorized: false }
      : {
          rejectUnauthorized: true,
          ca: s.ca,
          servername: isIpAddress(s.host) ? undefined : s.host,
          // verify-ca checks the chain but not the host name.
          ...(s.sslMode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
        };
  return {
    host: s.host,
    port: s.port,
    database: s.database,
    user: s.username,
    password: s.password,
    ssl,
    max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    application_name: 'steward',
    options: startupOptions(),
    Client: SingleStatementClient,
    // What a Session sends without waiting goes out back to back, answered in order (session.ts).
    pipeline: true,
    // A statement that hangs must not hold a reconcile forever.
    statement_timeout: 60_000,
  };
}

function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

/** A fingerprint of everything that makes a pool: a change means a new pool. Holds no secret. */
export function fingerprint(s: ConnectionSettings): string {
  return createHash('sha256')
    .update(JSON.stringify([s.host, s.port, s.database, s.sslMode, s.ca ?? '', s.username, s.password]))
    .digest('hex');
}

export async function observeSession(client: pg.ClientBase): Promise<SessionFacts> {
  const r = await client.query<{ ssl: boolean | null; version: string | null; cipher: string | null; server_version: string; current_user: string }>(
    `SELECT s.ssl, s.version, s.cipher, current_setting('server_version') AS server_version, current_user::text AS current_user
       FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()`,
  );
  const row = r.rows[0];
  if (!row) throw new Error('pg_stat_ssl has no row for this session');
  // server_version may carry a distribution suffix ("15.8 (Debian 15.8-1)"): keep the number.
  return {
    ssl: row.ssl === true,
    tlsVersion: row.version,
    cipher: row.cipher,
    serverVersion: row.server_version.split(' ')[0] ?? row.server_version,
    currentUser: row.current_user,
  };
}

interface PoolEntry {
  pool: pg.Pool;
  fingerprint: string;
}

/** One pool per Warehouse. A pool whose settings changed is drained and replaced. */
export class PoolCache {
  private readonly pools = new Map<string, PoolEntry>();

  private readonly maxPerPool: number;
  constructor(maxPerPool = 10) {
    this.maxPerPool = maxPerPool;
  }

  /** The Warehouse's pool as it is now, if it has one. */
  current(name: string): pg.Pool | undefined {
    return this.pools.get(name)?.pool;
  }

  get(name: string, settings: ConnectionSettings): pg.Pool {
    const fp = fingerprint(settings);
    const existing = this.pools.get(name);
    if (existing && existing.fingerprint === fp) return existing.pool;
    if (existing) void existing.pool.end().catch(() => undefined);
    const pool = new pg.Pool(poolConfig(settings, this.maxPerPool));
    // An idle client that errors (server restart) must not crash the process.
    pool.on('error', () => undefined);
    this.pools.set(name, { pool, fingerprint: fp });
    return pool;
  }

  async close(name: string): Promise<void> {
    const entry = this.pools.get(name);
    this.pools.delete(name);
    await entry?.pool.end().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.pools.keys()].map((n) => this.close(n)));
  }
}

export type ConnectionFailure = 'Unreachable' | 'TLSVerificationFailed' | 'TLSUnavailable' | 'AuthenticationFailed' | 'DatabaseNotFound' | 'ConnectionFailed';

const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);

/**
 * The warehouse did not answer: refused, reset, timed out, or shut down under the session (class 08
 * connection exceptions, 57P administrator shutdown). Anything it did answer, such as a refusal of a
 * statement, is not this.
 */
export function isUnanswered(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return classifyConnectionError(err) === 'Unreachable' || code.startsWith('08') || code.startsWith('57P');
}

/** Sorts a connection error into what a human needs to know: which of the causes it was. */
export function classifyConnectionError(err: unknown): ConnectionFailure {
  const e = err as { code?: string; message?: string };
  const code = e?.code ?? '';
  const message = e?.message ?? '';
  if (TLS_CODES.has(code) || /certificate|self[- ]signed|altnames/i.test(message)) return 'TLSVerificationFailed';
  if (/does not support SSL/i.test(message)) return 'TLSUnavailable';
  if (code === '28P01' || code === '28000') return 'AuthenticationFailed';
  if (code === '3D000') return 'DatabaseNotFound';
  if (NETWORK_CODES.has(code) || /timeout|timed out|Connection terminated/i.test(message)) return 'Unreachable';
  return 'ConnectionFailed';
}
