// The PostgreSQL driver of DatasetAccess: a group role per access, observed in one query, changed
// in one transaction under advisory locks on exactly the objects the plan touches, read back before
// it reports success, and audited in the same transaction (committed together or not at all).
import { isDeepStrictEqual } from 'node:util';
import type { AuditScope, ScopedInput } from '../../audit/sink.ts';
import { StaleObservation } from '../../runtime/controller.ts';
import { grantLeftUndone, planRevoke, isNoop, type AccessObservation, type AccessPlan, type AccessTarget } from '../../governance/access-plan.ts';
import type { Applied, Driver } from '../driver.ts';
import { PrimedObservations } from '../primed.ts';
import { AuditTableSink } from './audit-table.ts';
import { InsufficientPrivilege } from './checked.ts';
import { accessStatements, diffStatements, observeRole, observeRoles, usageRoleDropStatements } from './grants.ts';
import type pg from 'pg';
import { prepared } from './prepared.ts';
import { roleComment } from './roles.ts';
import { withSession, type Statement } from './session.ts';
import { WarehouseDriver } from './warehouse-driver.ts';

export type AccessDriver = Driver<AccessTarget, AccessObservation, AccessPlan, Applied>;

export class PostgresAccessDriver extends WarehouseDriver implements AccessDriver {
  private readonly primed = new PrimedObservations<AccessTarget, AccessObservation>((t) => t.groupRole);

  async observe(t: AccessTarget): Promise<AccessObservation> {
    return this.primed.take(t) ?? observeRole(this.pool, t);
  }

  /** Every target in one query (the controller reads ahead in chunks of a few thousand). */
  async prime(targets: readonly AccessTarget[]): Promise<void> {
    const readAt = Date.now();
    this.primed.put(targets, await observeRoles(this.pool, targets), readAt);
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
    this.primed.changing(t);
    // BEGIN, the locks and the look under them go in one round trip; the statements and the
    // read-back in another; the audit rows and COMMIT in a third (session.ts pipelines them, and
    // fails at the first that failed).
    const ran = await withSession(
      this.pool,
      async (session) => {
        if (plan.kind === 'revoke') {
          // Nothing to look again at: DROP ROLE is its own proof. If the role holds more than was
          // observed, it fails with PostgreSQL's list of what is left, the transaction rolls back and
          // the reconcile retries; if it holds less, a REVOKE of nothing is harmless. BEGIN, the
          // locks, the statements, the audit rows and COMMIT go in one round trip.
          const ran = session.sendRun([...expiry, ...rest], plan.locks);
          await audit.recordMany(records, new AuditTableSink(session));
          return ran;
        }
        // Alone with the objects the plan touches, look again: the plan holds only for what it was made from.
        session.sendLock(plan.locks.filter((k) => k.kind !== 'schema'));
        const now = await observeRole(session, t);
        if (!isDeepStrictEqual(now, basis)) throw new StaleObservation(`${t.groupRole} changed while Steward planned (${changedFields(basis, now)}); retrying`);
        const ran = session.sendRun([...expiry, ...rest], plan.locks);
        // Read the catalog back before saying it is done: a REVOKE of a grant another role made, say,
        // does nothing and PostgreSQL does not even warn.
        const after = await observeRole(session, t).catch((e: unknown) => {
          // The schema's usage role was created, or dropped with the schema's last access, by another
          // transaction after this plan's look: plan again.
          const code = (e as { code?: string }).code;
          if (code === UNDEFINED_OBJECT || code === DUPLICATE_OBJECT) throw new StaleObservation(`${(e as Error).message}; retrying`);
          throw e;
        });
        const left = grantLeftUndone(after, t, plan);
        if (left) {
          const undone = diffStatements(t.groupRole, left.diff);
          const what = [...undone.map((s) => s.sql), ...left.other].join('; ');
          throw new InsufficientPrivilege(
            undone[0]?.object ?? `role:${t.groupRole}`,
            `PostgreSQL left it unchanged (${what}); was it granted by another role?`,
          );
        }
        await audit.recordMany(records, new AuditTableSink(session));
        return ran;
      },
      { pipelineBegin: true },
    );
    // Once the group role is gone, its schema's usage role may be unused (after the commit: see below).
    if (plan.kind === 'revoke' && plan.drop) ran.push(...(await this.dropUsageRoleIfUnused(t, audit)));
    return { ran };
  }

  async remove(t: AccessTarget, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    const basis = await this.observe(t);
    const plan = planRevoke(basis, t);
    const applied = await this.apply(t, basis, plan, audit, notes);
    // The group role was gone already: a retry after the usage role's drop failed, say.
    if (!plan.drop) applied.ran.push(...(await this.dropUsageRoleIfUnused(t, audit)));
    return applied;
  }

  /**
   * Drops the schema's usage role once no group role is a member of it any more (the last access on
   * the schema is gone), when it is Steward's. Asked after the revoking transaction committed, so
   * of several last accesses going at once the one that commits last sees the others gone: it
   * drops it, and none of them waits for another's lock. The drop itself re-checks under the usage
   * role's and the schema's locks, which every access that joins or creates it takes too, so no
   * access joins it meanwhile. (Steward stopping between the two leaves an unused usage role, which
   * holds USAGE and nothing else, until the next deletion in the schema drops it.)
   */
  private async dropUsageRoleIfUnused(t: AccessTarget, audit: AuditScope): Promise<string[]> {
    const unused = async (db: pg.Pool | pg.ClientBase) =>
      (
        await db.query<{ unused: boolean; has_usage: boolean }>(
          prepared('usage_role_unused', USAGE_ROLE_UNUSED_SQL, [t.usageRole, t.usageRoleComment, t.schema]),
        )
      ).rows[0];
    if (!(await unused(this.pool))?.unused) return [];
    return withSession(this.pool, async (session) => {
      await session.lock([
        { kind: 'usage', role: t.usageRole },
        { kind: 'schema', schema: t.schema },
      ]);
      const now = await unused(session.client);
      if (!now?.unused) return [];
      // A schema dropped meanwhile (or its grant revoked by hand) leaves nothing to revoke.
      const statements = usageRoleDropStatements(t.schema, t.usageRole).filter((s) => now.has_usage || s.action !== 'usage_role.revoke');
      const ran = session.sendRun(statements, []);
      await audit.recordMany(this.records(statements, undefined), new AuditTableSink(session));
      return ran;
    });
  }

  /** One audit record per statement; a correction of drift says what was found. */
  private records(statements: Statement[], drift: string[] | undefined): ScopedInput[] {
    return statements.map((s) => ({
      action: drift ? 'drift_corrected' : s.action,
      resource: this.resource(s.object),
      outcome: 'success' as const,
      details: drift ? { statement: s.sql, correction: s.action, found: drift } : { statement: s.sql },
    }));
  }
}

const UNDEFINED_OBJECT = '42704';
const DUPLICATE_OBJECT = '42710';

/** The schema's usage role exists, is Steward's and has no member left; and whether it holds USAGE on the schema. */
const USAGE_ROLE_UNUSED_SQL = `SELECT NOT EXISTS (SELECT 1 FROM pg_auth_members WHERE roleid = u.oid) AS unused,
       EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = $3 AND a.grantee = u.oid) AS has_usage
  FROM pg_roles u WHERE u.rolname = $1 AND ${roleComment('u.oid')} = $2`;

/** Which parts of an observation differ, for the retry's log line. */
function changedFields(a: AccessObservation, b: AccessObservation): string {
  return (Object.keys({ ...a, ...b }) as (keyof AccessObservation)[]).filter((k) => !isDeepStrictEqual(a[k], b[k])).join(', ');
}
