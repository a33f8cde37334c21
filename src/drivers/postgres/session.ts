// The one way Steward changes a warehouse: a transaction on one pooled connection that owns the
// advisory locks taken in it. Locks go in the global order of lockOrder() (everything but schemas
// first, schemas last, each sorted), so two transactions never deadlock; they live in PostgreSQL,
// so the order holds across Steward processes and across kinds. Nothing else takes advisory locks.
// A Session can also queue queries without waiting for each answer (send, sendLock, sendRun): the
// pool's clients run in pg's pipeline mode, so what is queued goes out back to back and PostgreSQL
// answers in order; flush() waits for all of it. Each query is still one statement (connection.ts).
import type pg from 'pg';
import { type LockKey, isSharedKey, lockName, lockOrder } from '../../governance/grants.ts';
import { InsufficientPrivilege, NOT_GRANTED, NOT_REVOKED, asInsufficientPrivilege } from './checked.ts';
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

/** What a query can be sent to: a pool, a client, or a Session (which pipelines it behind what it sent). */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(q: pg.QueryConfig): Promise<pg.QueryResult<R>>;
}

const LOCK_SQL = `SELECT CASE WHEN joining THEN pg_advisory_xact_lock_shared(hashtextextended('steward:' || name, 0))
                   ELSE pg_advisory_xact_lock(hashtextextended('steward:' || name, 0)) END
         FROM unnest($1::text[], $2::bool[]) AS k(name, joining)`;

/** A key taken in shared mode: joining a schema's usage role (see LockKey). */
const isJoin = (k: LockKey): boolean => k.kind === 'usage' && k.join === true;

export class Session {
  private readonly db: pg.ClientBase;
  private readonly held = new Set<string>();
  /** Keys held in shared mode (a usage role only joined). */
  private readonly joined = new Set<string>();
  private sharedHeld = false;
  /** Sent through the session and not yet waited for, in the order they were sent. */
  private unanswered: Sent[] = [];
  /** Sent and not yet answered, in order: PostgreSQL answers in order, so the first is the one a notice is about. */
  private readonly answering: Sent[] = [];
  private readonly onNotice = (n: { code?: string; message?: string }) => {
    if (n.code === NOT_GRANTED || n.code === NOT_REVOKED) this.answering[0]?.declined?.push(n.message ?? 'declined');
  };

  constructor(client: pg.ClientBase) {
    this.db = client;
  }

  /**
   * The connection, for a driver's own queries. Refused while queries sent through the session are
   * unanswered: their errors, and which statement a notice was about, would be lost.
   */
  get client(): pg.ClientBase {
    if (this.unanswered.length) throw new Error('Session.client used while queries sent through the session are unanswered (await session.flush() first)');
    return this.db;
  }

  /**
   * Sends a query now, behind those in flight on the connection (pg pipelines them: no wait for
   * the answer before the next is sent); the next flush() or query() waits for its answer. With
   * `checked`, a GRANT or REVOKE PostgreSQL declined, or refused for want of privilege, fails as
   * InsufficientPrivilege on that object (checked.ts says why).
   */
  send<R extends pg.QueryResultRow = pg.QueryResultRow>(q: string | pg.QueryConfig, checked?: string): Promise<pg.QueryResult<R>> {
    const sent: Sent = { object: checked, declined: checked === undefined ? undefined : [], answer: Promise.resolve() };
    if (this.answering.length === 0) this.db.on('notice', this.onNotice);
    const answer = new Promise<pg.QueryResult<R>>((resolve, reject) => {
      // The callback runs as the answer arrives, in order, before the next query's notices are read.
      this.db.query(q as pg.QueryConfig, (err: Error | undefined, result: pg.QueryResult<R>) => {
        this.answering.splice(this.answering.indexOf(sent), 1);
        if (this.answering.length === 0) this.db.off('notice', this.onNotice);
        if (err) reject(sent.object !== undefined ? asInsufficientPrivilege(err, sent.object) : err);
        else if (sent.declined?.length) reject(new InsufficientPrivilege(sent.object!, sent.declined.join('; ')));
        else resolve(result);
      });
    });
    sent.answer = answer;
    answer.catch(() => undefined); // waited for (and thrown) by flush()
    this.answering.push(sent);
    this.unanswered.push(sent);
    return answer;
  }

  /**
   * Waits for every query sent and not waited for yet. Throws the first failure in the order they
   * were sent: in a transaction the ones after it fail only because it did ("current transaction
   * is aborted").
   */
  async flush(): Promise<void> {
    const sent = this.unanswered;
    this.unanswered = [];
    const settled = await Promise.allSettled(sent.map((s) => s.answer));
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Sends `q` behind whatever was sent and waits for all of it: one round trip for everything in flight. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(q: string | pg.QueryConfig): Promise<pg.QueryResult<R>> {
    const answer = this.send<R>(q);
    await this.flush();
    return answer;
  }

  /** One statement, checked as send() checks it (a declined GRANT is InsufficientPrivilege on `object`), and waited for. */
  async check(sql: string, object: string): Promise<void> {
    void this.send(sql, object);
    await this.flush();
  }

  /** Takes the keys not held yet, in order, and waits for them; throws LockOrderError for a key that would break it. */
  async lock(keys: readonly LockKey[]): Promise<void> {
    this.sendLock(keys);
    await this.flush();
  }

  /** lock(), sent but not waited for: the next flush() or query() waits for it (and fails if it failed). */
  sendLock(keys: readonly LockKey[]): void {
    const ordered = lockOrder(this.held, this.sharedHeld, keys);
    for (const key of keys) {
      // Held in shared mode and now wanted exclusive: two such transactions would wait for each other.
      if (this.joined.has(lockName(key)) && !isJoin(key)) throw new Error(`lock ${lockName(key)} is held in shared mode and cannot be upgraded`);
    }
    if (!ordered.length) return;
    // One statement: a function scan yields the arrays in order, and each row's lock is taken
    // before the next row is read, so the order holds.
    void this.send(prepared('lock', LOCK_SQL, [ordered.map(lockName), ordered.map(isJoin)]));
    // Counted as held once sent: PostgreSQL runs what follows only after it, and if it fails the
    // transaction fails with it.
    for (const key of ordered) {
      this.held.add(lockName(key));
      if (isJoin(key)) this.joined.add(lockName(key));
      if (isSharedKey(key)) this.sharedHeld = true;
    }
  }

  /**
   * Runs statements under `locks` and waits for them: every key but the shared ones first; the
   * shared ones (a schema's, its usage role's: shared by everything in it) just before the first
   * statement marked shared, so they are held only until commit. Each statement is checked
   * (checked.ts): a GRANT or REVOKE PostgreSQL declined throws InsufficientPrivilege.
   */
  async run(statements: readonly Statement[], locks: readonly LockKey[]): Promise<string[]> {
    const ran = this.sendRun(statements, locks);
    await this.flush();
    return ran;
  }

  /** run(), sent but not waited for: the locks and statements go in one round trip with what follows them. */
  sendRun(statements: readonly Statement[], locks: readonly LockKey[]): string[] {
    this.sendLock(locks.filter((k) => !isSharedKey(k)));
    for (const s of statements) {
      if (s.shared) this.sendLock(locks.filter(isSharedKey));
      void this.send(s.sql, s.object);
    }
    return statements.map((s) => s.sql);
  }

  /** Runs fn; a PostgreSQL error inside it undoes what fn did and nothing before (a SAVEPOINT), and is rethrown. */
  async attempt<T>(fn: () => Promise<T>): Promise<T> {
    await this.query('SAVEPOINT steward_attempt');
    try {
      const out = await fn();
      await this.query('RELEASE SAVEPOINT steward_attempt');
      return out;
    } catch (e) {
      await this.flush().catch(() => undefined);
      await this.query('ROLLBACK TO SAVEPOINT steward_attempt');
      throw e;
    }
  }
}

interface Sent {
  /** The object a checked statement changes; undefined for a query that is not checked. */
  object: string | undefined;
  declined: string[] | undefined;
  answer: Promise<unknown>;
}

export interface SessionOptions {
  mode?: 'READ ONLY';
  /**
   * BEGIN goes with fn's first queries instead of alone: one round trip fewer. fn must then start
   * with the Session's own methods (send, query, lock, run), which wait for BEGIN's answer with
   * theirs; the client getter refuses until it is answered.
   */
  pipelineBegin?: boolean;
}

/** One transaction: COMMIT when fn resolves, ROLLBACK when it throws; the connection goes back to the pool either way. */
export async function withSession<T>(pool: pg.Pool, fn: (session: Session) => Promise<T>, { mode, pipelineBegin }: SessionOptions = {}): Promise<T> {
  const client = await pool.connect();
  const session = new Session(client);
  try {
    void session.send(mode ? `BEGIN ${mode}` : 'BEGIN');
    if (!pipelineBegin) await session.flush();
    const result = await fn(session);
    await session.query('COMMIT');
    return result;
  } catch (err) {
    await session.flush().catch(() => undefined);
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
