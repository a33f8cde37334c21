// The PostgreSQL driver of DatasetAccess: a group role per access, observed in one query, changed
// in one transaction under advisory locks on exactly the objects the plan touches, read back before
// it reports success, and audited in the same transaction (committed together or not at all).
import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import type { AuditScope, ScopedInput } from '../../audit/sink.ts';
import { StaleObservation } from '../../runtime/controller.ts';
import { grantLeftUndone, planRevoke, isNoop, type AccessObservation, type AccessPlan, type AccessTarget } from '../../governance/access-plan.ts';
import type { Applied, Driver } from '../driver.ts';
import { AuditTableSink } from './audit-table.ts';
import { InsufficientPrivilege } from './checked.ts';
import { accessStatements, diffStatements, observeRole } from './grants.ts';
import { withSession, type Statement } from './session.ts';

export type AccessDriver = Driver<AccessTarget, AccessObservation, AccessPlan, Applied>;

export class PostgresAccessDriver implements AccessDriver {
  private readonly pool: pg.Pool;
  /** The Warehouse's name: audit resources read `<warehouse>/<object>`. */
  private readonly warehouse: string;

  constructor(pool: pg.Pool, warehouse: string) {
    this.pool = pool;
    this.warehouse = warehouse;
  }

  observe(t: AccessTarget): Promise<AccessObservation> {
    return observeRole(this.pool, t);
  }

  async apply(t: AccessTarget, basis: AccessObservation, plan: AccessPlan, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    const { expiry, rest } = accessStatements(t, plan);
    const drift = plan.kind === 'grant' ? plan.drift : undefined;
    const records = [...notes, ...this.records(expiry, undefined), ...this.records(rest, drift)];
    if (isNoop(plan)) {
      // Nothing to change: the notes (a denial, say) still go to the table, without a transaction.
      if (records.length) await audit.recordMany(records, new AuditTableSink(this.pool));
      return { ran: [] };
    }
    const ran = await withSession(this.pool, async (session) => {
      if (plan.kind === 'revoke') {
        // Nothing to look again at: DROP ROLE is its own proof. If the role holds more than was
        // observed, it fails with PostgreSQL's list of what is left, the transaction rolls back and
        // the reconcile retries; if it holds less, a REVOKE of nothing is harmless.
        const ran = await session.run([...expiry, ...rest], plan.locks);
        await audit.recordMany(records, new AuditTableSink(session.client));
        return ran;
      }
      // Alone with the objects the plan touches, look again: the plan holds only for what it was made from.
      await session.lock(plan.locks.filter((k) => k.kind !== 'schema'));
      const now = await observeRole(session.client, t);
      if (!isDeepStrictEqual(now, basis)) throw new StaleObservation(`${t.groupRole} changed while Steward planned (${changedFields(basis, now)}); retrying`);
      const ran = await session.run([...expiry, ...rest], plan.locks);
      // Read the catalog back before saying it is done: a REVOKE of a grant another role made, say,
      // does nothing and PostgreSQL does not even warn.
      const left = grantLeftUndone(await observeRole(session.client, t), t, plan);
      if (left) {
        const undone = diffStatements(t.groupRole, left.diff);
        const what = [...undone.map((s) => s.sql), ...left.other].join('; ');
        throw new InsufficientPrivilege(undone[0]?.object ?? `role:${t.groupRole}`, `PostgreSQL left it unchanged (${what}); was it granted by another role?`);
      }
      await audit.recordMany(records, new AuditTableSink(session.client));
      return ran;
    });
    return { ran };
  }

  async remove(t: AccessTarget, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    const basis = await this.observe(t);
    return this.apply(t, basis, planRevoke(basis, t), audit, notes);
  }

  /** One audit record per statement; a correction of drift says what was found. */
  private records(statements: Statement[], drift: string[] | undefined): ScopedInput[] {
    return statements.map((s) => ({
      action: drift ? 'drift_corrected' : s.action,
      resource: `${this.warehouse}/${s.object}`,
      outcome: 'success' as const,
      details: drift ? { statement: s.sql, correction: s.action, found: drift } : { statement: s.sql },
    }));
  }
}

/** Which parts of an observation differ, for the retry's log line. */
function changedFields(a: AccessObservation, b: AccessObservation): string {
  return (Object.keys({ ...a, ...b }) as (keyof AccessObservation)[]).filter((k) => !isDeepStrictEqual(a[k], b[k])).join(', ');
}
