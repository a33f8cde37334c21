// Where audit records go. Every record reaches the log; records about a warehouse also reach that
// warehouse's append-only audit table (see drivers/postgres/audit-table.ts).
import type { Logger } from 'pino';
import type { AuditInput, AuditRecord } from './record.ts';

/** What every record of one reconcile shares. */
export type AuditBase = Pick<AuditInput, 'request_id' | 'kind' | 'namespace' | 'name' | 'actor'>;
/** A record of that reconcile: the action, the resource, the outcome and what else it has. */
export type ScopedInput = Omit<AuditInput, keyof AuditBase>;

export interface AuditScope {
  record(input: ScopedInput, ...sinks: AuditSink[]): Promise<AuditRecord>;
  recordMany(inputs: ScopedInput[], ...sinks: AuditSink[]): Promise<AuditRecord[]>;
}

export interface AuditSink {
  write(record: AuditRecord): Promise<void>;
  /** Several records at once (one round trip where the sink can). */
  writeMany?(records: AuditRecord[]): Promise<void>;
}

export class LogSink implements AuditSink {
  private readonly logger: Logger;
  constructor(logger: Logger) {
    this.logger = logger;
  }
  async write(record: AuditRecord): Promise<void> {
    this.logger.info({ audit: record }, `audit ${record.action} ${record.resource}: ${record.outcome}`);
  }
}

export class AuditTrail {
  private readonly actor: string;
  private readonly logSink: AuditSink;
  private readonly logger: Logger;

  constructor(actor: string, logSink: AuditSink, logger: Logger) {
    this.actor = actor;
    this.logSink = logSink;
    this.logger = logger;
  }

  /**
   * Writes the record to the log and to each extra sink given (e.g. the warehouse's table, possibly
   * inside the transaction that performed the action). A table failure is logged and rethrown so the
   * caller can decide; the log line is always written first.
   */
  async record(input: AuditInput, ...sinks: AuditSink[]): Promise<AuditRecord> {
    return (await this.recordMany([input], ...sinks))[0]!;
  }

  /** The records of one reconcile: who it was for (request_id, kind, namespace, name) said once. */
  scope(base: AuditBase): AuditScope {
    return {
      record: (input, ...sinks) => this.record({ ...base, ...input }, ...sinks),
      recordMany: (inputs, ...sinks) =>
        this.recordMany(
          inputs.map((input) => ({ ...base, ...input })),
          ...sinks,
        ),
    };
  }

  async recordMany(inputs: AuditInput[], ...sinks: AuditSink[]): Promise<AuditRecord[]> {
    if (inputs.length === 0) return [];
    const records = inputs.map(
      ({ actor, ...input }) => ({ ts: new Date().toISOString(), actor: actor ?? this.actor, executor: this.actor, ...input }) as AuditRecord,
    );
    for (const record of records) await this.logSink.write(record);
    for (const sink of sinks) {
      try {
        if (sink.writeMany) await sink.writeMany(records);
        else for (const record of records) await sink.write(record);
      } catch (err) {
        this.logger.error(
          { err: err instanceof Error ? err.message : String(err), request_id: records[0]!.request_id },
          'audit record could not be written to its table',
        );
        throw err;
      }
    }
    return records;
  }
}
