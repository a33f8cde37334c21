// DatasetAccess reconciler: glue between the object and its driver. Target -> policy -> expiry ->
// observe -> plan (pure, governance/access-plan.ts) -> apply (the driver: locks, SQL, read-back,
// audit) -> Outcome. Each access owns one group role; the principal is made a member of it, so
// deleting or expiring one access never touches another.
import { datasetAccessKind, type DatasetAccess } from '../api/datasetaccess.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import { StaleObservation, stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { findCondition, isTrue } from '../runtime/conditions.ts';
import type { AuditTrail, ScopedInput } from '../audit/sink.ts';
import { evaluatePolicy } from '../governance/policy.ts';
import { refusedRole, refusedTargets } from '../governance/reserved.ts';
import { accessDeadline } from '../governance/expiry.ts';
import { groupRoleName, ownershipComment, usageRoleComment, usageRoleName } from '../governance/grants.ts';
import { planAccess, planRevoke, type AccessTarget } from '../governance/access-plan.ts';
import { InsufficientPrivilege } from '../drivers/postgres/checked.ts';
import { connectWarehouse, readAheadByWarehouse, type WarehouseDeps } from './warehouse-preamble.ts';
import { s3AccessCleanup, s3AccessReconciler, type S3AccessDeps } from './datasetaccess-s3.ts';
import { revocationOf, revokedBy, type ReviewRevocationLookup } from './review-revocation.ts';
import { requestedBy } from '../api/meta.ts';

export const DATASET_ACCESS_TYPE: ResourceType = resourceType(datasetAccessKind);
export const DATASET_ACCESS_FINALIZER = 'steward.dev/revoke-access';

export interface DatasetAccessDeps extends WarehouseDeps {
  audit: AuditTrail;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  /** S3 through IAM (datasetaccess-s3.ts); without it an s3 access is refused as unsupported. */
  s3?: S3AccessDeps;
  /** The AccessReview revocation of this access's current spec, if a review revoked it (controllers/accessreview.ts). */
  reviewRevocation?: ReviewRevocationLookup;
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

/** The group role of an access in its Warehouse, as the driver sees it. */
export function accessTarget(dsa: DatasetAccess, wh: Warehouse): AccessTarget {
  const namespace = dsa.metadata.namespace!;
  const { database } = wh.spec.postgres;
  const schema = dsa.spec.warehouse!.schema;
  return {
    groupRole: groupRoleName(namespace, dsa.metadata.name),
    comment: ownershipComment(namespace, dsa.metadata.name),
    schema,
    usageRole: usageRoleName(database, schema),
    usageRoleComment: usageRoleComment(database, schema),
    principal: dsa.spec.principal.role,
  };
}

export function datasetAccessReconciler(deps: DatasetAccessDeps) {
  const s3Reconcile = deps.s3 && s3AccessReconciler(deps.s3);
  return async function reconcileDatasetAccess(dsa: DatasetAccess, ctx: ReconcileContext): Promise<Outcome> {
    const shown = display(dsa);
    const spec = dsa.spec.warehouse;
    if (!spec && deps.s3) return s3Reconcile!(dsa, ctx, shown);
    if (!spec) {
      return {
        state: 'Stalled',
        reason: 'UnsupportedTarget',
        message: 'S3 access through IAM is not implemented yet in this release; nothing was granted',
        status: shown,
      };
    }
    const namespace = dsa.metadata.namespace!;
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'DatasetAccess', namespace, name: dsa.metadata.name, actor: requestedBy(dsa) });
    const connected = await connectWarehouse(deps, spec.name, 'nothing granted');
    if ('outcome' in connected) return { ...connected.outcome, status: shown };
    const { wh, drivers } = connected;
    const driver = drivers.access;
    const target = accessTarget(dsa, wh);
    const { groupRole } = target;
    const principal = dsa.spec.principal.role!;
    const privileges = spec.privileges ?? ['SELECT'];
    const status = { ...shown, groupRole };
    const wasDenied = findCondition(dsa.status?.conditions, 'Ready')?.reason === 'PolicyDenied';

    try {
      // 1. Target, policy: default deny, decided before the warehouse is asked anything.
      const labels = deps.namespaceLabels(namespace) ?? {};
      const decision = evaluatePolicy(wh.spec.accessPolicy, {
        namespace: { name: namespace, labels },
        schema: spec.schema,
        privileges,
        principals: [principal],
      });

      // 2. Observe once. A principal no rule can make grantable (a superuser, Steward's own login or
      // roles, ...) or targets only SELECT may reach are judged from the same observation.
      const observed = await driver.observe(target);
      const never =
        decision.allowed && ((observed.principal && refusedRole(observed.principal)) || refusedTargets(spec.schema, observed.tables, spec.tables, privileges));
      const why = !decision.allowed ? decision.message : never ? `${never}: it is never grantable, whatever the accessPolicy says` : undefined;
      if (!decision.allowed || why) {
        const refusal = why!;
        // A denied access holds nothing: what it was granted before is revoked, its role dropped.
        const plan = planRevoke(observed, target);
        const note: ScopedInput = {
          action: 'policy.evaluate',
          resource: `${spec.name}/${spec.schema}.${spec.tables.join(',')}`,
          outcome: 'denied',
          error: refusal,
          details: { principal, privileges },
        };
        // The denial is audited once, unless it revoked something.
        await driver.apply(target, observed, plan, trail, wasDenied && !plan.drop ? [] : [note]);
        return {
          state: 'Stalled',
          reason: 'PolicyDenied',
          message: `${refusal}; nothing is granted${plan.drop ? ' (the access granted before was revoked)' : ''}. Ask the Warehouse owner to extend spec.accessPolicy, or change the request.`,
          status: { ...status, expiresAt: null, ...(plan.drop ? { revokedAt: ctx.now.toISOString() } : {}) },
          conditions: [{ type: 'Expired', status: 'False', reason: 'NotGranted', message: 'the access is not granted' }],
          events: [{ type: 'Warning', reason: 'PolicyDenied', note: refusal, action: 'Grant' }],
        };
      }
      // 3. Expiry: expiresAt, or duration from the first grant, capped by the rule's maxDuration;
      // an AccessReview's revoke ends the access the same way, until the spec changes.
      const expiry = accessDeadline(dsa.spec, dsa.status?.grantedAt, decision.maxDurationMs, ctx.now);
      const revocation = revocationOf(dsa, deps.reviewRevocation);
      const { expiresAt } = expiry;
      const expired = expiry.expired || revocation !== undefined;
      const convergedBefore = isTrue(dsa.status?.conditions, 'Ready') && dsa.status?.observedGeneration === dsa.metadata.generation;

      // 4. Plan (pure), 5. apply: the driver locks, looks again, runs it, reads it back, audits it.
      const plan = planAccess(observed, target, { tables: spec.tables, privileges, principal, expired, convergedBefore });
      const notes: ScopedInput[] = !plan.expire
        ? []
        : revocation
          ? [{ action: 'access.revoke_by_review', resource: `${spec.name}/role:${groupRole}`, outcome: 'success', details: { principal, ...revocation } }]
          : [{ action: 'access.expire', resource: `${spec.name}/role:${groupRole}`, outcome: 'success', details: { principal, expiredAt: expiresAt } }];
      await driver.apply(target, observed, plan, trail, notes);

      // 6. The Outcome, from the plan's typed result.
      const { blocked, principalMissing, drift, membership } = plan;
      if (blocked?.reason === 'RoleConflict') return { state: 'Stalled', reason: blocked.reason, message: `${blocked.message}; nothing granted`, status };
      if (blocked) return { state: 'Progressing', reason: blocked.reason, message: `${blocked.message} (yet); nothing granted, retrying`, status };
      if (principalMissing) {
        return {
          state: 'Stalled',
          reason: 'PrincipalNotFound',
          message: `role ${principal} does not exist in Warehouse ${spec.name}; Steward never creates login roles. Create it, and the access is granted.`,
          status,
          events: [{ type: 'Warning', reason: 'PrincipalNotFound', note: `role ${principal} does not exist`, action: 'Grant' }],
        };
      }
      const grantedAt = dsa.status?.grantedAt ?? (membership === 'granted' || !expired ? ctx.now.toISOString() : undefined);
      // Events are for what a human should see: Steward undoing someone's change, an expiry, a
      // refusal. A routine grant is said by Ready=True and by its audit records; an Event for each
      // of 1,000 accesses would be 1,000 API writes and noise in `kubectl get events`.
      const events = drift
        ? [{ type: 'Warning' as const, reason: 'DriftCorrected', note: `corrected changes made outside Steward: ${drift.join('; ')}`, action: 'Reconcile' }]
        : [];
      if (revocation) {
        const revokedAt = membership === 'revoked' ? ctx.now.toISOString() : (dsa.status?.revokedAt ?? ctx.now.toISOString());
        const who = revokedBy(revocation);
        return {
          state: 'Ended',
          reason: 'RevokedByReview',
          message: `revoked by ${who}; ${principal} is no longer a member of ${groupRole}. It is not granted again until its spec changes (a new request, judged by the policy anew).`,
          status: { ...status, grantedAt, expiresAt, revokedAt, revokedByReview: revocation },
          conditions: [{ type: 'Expired', status: 'False', reason: 'RevokedByReview', message: `revoked by review at ${revokedAt}` }],
          events: [
            ...events,
            ...(membership === 'revoked'
              ? [{ type: 'Normal' as const, reason: 'RevokedByReview', note: `revoked ${groupRole} from ${principal}: ${who}`, action: 'Revoke' }]
              : []),
          ],
        };
      }
      if (expired) {
        const revokedAt = membership === 'revoked' ? ctx.now.toISOString() : (dsa.status?.revokedAt ?? ctx.now.toISOString());
        return {
          state: 'Ended',
          reason: 'Expired',
          message: `expired at ${expiresAt}; ${principal} is no longer a member of ${groupRole}. Move expiresAt later to grant it again.`,
          status: { ...status, grantedAt, expiresAt, revokedAt },
          conditions: [{ type: 'Expired', status: 'True', reason: 'Expired', message: `expired at ${expiresAt}, revoked at ${revokedAt}` }],
          events: [
            ...events,
            ...(membership === 'revoked'
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
        status: { ...status, grantedAt, expiresAt, revokedAt: null, revokedByReview: null },
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
      const message = drivers.scrub(err instanceof Error ? err.message : String(err));
      await trail
        .record({ action: 'reconcile', resource: `${spec.name}/role:${groupRole}`, outcome: 'failure', error: message }, drivers.auditTable)
        .catch(() => undefined);
      if (err instanceof InsufficientPrivilege) {
        // A human has to grant Steward's login more; resyncs retry, so it recovers once they have.
        const advice = `${message}. Nothing was changed. Grant the login what docs/warehouse.md lists (CREATEROLE; the privileges it grants, WITH GRANT OPTION)`;
        return stalled('InsufficientPrivilege', advice, 'Grant', shown);
      }
      throw err;
    }
  };
}

/** Deletion: revoke and drop the group role (or leave it, with deletionPolicy Orphan), audited. */
export function datasetAccessCleanup(deps: DatasetAccessDeps) {
  const s3Cleanup = deps.s3 && s3AccessCleanup(deps.s3);
  return async function cleanupDatasetAccess(dsa: DatasetAccess, ctx: ReconcileContext): Promise<Outcome> {
    const spec = dsa.spec.warehouse;
    if (!spec && s3Cleanup) return s3Cleanup(dsa, ctx);
    if (!spec) return { state: 'Ready', reason: 'Deleted', message: 'nothing was granted' };
    const groupRole = groupRoleName(dsa.metadata.namespace!, dsa.metadata.name);
    const orphan = dsa.spec.deletionPolicy === 'Orphan';
    const trail = deps.audit.scope({
      request_id: ctx.requestId,
      kind: 'DatasetAccess',
      namespace: dsa.metadata.namespace,
      name: dsa.metadata.name,
      // Who deleted it, when the DELETE's admission says; else who asked for it.
      actor: ctx.actor ?? requestedBy(dsa),
    });
    if (orphan) {
      // Left in place: audited in the Warehouse's table when it can be reached, in the log always.
      const wh = deps.warehouse(spec.name);
      const table = wh && (await deps.connections.drivers(wh).catch(() => undefined));
      const record: ScopedInput = {
        action: 'access.orphan',
        resource: `${spec.name}/role:${groupRole}`,
        outcome: 'success',
        details: { note: 'deletionPolicy Orphan: grants left in place' },
      };
      await trail.record(record, ...(table ? [table.auditTable] : []));
    } else {
      // Deletion does not wait for the Warehouse to be Ready: only for it to exist and its Secrets to give a connection.
      const connected = await connectWarehouse(deps, spec.name, 'the grants stay until it does', { mustBeReady: false });
      if ('outcome' in connected)
        return { ...connected.outcome, message: `cannot revoke: ${connected.outcome.message}. Fix that, or set deletionPolicy: Orphan to leave the grants.` };
      const { wh, drivers } = connected;
      try {
        await drivers.access.remove(accessTarget(dsa, wh), trail);
      } catch (err) {
        const message = drivers.scrub(err instanceof Error ? err.message : String(err));
        // Kept for the warehouse's table if it does not answer now (DelayedAuditTable).
        await trail.record({ action: 'role.drop', resource: `${spec.name}/role:${groupRole}`, outcome: 'failure', error: message }, drivers.auditTable);
        return {
          state: 'Progressing',
          reason: 'RevokeFailed',
          message: `cannot revoke yet: ${message}; the access is kept, grants and all, until Steward can revoke them`,
        };
      }
    }
    return {
      state: 'Ready',
      reason: orphan ? 'Orphaned' : 'Revoked',
      message: orphan ? 'grants left in place (deletionPolicy Orphan)' : `revoked and dropped ${groupRole}`,
      // Grants left behind are for a human to know about; a revocation on deletion is routine (audited).
      events: orphan ? [{ type: 'Normal', reason: 'Orphaned', note: `left ${groupRole} in place (deletionPolicy Orphan)`, action: 'Revoke' }] : [],
    };
  };
}

/** The batched resync's read ahead: every access of a Warehouse observed in one query (Driver.prime). */
export function readAheadAccesses(deps: WarehouseDeps) {
  return (accesses: DatasetAccess[]): Promise<void> =>
    readAheadByWarehouse(
      deps,
      accesses.filter((a) => !a.metadata.deletionTimestamp),
      (a) => a.spec.warehouse?.name,
      (drivers, wh, list) => drivers.access.prime?.(list.map((a) => accessTarget(a, wh))) ?? Promise.resolve(),
    );
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
