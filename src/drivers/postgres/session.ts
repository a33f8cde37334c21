// The one way Steward changes a warehouse: a transaction on one pooled connection that owns the
// advisory locks taken in it. Locks go in the global order of lockOrder() (everything but schemas
// first, schemas last, each sorted), so two transactions never deadlock; they live in PostgreSQL,
// so the order holds across Steward processes and across kinds. Nothing else takes advisory locks.
import type pg from 'pg';
import { type LockKey, isSharedKey, lockName, lockOrder } from '../../governance/grants.ts';
import { runChecked } from './checked.ts';
import { prepared } from './prepared.ts';

/** A statement, what it does (for the audit trail and `steward plan`) and the object it changes (its lock). */
export interface Statement {
  sql: string;
  action: string;
  /** The warehouse object it changes, e.g. curated.customer_sales or role:stw_… */
  object: string;
  /** It changes what every access in a schema shares (the schema's row, its usage role): the shared locks are taken just before it (Session.run). */
  shared?: boolean;
}

const LOCK_SQL = `SELECT CASE WHEN joining THEN pg_advisory_xact_lock_shared(hashtextextended('steward:' || name, 0))
                   ELSE pg_advisory_xact_lock(hashtextextended('steward:' || name, 0)) END
         FROM unnest($1::text[], $2::bool[]) AS k(name, joining)`;

/** A key taken in shared mode: joining a schema's usage role (see LockKey). */
const isJoin = (k: LockKey): boolean => k.kind === 'usage' && k.join === true;

export class Session {
  readonly client: pg.ClientBase;
  private readonly held = new Set<string>();
  /** Keys held in shared mode (a usage role only joined). */
  private readonly joined = new Set<string>();
  private sharedHeld = false;

  constructor(client: pg.ClientBase) {
    this.client = client;
  }

  /** Takes the keys not held yet, in order; throws LockOrderError for a key that would break it. */
  async lock(keys: readonly LockKey[]): Promise<void> {
    const ordered = lockOrder(this.held, this.sharedHeld, keys);
    for (const key of keys) {
      // Held in shared mode and now wanted exclusive: two such transactions would wait for each other.
      if (this.joined.has(lockName(key)) && !isJoin(key)) throw new Error(`lock ${lockName(key)} is held in shared mode and cannot be upgraded`);
    }
    if (!ordered.length) return;
    // One statement, one round trip: a function scan yields the arrays in order, and each row's lock
    // is taken before the next row is read, so the order holds.
    await this.client.query(prepared('lock', LOCK_SQL, [ordered.map(lockName), ordered.map(isJoin)]));
    for (const key of ordered) {
      this.held.add(lockName(key));
      if (isJoin(key)) this.joined.add(lockName(key));
      if (isSharedKey(key)) this.sharedHeld = true;
    }
  }

  /**
   * Runs statements under `locks`: every key but the shared ones first; the shared ones (a schema's,
   * its usage role's: shared by everything in it) just before the first statement marked shared, so
   * they are held only until commit. Each statement is checked (checked.ts): a GRANT or REVOKE
   * PostgreSQL declined throws InsufficientPrivilege.
   */
  async run(statements: readonly Statement[], locks: readonly LockKey[]): Promise<string[]> {
    await this.lock(locks.filter((k) => !isSharedKey(k)));
    const ran: string[] = [];
    for (const s of statements) {
      if (s.shared) await this.lock(locks.filter(isSharedKey));
      await runChecked(this.client, s.sql, s.object);
      ran.push(s.sql);
    }
    return ran;
  }

  /** Runs fn; a PostgreSQL error inside it undoes what fn did and nothing before (a SAVEPOINT), and is rethrown. */
  async attempt<T>(fn: () => Promise<T>): Promise<T> {
    await this.client.query('SAVEPOINT steward_attempt');
    try {
      const out = await fn();
      await this.client.query('RELEASE SAVEPOINT steward_attempt');
      return out;
    } catch (e) {
      await this.client.query('ROLLBACK TO SAVEPOINT steward_attempt');
      throw e;
    }
  }
}

/** One transaction: COMMIT when fn resolves, ROLLBACK when it throws; the connection goes back to the pool either way. */
export async function withSession<T>(pool: pg.Pool, fn: (session: Session) => Promise<T>, mode?: 'READ ONLY'): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(mode ? `BEGIN ${mode}` : 'BEGIN');
    const result = await fn(new Session(client));
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
