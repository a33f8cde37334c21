// DatasetAccess reconciler (PostgreSQL): policy -> expiry -> observe the catalog -> close the diff in
// one audited transaction -> status. Each access owns one group role; the principal is made a member
// of it, so deleting or expiring one access never touches another.
import type pg from 'pg';
import { datasetAccessKind, type DatasetAccess } from '../api/datasetaccess.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import { StaleObservation, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { findCondition, isTrue } from '../runtime/conditions.ts';
import type { AuditScope, AuditTrail } from '../audit/sink.ts';
import type { AuditOutcome } from '../audit/record.ts';
import { evaluatePolicy } from '../governance/policy.ts';
import { refusedRole, refusedTargets } from '../governance/reserved.ts';
import { effectiveExpiry } from '../governance/expiry.ts';
import { EMPTY_STATE, diffGrants, groupRoleName, lockKeys, lockName, ownershipComment, usageRoleName, type LockKey } from '../governance/grants.ts';
import { dropRoleStatements, observe, type Observation, type Statement } from '../drivers/postgres/grants.ts';
import { ObjectLocks } from '../drivers/postgres/locks.ts';
import { planAccess, type AccessPlan } from '../drivers/postgres/access-plan.ts';
import { AuditTableSink } from '../drivers/postgres/audit-table.ts';
import { InsufficientPrivilege, runChecked } from '../drivers/postgres/checked.ts';
import { inTransaction } from '../drivers/postgres/transaction.ts';
import { scrub, type WarehouseConnections } from '../drivers/postgres/connector.ts';
import { connectWarehouse } from './warehouse-preamble.ts';

export const DATASET_ACCESS_TYPE: ResourceType = resourceType(datasetAccessKind);
export const DATASET_ACCESS_FINALIZER = 'steward.dev/revoke-access';

export interface DatasetAccessDeps {
  connections: WarehouseConnections;
  audit: AuditTrail;
  warehouse: (name: string) => Warehouse | undefined;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
}

/** What a user reads in `kubectl get dsa`. */
function display(dsa: DatasetAccess) {
  const t = dsa.spec.warehouse;
  if (!t)
    return {
      principal: dsa.spec.principal.iamRole ?? '',
      dataset: `s3://${dsa.spec.s3?.bucket}/${dsa.spec.s3?.prefix ?? ''}`,
      privileges: dsa.spec.s3?.access ?? 'read',
    };
  return {
    principal: dsa.spec.principal.role ?? '',
    dataset: `${t.name}/${t.schema}.${t.tables.join(',')}`,
    privileges: (t.privileges ?? ['SELECT']).join(','),
  };
}

export function datasetAccessReconciler(deps: DatasetAccessDeps) {
  /** Runs `plan(observation)` under locks in one transaction, with an audit record per statement. */
  async function applyInTransaction(
    pool: pg.Pool,
    trail: AuditScope,
    groupRole: string,
    schema: string,
    usageRole: string,
    principal: string | undefined,
    plan: (o: Observation) => {
      statements: Statement[];
      locks: LockKey[];
      records: { action: string; resource: string; outcome: AuditOutcome; details?: Record<string, unknown>; error?: string }[];
    },
    /** What would still be left to do, planned afresh from an observation (to check the work took). */
    remaining?: (o: Observation) => Statement[],
  ): Promise<{ observation: Observation; statements: Statement[] }> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const first = await observe(client, groupRole, schema, principal, usageRole);
      const expected = plan(first);
      if (expected.statements.length === 0 && expected.records.length === 0) {
        await client.query('COMMIT');
        return { observation: first, statements: [] };
      }
      // Everything but schemas now; a schema's lock (shared by every access in it) just before the
      // first statement on it, so it is held only until commit.
      const locks = new ObjectLocks(client);
      await locks.take(expected.locks.filter((k) => k.kind !== 'schema'));
      // Under the locks, look again: another access may have changed what we saw. (READ COMMITTED:
      // each statement sees what was committed before it, including by the lock's previous holder.)
      const observation = expected.locks.length ? await observe(client, groupRole, schema, principal, usageRole) : first;
      const actual = expected.locks.length ? plan(observation) : expected;
      const expectedNames = new Set(expected.locks.map(lockName));
      const unlocked = actual.locks.map(lockName).filter((k) => !expectedNames.has(k));
      if (unlocked.length) throw new StaleObservation(`objects changed while locking (${unlocked.join(', ')}); retrying`);
      for (const s of actual.statements) {
        if (s.object.startsWith('schema:')) await locks.take(actual.locks.filter((k) => k.kind === 'schema'));
        await runChecked(client, s.sql, s.object);
      }
      // Read the catalog again before saying it is done: a REVOKE of a grant another role made, say,
      // does nothing and PostgreSQL does not even warn.
      if (remaining && actual.statements.length) {
        const left = remaining(await observe(client, groupRole, schema, principal, usageRole));
        if (left.length)
          throw new InsufficientPrivilege(
            left[0]!.object,
            `PostgreSQL left it unchanged (${left.map((x) => x.sql).join('; ')}); was it granted by another role?`,
          );
      }
      // One record per statement, written in the same transaction: committed together or not at all.
      await trail.recordMany(actual.records, new AuditTableSink(client));
      await client.query('COMMIT');
      return { observation, statements: actual.statements };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  function statementRecords(statements: Statement[], warehouse: string, drift: string[] | undefined) {
    return statements.map((s) => ({
      action: drift ? 'drift_corrected' : s.action,
      resource: `${warehouse}/${s.object}`,
      outcome: 'success' as const,
      details: drift ? { statement: s.sql, correction: s.action, found: drift } : { statement: s.sql },
    }));
  }

  return async function reconcileDatasetAccess(dsa: DatasetAccess, ctx: ReconcileContext): Promise<Outcome> {
    const shown = display(dsa);
    const target = dsa.spec.warehouse;
    if (!target) {
      return {
        state: 'Stalled',
        reason: 'UnsupportedTarget',
        message: 'S3 access through IAM is not implemented yet in this release; nothing was granted',
        status: shown,
      };
    }
    const namespace = dsa.metadata.namespace!;
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'DatasetAccess', namespace, name: dsa.metadata.name });
    const connected = await connectWarehouse(deps, target.name, 'nothing granted');
    if ('outcome' in connected) return { ...connected.outcome, status: shown };
    const { wh, pool, settings } = connected;
    const groupRole = groupRoleName(namespace, dsa.metadata.name);
    const comment = ownershipComment(namespace, dsa.metadata.name);
    const principal = dsa.spec.principal.role!;
    const privileges = target.privileges ?? ['SELECT'];
    const status = { ...shown, groupRole };
    const audit = (action: string, outcome: AuditOutcome, resource: string, extra: { error?: string; details?: Record<string, unknown> } = {}) => ({
      action,
      outcome,
      resource: `${target.name}/${resource}`,
      ...extra,
    });

    try {
      // 1. Policy: default deny. A denied access holds nothing: its group role is dropped.
      const labels = deps.namespaceLabels(namespace) ?? {};
      const wasDenied = findCondition(dsa.status?.conditions, 'Ready')?.reason === 'PolicyDenied';
      /** Drops what the access was granted before, and audits the denial (once, unless it revoked something). */
      const denyPlan = (o: Observation, message: string) => {
        const drop = o.role.exists && o.role.comment === comment ? dropRoleStatements(groupRole, o.state) : [];
        return {
          statements: drop,
          locks: drop.length ? lockKeys(groupRole, diffGrants(EMPTY_STATE, o.state)) : [],
          records: [
            ...(wasDenied && drop.length === 0
              ? []
              : [audit('policy.evaluate', 'denied', `${target.schema}.${target.tables.join(',')}`, { error: message, details: { principal, privileges } })]),
            ...statementRecords(drop, target.name, undefined),
          ],
        };
      };
      const denied = (message: string, statements: Statement[]): Outcome => ({
        state: 'Stalled',
        reason: 'PolicyDenied',
        message: `${message}; nothing is granted${statements.length ? ' (the access granted before was revoked)' : ''}. Ask the Warehouse owner to extend spec.accessPolicy, or change the request.`,
        status: { ...status, expiresAt: null, ...(statements.length ? { revokedAt: ctx.now.toISOString() } : {}) },
        conditions: [{ type: 'Expired', status: 'False', reason: 'NotGranted', message: 'the access is not granted' }],
        events: [{ type: 'Warning', reason: 'PolicyDenied', note: message, action: 'Grant' }],
      });
      const decision = evaluatePolicy(wh.spec.accessPolicy, {
        namespace: { name: namespace, labels },
        schema: target.schema,
        privileges,
        principals: [principal],
      });
      if (!decision.allowed) {
        const { statements } = await applyInTransaction(
          pool,
          trail,
          groupRole,
          target.schema,
          usageRoleName(wh.spec.postgres.database, target.schema),
          undefined,
          (o) => denyPlan(o, decision.message),
        );
        return denied(decision.message, statements);
      }

      // 2. Expiry: expiresAt, or duration from the first grant, capped by the rule's maxDuration.
      const expiry = effectiveExpiry({
        expiresAt: dsa.spec.expiresAt,
        duration: dsa.spec.duration,
        grantedAt: dsa.status?.grantedAt,
        maxDurationMs: decision.maxDurationMs,
        now: ctx.now,
      });
      const expired = expiry.at !== undefined && expiry.at.getTime() <= ctx.now.getTime();
      const convergedBefore = isTrue(dsa.status?.conditions, 'Ready') && dsa.status?.observedGeneration === dsa.metadata.generation;

      // 3. Observe, diff, apply. A principal no rule can make grantable (a superuser, Steward's own
      // login or roles, ...) is judged from the same observation, and denied like a policy denial.
      let plan: AccessPlan | undefined;
      let refusal: string | undefined;
      const input = {
        database: wh.spec.postgres.database,
        groupRole,
        comment,
        schema: target.schema,
        tables: target.tables,
        privileges,
        principal,
        expired,
        convergedBefore,
      };
      const { statements } = await applyInTransaction(
        pool,
        trail,
        groupRole,
        target.schema,
        usageRoleName(wh.spec.postgres.database, target.schema),
        principal,
        (o) => {
          refusal = (o.principal && refusedRole(o.principal)) || refusedTargets(target.schema, o.tables, target.tables, privileges);
          if (refusal) return denyPlan(o, `${refusal}: it is never grantable, whatever the accessPolicy says`);
          plan = planAccess(o, input);
          const p = plan;
          return {
            statements: [...p.expiryStatements, ...p.statements],
            locks: p.locks,
            records: [
              ...statementRecords(p.expiryStatements, target.name, undefined),
              ...(p.expiryStatements.length
                ? [
                    audit('access.expire', 'success', `role:${groupRole}`, {
                      details: { principal, expiredAt: expiry.at!.toISOString().replace('.000Z', 'Z') },
                    }),
                  ]
                : []),
              ...statementRecords(p.statements, target.name, p.drift),
            ],
          };
        },
        (o) => {
          if (refusal) return o.role.exists && o.role.comment === comment ? dropRoleStatements(groupRole, o.state) : [];
          const after = planAccess(o, input);
          return [...after.expiryStatements, ...after.statements];
        },
      );
      if (refusal) return denied(`${refusal}: it is never grantable, whatever the accessPolicy says`, statements);
      const { blocked, principalMissing, drift } = plan!;
      if (blocked?.reason === 'RoleConflict') return { state: 'Stalled', reason: blocked.reason, message: `${blocked.message}; nothing granted`, status };
      if (blocked) return { state: 'Progressing', reason: blocked.reason, message: `${blocked.message} (yet); nothing granted, retrying`, status };
      if (principalMissing) {
        return {
          state: 'Stalled',
          reason: 'PrincipalNotFound',
          message: `role ${principal} does not exist in Warehouse ${target.name}; Steward never creates login roles. Create it, and the access is granted.`,
          status,
          events: [{ type: 'Warning', reason: 'PrincipalNotFound', note: `role ${principal} does not exist`, action: 'Grant' }],
        };
      }
      const membershipGranted = statements.some((s) => s.action === 'grant.membership');
      const membershipRevoked = statements.some((s) => s.action === 'revoke.membership');
      const grantedAt = dsa.status?.grantedAt ?? (membershipGranted || !expired ? ctx.now.toISOString() : undefined);
      const events = [
        ...(drift
          ? [{ type: 'Warning' as const, reason: 'DriftCorrected', note: `corrected changes made outside Steward: ${drift.join('; ')}`, action: 'Reconcile' }]
          : []),
        ...(membershipGranted && !drift
          ? [
              {
                type: 'Normal' as const,
                reason: 'Granted',
                note: `${principal} granted ${privileges.join(', ')} on ${shown.dataset} through ${groupRole}`,
                action: 'Grant',
              },
            ]
          : []),
      ];
      // RFC 3339 as people write it: no milliseconds when there are none.
      const expiresAt = expiry.at ? expiry.at.toISOString().replace('.000Z', 'Z') : null;
      if (expired) {
        const revokedAt = membershipRevoked ? ctx.now.toISOString() : (dsa.status?.revokedAt ?? ctx.now.toISOString());
        return {
          state: 'Ended',
          reason: 'Expired',
          message: `expired at ${expiresAt}; ${principal} is no longer a member of ${groupRole}. Move expiresAt later to grant it again.`,
          status: { ...status, grantedAt, expiresAt, revokedAt },
          conditions: [{ type: 'Expired', status: 'True', reason: 'Expired', message: `expired at ${expiresAt}, revoked at ${revokedAt}` }],
          events: [
            ...events,
            ...(membershipRevoked
              ? [
                  {
                    type: 'Normal' as const,
                    reason: 'Expired',
                    note: `access expired at ${expiresAt}; revoked ${groupRole} from ${principal}`,
                    action: 'Revoke',
                  },
                ]
              : []),
          ],
        };
      }
      const capped = expiry.capped ? ` (capped by the policy's maxDuration)` : '';
      return {
        state: 'Ready',
        reason: 'Granted',
        message: `${principal} holds ${privileges.join(', ')} on ${shown.dataset} through ${groupRole}${expiresAt ? ` until ${expiresAt}${capped}` : ''}`,
        status: { ...status, grantedAt, expiresAt, revokedAt: null },
        conditions: [
          {
            type: 'Expired',
            status: 'False',
            reason: expiresAt ? 'NotYet' : 'NoExpiry',
            message: expiresAt ? `expires at ${expiresAt}${capped}` : 'no expiry set',
          },
        ],
        events,
        // Wake up exactly at the deadline (the queue's timer has millisecond precision).
        requeueAfterMs: expiry.at ? Math.max(1, expiry.at.getTime() - Date.now()) : undefined,
      };
    } catch (err) {
      if (err instanceof StaleObservation) throw err;
      const message = scrub(err instanceof Error ? err.message : String(err), settings);
      await trail
        .record(
          {
            action: 'reconcile',
            resource: `${target.name}/role:${groupRole}`,
            outcome: 'failure',
            error: message,
          },
          new AuditTableSink(pool),
        )
        .catch(() => undefined);
      if (err instanceof InsufficientPrivilege) {
        // A human has to grant Steward's login more; resyncs retry, so it recovers once they have.
        const advice = `${message}. Nothing was changed. Grant the login what docs/warehouse.md lists (CREATEROLE; the privileges it grants, WITH GRANT OPTION)`;
        return {
          state: 'Stalled',
          reason: 'InsufficientPrivilege',
          message: advice,
          status: shown,
          events: [{ type: 'Warning', reason: 'InsufficientPrivilege', note: advice, action: 'Grant' }],
        };
      }
      throw err;
    }
  };
}

/** Deletion: revoke and drop the group role (or leave it, with deletionPolicy Orphan), audited. */
export function datasetAccessCleanup(deps: DatasetAccessDeps) {
  return async function cleanupDatasetAccess(dsa: DatasetAccess, ctx: ReconcileContext): Promise<Outcome> {
    const target = dsa.spec.warehouse;
    const namespace = dsa.metadata.namespace!;
    if (!target) return { state: 'Ready', reason: 'Deleted', message: 'nothing was granted' };
    const groupRole = groupRoleName(namespace, dsa.metadata.name);
    const wh = deps.warehouse(target.name);
    const orphan = dsa.spec.deletionPolicy === 'Orphan';
    if (!wh) {
      return {
        state: 'Progressing',
        reason: 'WarehouseNotFound',
        message: `cannot revoke: Warehouse ${target.name} does not exist. Recreate it, or set deletionPolicy: Orphan to leave the grants.`,
      };
    }
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'DatasetAccess', namespace, name: dsa.metadata.name });
    let pool: pg.Pool;
    try {
      pool = (await deps.connections.pool(wh)).pool;
      const comment = ownershipComment(namespace, dsa.metadata.name);
      await inTransaction(pool, async (client) => {
        const o = await observe(client, groupRole, target.schema, undefined, usageRoleName(wh.spec.postgres.database, target.schema));
        const ours = o.role.exists && o.role.comment === comment;
        const statements = ours && !orphan ? dropRoleStatements(groupRole, o.state) : [];
        // In the one lock order (roles and tables first, schemas last): no deadlocks.
        if (ours) await new ObjectLocks(client).take(lockKeys(groupRole, diffGrants(EMPTY_STATE, o.state)));
        for (const s of statements) await runChecked(client, s.sql, s.object);
        const sink = new AuditTableSink(client);
        if (orphan) {
          await trail.record(
            {
              action: 'access.orphan',
              resource: `${target.name}/role:${groupRole}`,
              outcome: 'success',
              details: { note: 'deletionPolicy Orphan: grants left in place' },
            },
            sink,
          );
        }
        await trail.recordMany(
          statements.map((s) => ({
            action: s.action,
            resource: `${target.name}/${s.object}`,
            outcome: 'success' as const,
            details: { statement: s.sql },
          })),
          sink,
        );
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await trail.record({
        action: 'role.drop',
        resource: `${target.name}/role:${groupRole}`,
        outcome: 'failure',
        error: message,
      });
      return { state: 'Progressing', reason: 'RevokeFailed', message: `cannot revoke yet: ${message}; the finalizer stays and Steward retries with backoff` };
    }
    return {
      state: 'Ready',
      reason: orphan ? 'Orphaned' : 'Revoked',
      message: orphan ? 'grants left in place (deletionPolicy Orphan)' : `revoked and dropped ${groupRole}`,
      events: [
        {
          type: 'Normal',
          reason: orphan ? 'Orphaned' : 'Revoked',
          note: orphan ? `left ${groupRole} in place (deletionPolicy Orphan)` : `revoked and dropped ${groupRole}`,
          action: 'Revoke',
        },
      ],
    };
  };
}

/** Accesses whose deadline has passed go first at start-up: revoke before any other work. */
export function expiredFirst(objects: DatasetAccess[], now: Date): DatasetAccess[] {
  const deadline = (d: DatasetAccess) => Date.parse(d.status?.expiresAt ?? d.spec.expiresAt ?? '') || Infinity;
  const due = (d: DatasetAccess) => deadline(d) <= now.getTime() && findCondition(d.status?.conditions, 'Expired')?.status !== 'True';
  return [...objects.filter(due), ...objects.filter((d) => !due(d))];
}

export function accessesOfWarehouse(accesses: () => DatasetAccess[]) {
  return (wh: KubeObject): string[] =>
    accesses()
      .filter((a) => a.spec.warehouse?.name === wh.metadata.name)
      .map((a) => `${a.metadata.namespace}/${a.metadata.name}`);
}

export function accessesInNamespace(accesses: () => DatasetAccess[]) {
  return (ns: KubeObject): string[] =>
    accesses()
      .filter((a) => a.metadata.namespace === ns.metadata.name)
      .map((a) => `${a.metadata.namespace}/${a.metadata.name}`);
}
