// The durable audit trail inside each warehouse: steward.audit_log, append-only. Steward creates it,
// revokes UPDATE, DELETE and TRUNCATE on it (from PUBLIC and from itself), and a trigger refuses those
// statements for everyone, superusers included, so a record once written stays.
import type pg from 'pg';
import { Session, withSession } from './session.ts';
import { isUnanswered } from './connection.ts';
import { quoteIdent } from './sql-text.ts';
import type { AuditRecord } from '../../audit/record.ts';
import type { AuditSink } from '../../audit/sink.ts';

// Fixed DDL: no user text is pasted into it. It runs only when the table does not exist yet, so a
// second Warehouse on the same database (or a Steward whose user does not own the table) reuses it.
// One statement per entry: Steward sends each on its own (the extended protocol takes no more).
export const AUDIT_TABLE_STATEMENTS: readonly string[] = [
  'CREATE SCHEMA IF NOT EXISTS steward',
  `CREATE TABLE steward.audit_log (
  id         bigserial PRIMARY KEY,
  ts         timestamptz NOT NULL,
  request_id text NOT NULL,
  actor      text NOT NULL,
  action     text NOT NULL,
  resource   text NOT NULL,
  outcome    text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  error      text,
  kind       text NOT NULL,
  namespace  text,
  name       text NOT NULL,
  details    jsonb
)`,
  'CREATE INDEX audit_log_ts ON steward.audit_log (ts)',
  'CREATE INDEX audit_log_request_id ON steward.audit_log (request_id)',
  `CREATE FUNCTION steward.audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'steward.audit_log is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$`,
  `CREATE TRIGGER audit_log_append_only_rows BEFORE UPDATE OR DELETE ON steward.audit_log
  FOR EACH ROW EXECUTE FUNCTION steward.audit_log_refuse_change()`,
  `CREATE TRIGGER audit_log_append_only_truncate BEFORE TRUNCATE ON steward.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION steward.audit_log_refuse_change()`,
  'REVOKE ALL ON steward.audit_log FROM PUBLIC',
  'REVOKE UPDATE, DELETE, TRUNCATE ON steward.audit_log FROM CURRENT_USER',
];

/** Creates steward.audit_log unless it exists; then checks that Steward can append to it. */
export async function ensureAuditTable(pool: pg.Pool): Promise<void> {
  await withSession(pool, async (session) => {
    const { client } = session;
    // Two Steward processes, or two Warehouses on one database, must not race on the DDL.
    await session.lock([{ kind: 'table', schema: 'steward', table: 'audit_log' }]);
    // From the catalog, by OID: naming steward.audit_log would need USAGE on the schema first.
    const found = await client.query<{ tbl: number; seq: number | null }>(
      `SELECT c.oid AS tbl, s.oid AS seq FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'audit_log'
         LEFT JOIN pg_class s ON s.relnamespace = n.oid AND s.relname = 'audit_log_id_seq' WHERE n.nspname = 'steward'`,
    );
    if (found.rowCount === 0) {
      try {
        for (const statement of AUDIT_TABLE_STATEMENTS) await client.query(statement);
      } catch (e) {
        throw new Error(
          `cannot create it: ${(e as Error).message}. Grant the login CREATE on the database, or have another role create it (steward audit-table prints the SQL)`,
        );
      }
      return;
    }
    // All three, or every audited action fails later: the id comes from the table's sequence.
    const { tbl, seq } = found.rows[0]!;
    const canInsert = await client.query<{ ok: boolean; usr: string }>(
      `SELECT has_schema_privilege(current_user, 'steward', 'USAGE') AND has_table_privilege(current_user, $1::oid, 'INSERT')
          AND coalesce(has_sequence_privilege(current_user, $2::oid, 'USAGE'), false) AS ok, current_user::text AS usr`,
      [tbl, seq],
    );
    if (!canInsert.rows[0]?.ok) {
      throw new Error(`it exists but ${canInsert.rows[0]?.usr} cannot append to it: ${auditWriterGrants(canInsert.rows[0]!.usr).join(' ')}`);
    }
  });
}

/** What a login needs to append to an audit table another role owns (see `steward audit-table`). */
export function auditWriterGrants(login: string): string[] {
  const who = quoteIdent(login);
  return [
    `GRANT USAGE ON SCHEMA steward TO ${who};`,
    `GRANT INSERT ON steward.audit_log TO ${who};`,
    `GRANT USAGE ON SEQUENCE steward.audit_log_id_seq TO ${who};`,
  ];
}

/**
 * Writes records with bind parameters. Given a transaction's Session, the INSERT is sent behind what
 * the session sent and answered with its COMMIT (one round trip fewer): if it fails, the COMMIT's
 * wait throws its error first and the transaction rolls back, so the records and the action commit
 * together or not at all.
 */
export class AuditTableSink implements AuditSink {
  private readonly db: pg.Pool | pg.ClientBase | Session;
  constructor(db: pg.Pool | pg.ClientBase | Session) {
    this.db = db;
  }

  write(r: AuditRecord): Promise<void> {
    return this.writeMany([r]);
  }

  /** One INSERT for all records. */
  async writeMany(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.db instanceof Session) void this.db.send(auditInsert(records));
    else await this.db.query(auditInsert(records));
  }
}

/** The INSERT of records into steward.audit_log, every value bound as a parameter. */
function auditInsert(records: AuditRecord[]): pg.QueryConfig {
  const values: unknown[] = [];
  const rows = records.map((r) => {
    const base = values.length;
    values.push(
      r.ts,
      r.request_id,
      r.actor,
      r.action,
      r.resource,
      r.outcome,
      r.error ?? null,
      r.kind,
      r.namespace ?? null,
      r.name,
      // The executor has no column of its own (the table's shape is the guide's): it rides in details
      // when it is not also the actor, i.e. when someone asked and Steward acted.
      r.details || (r.executor && r.executor !== r.actor)
        ? JSON.stringify({ ...r.details, ...(r.executor && r.executor !== r.actor ? { executor: r.executor } : {}) })
        : null,
    );
    return `(${Array.from({ length: 11 }, (_, i) => `$${base + i + 1}`).join(', ')})`;
  });
  return {
    text: `INSERT INTO steward.audit_log (ts, request_id, actor, action, resource, outcome, error, kind, namespace, name, details) VALUES ${rows.join(', ')}`,
    values,
  };
}

/**
 * A Warehouse's audit table that loses nothing while the warehouse does not answer: records it could
 * not write are kept in memory, in order (at most `max`; beyond that the oldest go, and how many is
 * itself recorded), and written before anything else once it answers again, marked
 * `details.delayed: true` (their `ts` is still when they happened). Any other failure is the
 * caller's, as with AuditTableSink.
 */
export class DelayedAuditTable implements AuditSink {
  private readonly pool: () => pg.Pool | undefined;
  private readonly warehouse: string;
  private readonly max: number;
  private readonly waiting: AuditRecord[] = [];
  private lost = 0;
  /** While records wait, a write tries the warehouse again at most this often (a silent host costs a connect timeout per try). */
  private readonly retryMs: number;
  private nextTry = 0;

  constructor(pool: () => pg.Pool | undefined, warehouse: string, max = 10_000, retryMs = 5_000) {
    this.pool = pool;
    this.warehouse = warehouse;
    this.max = max;
    this.retryMs = retryMs;
  }

  /** Records waiting for the warehouse to answer. */
  get pending(): number {
    return this.waiting.length;
  }

  write(r: AuditRecord): Promise<void> {
    return this.writeMany([r]);
  }

  async writeMany(records: AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    // Order is kept: nothing is written past records still waiting.
    if (this.waiting.length && (Date.now() < this.nextTry || !(await this.flushed()))) return this.keep(records);
    try {
      await this.table().writeMany(records);
    } catch (e) {
      if (!isUnanswered(e)) throw e;
      this.keep(records);
    }
  }

  private flushed(): Promise<boolean> {
    return this.flush().then(
      () => true,
      () => false,
    );
  }

  /** Writes what waited, oldest first; throws (keeping them) if the warehouse still does not answer. */
  async flush(): Promise<void> {
    while (this.waiting.length) {
      const batch = this.waiting.slice(0, 200);
      const marked = batch.map((r) => ({ ...r, details: { ...r.details, delayed: true } }));
      await this.table().writeMany(this.lost ? [this.lostRecord(batch[0]!), ...marked] : marked);
      this.waiting.splice(0, batch.length);
      this.lost = 0;
    }
  }

  private table(): AuditTableSink {
    const pool = this.pool();
    if (!pool) throw Object.assign(new Error(`no connection to Warehouse ${this.warehouse}`), { code: '08000' });
    return new AuditTableSink(pool);
  }

  private keep(records: AuditRecord[]): void {
    if (!this.waiting.length || Date.now() >= this.nextTry) this.nextTry = Date.now() + this.retryMs;
    this.waiting.push(...records);
    const over = this.waiting.length - this.max;
    if (over > 0) {
      this.waiting.splice(0, over);
      this.lost += over;
    }
  }

  private lostRecord(next: AuditRecord): AuditRecord {
    return {
      ts: next.ts,
      request_id: next.request_id,
      actor: next.actor,
      action: 'audit.lost',
      resource: `${this.warehouse}/steward.audit_log`,
      outcome: 'failure',
      error: `${this.lost} audit records were dropped while the warehouse did not answer (at most ${this.max} are kept); they are in Steward's log`,
      kind: 'Warehouse',
      name: this.warehouse,
    };
  }
}
