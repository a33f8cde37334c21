// DatasetAccess on S3, through AWS IAM: the same steps as the PostgreSQL form on the IAM driver.
// Store (ObjectStore, by bucket) -> policy (the ObjectStore's accessPolicy, default deny) -> expiry
// -> observe (the principal's role and its policies) -> plan (pure, governance/s3-policy.ts) ->
// apply (PutRolePolicy or DeleteRolePolicy, read back, audited) -> Outcome.
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { ObjectStore } from '../api/objectstore.ts';
import type { AuditScope, AuditSink, AuditTrail, ScopedInput } from '../audit/sink.ts';
import { accessDeadline } from '../governance/expiry.ts';
import {
  PolicyQuotaExceeded,
  accessPolicyDocument,
  evaluateStorePolicy,
  inlinePolicyName,
  planS3Access,
  principalMismatch,
  roleNameOf,
  stewardRoleName,
} from '../governance/s3-policy.ts';
import { findCondition, isTrue } from '../runtime/conditions.ts';
import { stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import type { IamAccessDriver, S3AccessTarget } from '../drivers/aws/iam-access-driver.ts';
import { storeClients, type ObjectStoreDeps } from './objectstore.ts';
import { waitingFor } from './dependency.ts';
import { revocationOf, revokedBy, type ReviewRevocationLookup } from './review-revocation.ts';
import { requestedBy } from '../api/meta.ts';

export interface S3AccessDeps extends ObjectStoreDeps {
  audit: AuditTrail;
  /** The ObjectStores whose spec.s3.bucket is this bucket (one, normally). */
  objectStores: (bucket: string) => ObjectStore[];
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  /** The audit table of the ObjectStore's auditWarehouse, when it names one and it answers. */
  auditTable: (warehouse: string) => Promise<AuditSink | undefined>;
  /** The AccessReview revocation of this access's current spec (controllers/accessreview.ts). */
  reviewRevocation?: ReviewRevocationLookup;
}

export function s3Target(dsa: DatasetAccess): S3AccessTarget {
  const s3 = dsa.spec.s3!;
  return {
    role: roleNameOf(dsa.spec.principal.iamRole!),
    policyName: inlinePolicyName(dsa.metadata.namespace!, dsa.metadata.name),
    resource: `s3://${s3.bucket}/${s3.prefix}`,
  };
}

/** The ObjectStore, its IAM driver and its audit sinks; or the Outcome that says why not. */
async function connectStore(
  deps: S3AccessDeps,
  bucket: string,
  nothing: string,
  mustBeReady = true,
): Promise<
  { store: ObjectStore; driver: IamAccessDriver; sinks: AuditSink[]; scrub: (m: string) => string; identity: () => Promise<string> } | { outcome: Outcome }
> {
  const claims = deps.objectStores(bucket);
  // Two ObjectStores naming one bucket would make its policy whichever the cache lists first.
  if (claims.length > 1) {
    const names = claims.map((c) => c.metadata.name).sort();
    return {
      outcome: {
        state: 'Stalled',
        reason: 'ObjectStoreConflict',
        message: `ObjectStores ${names.join(' and ')} both name bucket ${bucket}; ${nothing} until only one does`,
      },
    };
  }
  const candidate = claims[0];
  const found = waitingFor(
    'ObjectStore',
    candidate ? `ObjectStore ${candidate.metadata.name}` : `an ObjectStore of bucket ${bucket}`,
    candidate,
    nothing,
    mustBeReady,
  );
  if ('outcome' in found) return found;
  const store = found.dep;
  const clients = await storeClients(deps, store, nothing);
  if ('outcome' in clients) return clients;
  const table = store.spec.auditWarehouse ? await deps.auditTable(store.spec.auditWarehouse) : undefined;
  const { IamAccessDriver } = await import('../drivers/aws/iam-access-driver.ts');
  const sinks = table ? [table] : [];
  return { store, driver: new IamAccessDriver(clients.iam, sinks), sinks, scrub: clients.scrub, identity: clients.identity };
}

export function s3AccessReconciler(deps: S3AccessDeps) {
  return async function reconcileS3Access(dsa: DatasetAccess, ctx: ReconcileContext, shown: Record<string, unknown>): Promise<Outcome> {
    const s3 = dsa.spec.s3!;
    const namespace = dsa.metadata.namespace!;
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'DatasetAccess', namespace, name: dsa.metadata.name, actor: requestedBy(dsa) });
    const connected = await connectStore(deps, s3.bucket, 'nothing granted');
    if ('outcome' in connected) return { ...connected.outcome, status: shown };
    const { store, driver, sinks, scrub, identity } = connected;
    const target = s3Target(dsa);
    const status = { ...shown, iamPolicy: target.policyName };
    const wasDenied = findCondition(dsa.status?.conditions, 'Ready')?.reason === 'PolicyDenied';
    try {
      let decision = evaluateStorePolicy(store.spec.accessPolicy, {
        namespace: { name: namespace, labels: deps.namespaceLabels(namespace) ?? {} },
        prefix: s3.prefix,
        access: s3.access ?? 'read',
        principal: dsa.spec.principal.iamRole!,
      });
      const observed = await driver.observe(target);
      if (stewardRoleName(await identity()) === target.role) {
        decision = { allowed: false, message: `IAM role ${target.role} is Steward's own identity: it is never grantable, whatever the accessPolicy says` };
      }
      const mismatch = principalMismatch(dsa.spec.principal.iamRole!, observed);
      if (mismatch) {
        // Fail closed: what Steward wrote on the role of that name before (when the spec named it) goes.
        await driver.apply(target, observed, planS3Access(observed, undefined, 'denied', false), trail);
        return stalled('PrincipalNotFound', `${mismatch}; nothing is granted`, 'Grant', status);
      }
      if (!decision.allowed) {
        // Fail closed: a denied access holds nothing; a policy written before is deleted.
        const plan = planS3Access(observed, undefined, 'denied', false);
        const note: ScopedInput = {
          action: 'policy.evaluate',
          resource: `${store.metadata.name}/${s3.prefix}`,
          outcome: 'denied',
          error: decision.message,
          details: { principal: dsa.spec.principal.iamRole, access: s3.access ?? 'read' },
        };
        await driver.apply(target, observed, plan, trail, wasDenied && plan.kind === 'none' ? [] : [note]);
        return {
          state: 'Stalled',
          reason: 'PolicyDenied',
          message: `${decision.message}; nothing is granted${plan.kind === 'delete' ? ' (the policy written before was deleted)' : ''}. Ask the ObjectStore owner to extend spec.accessPolicy, or change the request.`,
          status: { ...status, expiresAt: null, otherPolicies: observed.otherPolicies },
          conditions: [{ type: 'Expired', status: 'False', reason: 'NotGranted', message: 'the access is not granted' }],
          events: [{ type: 'Warning', reason: 'PolicyDenied', note: decision.message, action: 'Grant' }],
        };
      }
      if (!observed.roleExists) {
        return {
          state: 'Stalled',
          reason: 'PrincipalNotFound',
          message: `IAM role ${target.role} does not exist; Steward never creates IAM roles. Create it, and the access is granted.`,
          status,
          events: [{ type: 'Warning', reason: 'PrincipalNotFound', note: `IAM role ${target.role} does not exist`, action: 'Grant' }],
        };
      }
      const expiry = accessDeadline(dsa.spec, dsa.status?.grantedAt, decision.maxDurationMs, ctx.now);
      // An AccessReview's revoke ends the access the same way, until the spec changes.
      const revocation = revocationOf(dsa, deps.reviewRevocation);
      const { expiresAt } = expiry;
      const expired = expiry.expired || revocation !== undefined;
      const convergedBefore = isTrue(dsa.status?.conditions, 'Ready') && dsa.status?.observedGeneration === dsa.metadata.generation;
      const desired = expired
        ? undefined
        : accessPolicyDocument({
            bucket: s3.bucket,
            prefix: s3.prefix,
            access: s3.access ?? 'read',
            expiresAt: expiresAt ?? undefined,
            region: store.spec.s3.region,
          });
      const plan = planS3Access(observed, desired, 'expired', convergedBefore);
      const notes: ScopedInput[] =
        revocation && plan.kind === 'delete'
          ? [
              {
                action: 'access.revoke_by_review',
                resource: `iam:role/${target.role}/policy/${target.policyName}`,
                outcome: 'success',
                details: { ...revocation },
              },
            ]
          : expired && plan.kind === 'delete'
            ? [
                {
                  action: 'access.expire',
                  resource: `iam:role/${target.role}/policy/${target.policyName}`,
                  outcome: 'success',
                  details: { expiredAt: expiresAt },
                },
              ]
            : [];
      await driver.apply(target, observed, plan, trail, notes);
      const found = { otherPolicies: observed.otherPolicies.length ? observed.otherPolicies : null };
      const grantedAt = dsa.status?.grantedAt ?? (!expired ? ctx.now.toISOString() : undefined);
      if (revocation) {
        const revokedAt = plan.kind === 'delete' ? ctx.now.toISOString() : (dsa.status?.revokedAt ?? ctx.now.toISOString());
        return {
          state: 'Ended',
          reason: 'RevokedByReview',
          message: `revoked by ${revokedBy(revocation)}; Steward's policy ${target.policyName} is gone from role ${target.role}. It is not granted again until its spec changes (a new request, judged by the policy anew).`,
          status: { ...status, ...found, grantedAt, expiresAt, revokedAt, revokedByReview: revocation },
          conditions: [{ type: 'Expired', status: 'False', reason: 'RevokedByReview', message: `revoked by review at ${revokedAt}` }],
          events:
            plan.kind === 'delete'
              ? [
                  {
                    type: 'Normal',
                    reason: 'RevokedByReview',
                    note: `deleted ${target.policyName} from role ${target.role}: ${revokedBy(revocation)}`,
                    action: 'Revoke',
                  },
                ]
              : [],
        };
      }
      if (expired) {
        const revokedAt = plan.kind === 'delete' ? ctx.now.toISOString() : (dsa.status?.revokedAt ?? ctx.now.toISOString());
        return {
          state: 'Ended',
          reason: 'Expired',
          message: `expired at ${expiresAt}; Steward's policy ${target.policyName} is gone from role ${target.role}. Move expiresAt later to grant it again.`,
          status: { ...status, ...found, grantedAt, expiresAt, revokedAt },
          conditions: [{ type: 'Expired', status: 'True', reason: 'Expired', message: `expired at ${expiresAt}, revoked at ${revokedAt}` }],
          events:
            plan.kind === 'delete'
              ? [
                  {
                    type: 'Normal',
                    reason: 'Expired',
                    note: `access expired at ${expiresAt}; deleted ${target.policyName} from role ${target.role}`,
                    action: 'Revoke',
                  },
                ]
              : [],
        };
      }
      const drift = plan.kind === 'put' ? plan.drift : undefined;
      const others = observed.otherPolicies.length
        ? `; role ${target.role} also holds policies that are not Steward's: ${observed.otherPolicies.join(', ')}`
        : '';
      return {
        state: 'Ready',
        reason: 'Granted',
        message: `${target.role} may ${s3.access === 'readWrite' ? 'read and write' : 'read'} ${target.resource} through inline policy ${target.policyName}${expiresAt ? ` until ${expiresAt}` : ''}${others}`,
        status: { ...status, ...found, grantedAt, expiresAt, revokedAt: null, revokedByReview: null },
        conditions: [
          { type: 'Expired', status: 'False', reason: expiresAt ? 'NotYet' : 'NoExpiry', message: expiresAt ? `expires at ${expiresAt}` : 'no expiry set' },
        ],
        events: drift ? [{ type: 'Warning', reason: 'DriftCorrected', note: `corrected a change made outside Steward: ${drift}`, action: 'Reconcile' }] : [],
        requeueAfterMs: expiry.at ? Math.max(1, expiry.at.getTime() - Date.now()) : undefined,
      };
    } catch (err) {
      const message = scrub(err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err));
      await trail.record({ action: 'reconcile', resource: target.resource, outcome: 'failure', error: message }, ...sinks).catch(() => undefined);
      if (err instanceof PolicyQuotaExceeded) return { state: 'Stalled', reason: 'PolicyQuotaExceeded', message, status };
      throw new Error(message);
    }
  };
}

/** Deletion: Steward's inline policy goes (or stays, with deletionPolicy Orphan), audited. */
export function s3AccessCleanup(deps: S3AccessDeps) {
  return async function cleanupS3Access(dsa: DatasetAccess, ctx: ReconcileContext): Promise<Outcome> {
    const s3 = dsa.spec.s3!;
    const trail: AuditScope = deps.audit.scope({
      request_id: ctx.requestId,
      kind: 'DatasetAccess',
      namespace: dsa.metadata.namespace,
      name: dsa.metadata.name,
      actor: ctx.actor ?? requestedBy(dsa),
    });
    const target = s3Target(dsa);
    const connected = await connectStore(deps, s3.bucket, 'the policy stays until it does', false);
    if (dsa.spec.deletionPolicy === 'Orphan') {
      const sinks = 'outcome' in connected ? [] : connected.sinks;
      await trail.record(
        {
          action: 'access.orphan',
          resource: `iam:role/${target.role}/policy/${target.policyName}`,
          outcome: 'success',
          details: { note: 'deletionPolicy Orphan: policy left in place' },
        },
        ...sinks,
      );
      return {
        state: 'Ready',
        reason: 'Orphaned',
        message: 'policy left in place (deletionPolicy Orphan)',
        events: [{ type: 'Normal', reason: 'Orphaned', note: `left ${target.policyName} on role ${target.role} (deletionPolicy Orphan)`, action: 'Revoke' }],
      };
    }
    if ('outcome' in connected)
      return { ...connected.outcome, message: `cannot revoke: ${connected.outcome.message}. Fix that, or set deletionPolicy: Orphan to leave the policy.` };
    try {
      await connected.driver.remove(target, trail);
    } catch (err) {
      const message = connected.scrub(err instanceof Error ? err.message : String(err));
      await trail.record({ action: 'iam.policy.delete', resource: target.resource, outcome: 'failure', error: message }, ...connected.sinks);
      return {
        state: 'Progressing',
        reason: 'RevokeFailed',
        message: `cannot revoke yet: ${message}; the access is kept, grants and all, until Steward can revoke them`,
      };
    }
    return { state: 'Ready', reason: 'Revoked', message: `deleted ${target.policyName} from role ${target.role}` };
  };
}
