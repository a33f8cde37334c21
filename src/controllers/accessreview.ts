// AccessReview reconciler. A cycle starts on the schedule (or when asked), lists every grant in
// scope read live (each DatasetAccess granted there, each MaskedView reader, and the grants in the
// catalog no Steward object explains), applies the reviewers' decisions for that cycle, and at the
// due time applies onMissingDecision to every access nobody decided on. The revocation of a
// DatasetAccess is carried out by its own reconciler (status.findings says revoke; reviewRevocation
// reads it): one writer per object. An out-of-band grant is revoked here, and only on a decision.
import { createHash } from 'node:crypto';
import { accessReviewKind, REVIEW_REQUESTED_ANNOTATION, type AccessReview, type AccessReviewStatus } from '../api/accessreview.ts';
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { MaskedView } from '../api/maskedview.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import type { ObjectStore } from '../api/objectstore.ts';
import type { AuditScope, AuditSink, AuditTrail } from '../audit/sink.ts';
import type { WarehouseDrivers } from '../drivers/postgres/connector.ts';
import { namespaceMatches } from '../governance/policy.ts';
import { cycleId, explanations, judgeDecisions, nextCycleAt, outOfBand, outOfBandId, type Decision } from '../governance/review.ts';
import { findCondition } from '../runtime/conditions.ts';
import { readerRoleName } from '../governance/grants.ts';
import { stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { parseDuration } from '../runtime/duration.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import type { ReviewRevocation } from './review-revocation.ts';
import { connectWarehouse, type WarehouseDeps } from './warehouse-preamble.ts';
import { s3Target } from './datasetaccess-s3.ts';
import { waitingFor } from './dependency.ts';
import { storeClients, type ObjectStoreDeps } from './objectstore.ts';
import { requestedBy } from '../api/meta.ts';

export const ACCESS_REVIEW_TYPE: ResourceType = resourceType(accessReviewKind);

/** Past cycles kept in status. */
const HISTORY = 12;
/** The reminder goes out this long before the due time (or at a quarter of dueIn, if that is shorter). */
const REMIND_BEFORE_MS = 24 * 3600_000;

type Status = AccessReviewStatus;
type Finding = NonNullable<Status['findings']>[number];
type OutOfBandFinding = NonNullable<Status['outOfBand']>[number];
type Cycle = NonNullable<Status['cycle']>;

export interface AccessReviewDeps extends WarehouseDeps, ObjectStoreDeps {
  audit: AuditTrail;
  objectStore: (name: string) => ObjectStore | undefined;
  /** The audit table of a Warehouse (an ObjectStore's auditWarehouse), when it answers. */
  auditTable: (warehouse: string) => Promise<AuditSink | undefined>;
  /** Counts each reading of a system under review (metrics: an idle open cycle reads nothing). */
  onRead?: (source: 'postgres' | 's3') => void;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  accesses: () => DatasetAccess[];
  views: () => MaskedView[];
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace}/${o.metadata.name}`;
const REVOKED = new Set(['revoke', 'revoked-by-default']);
const KEPT = new Set(['keep', 'kept-by-default']);

/** Whether the Warehouse lets this namespace hold reviews of it (reviewPolicy; default deny). */
export function reviewAllowed(target: Warehouse | ObjectStore, namespace: string, labels: Record<string, string>): boolean {
  const selector = target.spec.reviewPolicy?.namespaces;
  return selector !== undefined && namespaceMatches(selector, { name: namespace, labels });
}

function inScope(ar: AccessReview) {
  const { namespaces, schemas, prefixes } = ar.spec.scope;
  return {
    namespace: (n: string) => !namespaces || namespaces.includes(n),
    schema: (s: string) => !schemas || schemas.includes(s),
    prefix: (p: string) => !prefixes || prefixes.some((q) => p.startsWith(q)),
  };
}

/**
 * What a cycle's reading depends on, from the caches (no I/O): the review's spec, and the versions of
 * the Warehouse, the ObjectStore, and every access and view on them.
 */
function inputsOf(ar: AccessReview, deps: AccessReviewDeps): string {
  const store = ar.spec.scope.objectStore ? deps.objectStore(ar.spec.scope.objectStore) : undefined;
  const bucket = store?.spec.s3.bucket;
  const parts = [
    `review ${ar.metadata.generation}`,
    ...(ar.spec.warehouse ? [`warehouse ${deps.warehouse(ar.spec.warehouse)?.metadata.resourceVersion}`] : []),
    ...(store ? [`store ${store.metadata.resourceVersion}`] : []),
    ...deps
      .accesses()
      .filter((d) => (ar.spec.warehouse && d.spec.warehouse?.name === ar.spec.warehouse) || (bucket && d.spec.s3?.bucket === bucket))
      .map((d) => `access ${keyOf(d)} ${d.metadata.resourceVersion}`),
    ...(ar.spec.warehouse ? deps.views().filter((v) => v.spec.warehouse === ar.spec.warehouse) : []).map(
      (v) => `view ${keyOf(v)} ${v.metadata.resourceVersion}`,
    ),
  ];
  return createHash('sha256').update(parts.sort().join('\n')).digest('hex').slice(0, 16);
}

function denied(kind: string, name: string, namespace: string): Outcome {
  return stalled(
    'PolicyDenied',
    `${kind} ${name}'s reviewPolicy does not name namespace ${namespace}: a review here could revoke other teams' grants, so nothing is reviewed. Ask the ${kind} owner to add it to spec.reviewPolicy.namespaces.`,
    'Review',
  );
}

/** An out-of-band grant one source found, and how to revoke it there. */
interface FoundGrant {
  entry: Omit<OutOfBandFinding, 'decision' | 'by'>;
  revoke(trail: AuditScope, sinks: AuditSink[], details: Record<string, unknown>): Promise<void>;
}

/** One system under review: what it holds in scope, read now. */
interface ReviewSource {
  name: 'postgres' | 's3';
  read(cycle: string): Promise<{ findings: Finding[]; found: FoundGrant[] }>;
}

/** Whether this DatasetAccess was revoked by this review in this cycle (it is no longer Granted, and still a finding). */
const revokedHere = (d: DatasetAccess, review: string, cycle: string) =>
  d.status?.revokedByReview?.review === review && d.status.revokedByReview.cycle === cycle;
const isGranted = (d: DatasetAccess) => {
  const ready = findCondition(d.status?.conditions, 'Ready');
  return ready?.status === 'True' && ready.reason === 'Granted';
};
const accessFields = (d: DatasetAccess) => ({
  access: keyOf(d),
  ...(d.status?.grantedAt ? { grantedAt: d.status.grantedAt } : {}),
  ...(d.status?.expiresAt ? { expiresAt: d.status.expiresAt } : {}),
  ...(d.spec.justification ? { justification: d.spec.justification } : {}),
  decision: 'pending',
  generation: d.metadata.generation ?? 1,
});

/** PostgreSQL: the accesses and view readers on the scope's schemas, and the catalog's grants nobody explains. */
function postgresSource(deps: AccessReviewDeps, ar: AccessReview, wh: Warehouse, drivers: WarehouseDrivers): ReviewSource {
  const key = keyOf(ar);
  const scope = inScope(ar);
  return {
    name: 'postgres',
    async read(cycle) {
      const onWarehouse = deps.accesses().filter((d) => d.spec.warehouse?.name === wh.metadata.name);
      const views = deps.views().filter((v) => v.spec.warehouse === wh.metadata.name);
      const findings: Finding[] = [];
      for (const d of onWarehouse) {
        const t = d.spec.warehouse!;
        if (!scope.namespace(d.metadata.namespace!) || !scope.schema(t.schema)) continue;
        if (!isGranted(d) && !revokedHere(d, key, cycle)) continue;
        findings.push({
          kind: 'DatasetAccess',
          principal: d.spec.principal.role!,
          dataset: `${t.name}/${t.schema}.${t.tables.join(',')}`,
          privileges: (t.privileges ?? ['SELECT']).join(','),
          ...accessFields(d),
        });
      }
      const { grants, stewardLogin } = await drivers.reviews.grants(ar.spec.scope.schemas);
      // A view's readers as the catalog has them (members of its reader role that its spec names),
      // not as its status says: a view stuck at a refused change still serves its last version, and
      // one between two reconciles still has its readers. Status may lag; the grant is what counts.
      for (const v of views) {
        if (!scope.namespace(v.metadata.namespace!) || !scope.schema(v.spec.view.schema)) continue;
        const readerRole = readerRoleName(v.metadata.namespace!, v.metadata.name);
        const members = new Set(grants.filter((g) => g.kind === 'membership' && g.name === readerRole).map((g) => g.grantee));
        for (const reader of v.spec.readers.filter((r) => members.has(r)))
          findings.push({
            kind: 'MaskedView',
            access: keyOf(v),
            principal: reader,
            dataset: `${wh.metadata.name}/${v.spec.view.schema}.${v.spec.view.name}`,
            privileges: 'SELECT',
            decision: 'pending',
            generation: v.metadata.generation ?? 1,
          });
      }
      const found = outOfBand(
        grants,
        explanations(
          stewardLogin,
          onWarehouse.map((d) => ({ namespace: d.metadata.namespace!, name: d.metadata.name, principal: d.spec.principal.role!, granted: isGranted(d) })),
          views.map((v) => ({
            namespace: v.metadata.namespace!,
            name: v.metadata.name,
            readers: v.spec.readers,
            ready: findCondition(v.status?.conditions, 'Ready')?.status === 'True',
          })),
        ),
      );
      return {
        findings,
        found: found.map((g) => ({
          entry: {
            id: g.id,
            kind: g.kind,
            grantee: g.grantee,
            object: g.object,
            privileges: `${g.privileges.join(', ')}${g.schemaUsage ? ` (and USAGE on schema ${g.schema})` : ''}`,
          },
          revoke: async (trail, _sinks, details) => {
            await drivers.reviews.revoke(g, trail, details);
          },
        })),
      };
    },
  };
}

/**
 * S3: the accesses on the ObjectStore's bucket under the scope's prefixes, when each role last
 * acted (IAM's RoleLastUsed), and the IAM policies on those roles that are not Steward's.
 */
async function s3Source(
  deps: AccessReviewDeps,
  ar: AccessReview,
  namespace: string,
  labels: Record<string, string>,
): Promise<{ source: ReviewSource; auditSink: AuditSink | undefined } | { outcome: Outcome }> {
  const name = ar.spec.scope.objectStore!;
  const found = waitingFor('ObjectStore', `ObjectStore ${name}`, deps.objectStore(name), 'nothing reviewed', true);
  if ('outcome' in found) return found;
  const store = found.dep;
  if (!reviewAllowed(store, namespace, labels)) return { outcome: denied('ObjectStore', name, namespace) };
  const clients = await storeClients(deps, store, 'nothing reviewed');
  if ('outcome' in clients) return clients;
  const { IamAccessDriver } = await import('../drivers/aws/iam-access-driver.ts');
  const auditSink = store.spec.auditWarehouse ? await deps.auditTable(store.spec.auditWarehouse) : undefined;
  const driver = new IamAccessDriver(clients.iam, auditSink ? [auditSink] : []);
  const key = keyOf(ar);
  const scope = inScope(ar);
  const bucket = store.spec.s3.bucket;
  return {
    auditSink,
    source: {
      name: 's3',
      async read(cycle) {
        const onBucket = deps.accesses().filter((d) => d.spec.s3?.bucket === bucket);
        // Steward's own policies on these roles: every access on the bucket has one, in scope or not.
        const stewardPolicies = new Set(onBucket.map((d) => s3Target(d).policyName));
        const scoped = onBucket.filter(
          (d) => scope.namespace(d.metadata.namespace!) && scope.prefix(d.spec.s3!.prefix) && (isGranted(d) || revokedHere(d, key, cycle)),
        );
        const roles = new Map<string, Awaited<ReturnType<typeof driver.observe>>>();
        for (const d of scoped) {
          const target = s3Target(d);
          if (!roles.has(target.role)) roles.set(target.role, await driver.observe(target));
        }
        const findings: Finding[] = scoped.map((d) => {
          const observed = roles.get(s3Target(d).role);
          return {
            kind: 'DatasetAccess',
            principal: d.spec.principal.iamRole!,
            dataset: `s3://${bucket}/${d.spec.s3!.prefix}`,
            privileges: d.spec.s3!.access ?? 'read',
            ...(observed?.lastUsedAt ? { lastUsedAt: observed.lastUsedAt } : {}),
            ...accessFields(d),
          };
        });
        const grants: FoundGrant[] = [];
        for (const [role, observed] of roles)
          for (const policy of observed.otherPolicies.filter((p) => !stewardPolicies.has(p))) {
            const kind = policy.startsWith('arn:') ? 'attached' : 'inline';
            grants.push({
              entry: { id: outOfBandId('iam-policy', role, policy), kind: 'iam-policy', grantee: role, object: policy, privileges: kind },
              revoke: async (trail, sinks, details) => {
                await driver.removeForeignPolicy(role, policy, trail, { ...details, note: 'decided in an AccessReview' }, sinks);
              },
            });
          }
        return { findings, found: grants };
      },
    },
  };
}

export function accessReviewReconciler(deps: AccessReviewDeps) {
  return async function reconcileAccessReview(ar: AccessReview, ctx: ReconcileContext): Promise<Outcome> {
    const namespace = ar.metadata.namespace!;
    const key = keyOf(ar);
    const labels = deps.namespaceLabels(namespace) ?? {};
    // What is under review: the Warehouse, the ObjectStore, or both; each must allow reviews from here.
    const sources: ReviewSource[] = [];
    let auditSink: AuditSink | undefined;
    if (ar.spec.warehouse) {
      const connected = await connectWarehouse(deps, ar.spec.warehouse, 'nothing reviewed');
      if ('outcome' in connected) return connected.outcome;
      const { wh, drivers } = connected;
      if (!reviewAllowed(wh, namespace, labels)) return denied('Warehouse', wh.metadata.name, namespace);
      sources.push(postgresSource(deps, ar, wh, drivers));
      auditSink = drivers.auditTable;
    }
    if (ar.spec.scope.objectStore) {
      const connected = await s3Source(deps, ar, namespace, labels);
      if ('outcome' in connected) return connected.outcome;
      sources.push(connected.source);
      auditSink ??= connected.auditSink;
    }
    const sinks = auditSink ? [auditSink] : [];
    const reviewed = ar.spec.warehouse ?? `objectstore:${ar.spec.scope.objectStore}`;
    const now = ctx.now;
    const status = ar.status ?? {};
    const trail = (requestId: string) =>
      deps.audit.scope({ request_id: requestId, kind: 'AccessReview', namespace, name: ar.metadata.name, actor: requestedBy(ar) });
    const events: NonNullable<Outcome['events']> = [];
    let cycle: Cycle | undefined = status.cycle;
    const requested = ar.metadata.annotations?.[REVIEW_REQUESTED_ANNOTATION];
    const asked = requested !== undefined && requested !== status.lastRequestedAt;
    const created = new Date(ar.metadata.creationTimestamp ?? now.toISOString());
    const next = nextCycleAt(ar.spec.schedule, cycle ? new Date(cycle.startedAt) : undefined, created);
    const fields: Record<string, unknown> = {};

    // 1. A cycle starts on the schedule, or when asked for.
    let previous = { findings: status.findings ?? [], outOfBand: status.outOfBand ?? [] };
    let started = false;
    let history = status.history ?? [];
    // Asked for while one is open: the open one ends as it stands, superseded (nothing applied at its due).
    if (asked && cycle && !cycle.completedAt) {
      const s = status.summary;
      history = [
        {
          id: cycle.id,
          startedAt: cycle.startedAt,
          completedAt: now.toISOString(),
          kept: s?.kept ?? 0,
          revoked: s?.revoked ?? 0,
          outOfBand: s?.outOfBand ?? 0,
        },
        ...history,
      ].slice(0, HISTORY);
      events.push({ type: 'Normal', reason: 'ReviewSuperseded', note: `cycle ${cycle.id} ended unfinished: a new cycle was asked for`, action: 'Review' });
      cycle = { ...cycle, completedAt: now.toISOString() };
    }
    if (!cycle || cycle.completedAt) {
      if (!asked && next.getTime() > now.getTime())
        return {
          state: 'Ready',
          reason: cycle ? 'Completed' : 'Scheduled',
          message: `${cycle ? `cycle ${cycle.id} completed; ` : ''}the next cycle starts at ${next.toISOString()}`,
          status: { nextCycleAt: next.toISOString() },
          requeueAfterMs: Math.max(1, next.getTime() - Date.now()),
        };
      const id = cycleId(now, [...(cycle ? [cycle.id] : []), ...history.map((h) => h.id)]);
      cycle = {
        id,
        number: (cycle?.number ?? 0) + 1,
        startedAt: now.toISOString(),
        dueAt: new Date(now.getTime() + parseDuration(ar.spec.dueIn)).toISOString(),
        // Status is written as a merge patch: the last cycle's times must be removed, not left out.
        ...({ completedAt: null, remindedAt: null } as object),
      };
      previous = { findings: [], outOfBand: [] };
      started = true;
      if (asked) fields.lastRequestedAt = requested;
      events.push({
        type: 'Normal',
        reason: 'ReviewStarted',
        note: `cycle ${id} started${asked ? ' (asked for)' : ''}; ${ar.spec.reviewers.join(', ')}: decide by ${cycle.dueAt} (decisions name cycle "${id}")`,
        action: 'Review',
      });
    }
    const dueAt = Date.parse(cycle.dueAt);
    const due = now.getTime() >= dueAt;
    const remindAt = dueAt - Math.min(REMIND_BEFORE_MS, parseDuration(ar.spec.dueIn) / 4);
    const pendingBefore = status.summary?.pending ?? 0;
    const remindNow = !due && !cycle.remindedAt && pendingBefore > 0 && now.getTime() >= remindAt;
    // An open cycle lasts weeks: it reads the catalog and IAM again only when something it lists or
    // decides from changed (the review, an access, a view, the Warehouse or ObjectStore), and at the
    // reminder and the due time. A grant made by hand meanwhile is found at the next of those.
    const inputs = inputsOf(ar, deps);
    const said = findCondition(status.conditions, 'Ready');
    if (!started && !due && !remindNow && cycle.inputs === inputs && said?.reason === 'InReview' && status.observedGeneration === ar.metadata.generation)
      return {
        state: 'Ready',
        reason: 'InReview',
        message: said.message,
        requeueAfterMs: Math.max(1, (cycle.remindedAt || pendingBefore === 0 || remindAt <= now.getTime() ? dueAt : remindAt) - Date.now()),
      };

    // 2. Findings, read live: the accesses and view readers in scope, and the grants nobody explains.
    const prevFinding = new Map(previous.findings.map((f) => [`${f.kind} ${f.access} ${f.principal}`, f]));
    const accessFindings: Finding[] = [];
    const found: FoundGrant[] = [];
    for (const source of sources) {
      deps.onRead?.(source.name);
      const read = await source.read(cycle.id);
      accessFindings.push(...read.findings);
      found.push(...read.found);
    }
    // Recorded once the cycle's first reading succeeded: a reading that fails (and is retried) starts nothing.
    if (started)
      await trail(ctx.requestId).record(
        { action: 'review.cycle.start', resource: `${reviewed}/review:${key}`, outcome: 'success', details: { cycle: cycle.id, dueAt: cycle.dueAt } },
        ...sinks,
      );
    // Revoked earlier in this cycle: gone from the catalog, still part of the cycle's record.
    const revokedBefore = previous.outOfBand.filter((o) => o.decision === 'revoked' && !found.some((f) => f.entry.id === o.id));

    // 3. Decisions: for this cycle, by a reviewer, about what this cycle found.
    const judged = judgeDecisions((ar.spec.decisions ?? []) as Decision[], cycle.id, ar.spec.reviewers, {
      accesses: new Set(accessFindings.map((f) => f.access)),
      findings: new Set([...found.map((f) => f.entry.id), ...revokedBefore.map((o) => o.id)]),
    });
    const ignored = [...judged.ignored];
    const decided: { action: string; resource: string; details: Record<string, unknown> }[] = [];
    for (const f of accessFindings) {
      const before = prevFinding.get(`${f.kind} ${f.access} ${f.principal}`);
      const d = judged.accesses.get(f.access);
      // A revoke is spent once the access is requested anew (its spec changed): the new request is pending.
      const spent = before && REVOKED.has(before.decision) && before.generation !== f.generation;
      if (d && spent)
        ignored.push({ decision: `${d.decision} ${f.access}`, why: `spent: it revoked generation ${before.generation}; the access was requested anew` });
      if (d && !spent) {
        if (f.kind === 'MaskedView' && d.decision === 'revoke') {
          ignored.push({
            decision: `revoke ${f.access} (${f.principal})`,
            why: `a MaskedView's readers are its spec: remove ${f.principal} from spec.readers of ${f.access}`,
          });
        } else Object.assign(f, { decision: d.decision, by: d.by, ...(d.reason ? { reason: d.reason } : {}) });
      } else if (before && before.generation === f.generation && before.decision !== 'pending') {
        Object.assign(f, { decision: before.decision, ...(before.by ? { by: before.by } : {}), ...(before.reason ? { reason: before.reason } : {}) });
      }
      // At due, nobody's decision is onMissingDecision's (MaskedView readers are kept: their spec decides).
      if (f.decision === 'pending' && due) {
        const revoke = ar.spec.onMissingDecision !== 'keep' && f.kind === 'DatasetAccess';
        Object.assign(f, { decision: revoke ? 'revoked-by-default' : 'kept-by-default', by: 'onMissingDecision' });
      }
      if (f.decision !== 'pending' && f.decision !== before?.decision)
        decided.push({
          action: f.decision.endsWith('by-default') ? 'review.missing_decision' : 'review.decide',
          resource: `${f.kind}:${f.access}/${f.principal}`,
          details: {
            cycle: cycle.id,
            decision: f.decision,
            by: f.by,
            reason: (f as { reason?: string }).reason,
            appliedBy: judged.accesses.get(f.access)?.appliedBy,
          },
        });
    }
    const oob: OutOfBandFinding[] = [...revokedBefore];
    for (const g of found) {
      const entry: OutOfBandFinding = { ...g.entry, decision: 'reported' };
      const d = judged.findings.get(entry.id);
      if (d?.decision === 'revoke') {
        await g.revoke(trail(ctx.requestId), sinks, { cycle: cycle.id, finding: entry.id, by: d.by, reason: d.reason, appliedBy: d.appliedBy });
        Object.assign(entry, { decision: 'revoked', by: d.by });
        events.push({
          type: 'Normal',
          reason: 'OutOfBandRevoked',
          note: `revoked ${entry.kind} grant ${entry.id} (${entry.grantee} on ${entry.object}), decided by ${d.by}`,
          action: 'Remediate',
        });
      } else if (d) Object.assign(entry, { decision: 'keep', by: d.by });
      oob.push(entry);
    }
    for (const r of decided) await trail(ctx.requestId).record({ ...r, outcome: 'success' }, ...sinks);
    for (const r of decided.filter((x) => x.action === 'review.missing_decision'))
      events.push({
        type: 'Normal',
        reason: 'MissingDecision',
        note: `${r.resource}: nobody decided by ${cycle.dueAt}; ${r.details.decision}`,
        action: 'Review',
      });

    // 4. Summary, reminder, completion.
    const summary = {
      pending: accessFindings.filter((f) => f.decision === 'pending').length,
      kept: accessFindings.filter((f) => KEPT.has(f.decision)).length,
      revoked: accessFindings.filter((f) => REVOKED.has(f.decision)).length,
      outOfBand: oob.filter((o) => o.decision !== 'revoked').length,
    };
    cycle = { ...cycle, inputs };
    if (!due && !cycle.remindedAt && summary.pending > 0 && now.getTime() >= remindAt) {
      cycle = { ...cycle, remindedAt: now.toISOString() };
      events.push({
        type: 'Normal',
        reason: 'ReviewDueSoon',
        note: `cycle ${cycle.id} is due at ${cycle.dueAt} with ${summary.pending} grant(s) undecided; ${ar.spec.reviewers.join(', ')}: decide, or onMissingDecision (${ar.spec.onMissingDecision ?? 'revoke'}) applies`,
        action: 'Review',
      });
    }
    const empty = accessFindings.length === 0 && oob.length === 0;
    let newHistory = history;
    if (due || empty) {
      cycle = { ...cycle, completedAt: now.toISOString() };
      newHistory = [
        {
          id: cycle.id,
          startedAt: cycle.startedAt,
          completedAt: cycle.completedAt,
          kept: summary.kept,
          revoked: summary.revoked,
          outOfBand: summary.outOfBand,
        },
        ...history.filter((h) => h.id !== cycle!.id),
      ].slice(0, HISTORY);
      events.push({
        type: 'Normal',
        reason: 'ReviewCompleted',
        note: `cycle ${cycle.id} completed: ${summary.kept} kept, ${summary.revoked} revoked, ${summary.outOfBand} out-of-band grant(s) reported`,
        action: 'Review',
      });
      await trail(ctx.requestId).record(
        { action: 'review.cycle.complete', resource: `${reviewed}/review:${key}`, outcome: 'success', details: { cycle: cycle.id, ...summary } },
        ...sinks,
      );
    }
    const nextAfter = nextCycleAt(ar.spec.schedule, new Date(cycle.startedAt), created);
    const wake = cycle.completedAt
      ? nextAfter.getTime()
      : Math.min(dueAt, ...(cycle.remindedAt || summary.pending === 0 ? [] : [remindAt > now.getTime() ? remindAt : dueAt]));
    return {
      state: 'Ready',
      reason: cycle.completedAt ? 'Completed' : 'InReview',
      message: cycle.completedAt
        ? `cycle ${cycle.id} completed: ${summary.kept} kept, ${summary.revoked} revoked, ${summary.outOfBand} out-of-band; the next starts at ${nextAfter.toISOString()}`
        : `cycle ${cycle.id}: ${summary.pending} of ${accessFindings.length} grant(s) undecided, ${summary.outOfBand} out-of-band; due at ${cycle.dueAt}`,
      status: {
        ...fields,
        cycle,
        nextCycleAt: nextAfter.toISOString(),
        findings: accessFindings,
        outOfBand: oob,
        ignoredDecisions: ignored.length ? ignored : null,
        summary,
        history: newHistory,
      },
      events,
      requeueAfterMs: Math.max(1, wake - Date.now()),
    };
  };
}

// Every DatasetAccess reconcile asks every review: each review's revokes are indexed once per
// version of it (the informer replaces the object on every change, so the index goes with it).
const indexes = new WeakMap<AccessReview, Map<string, Finding>>();
function revokedIndex(ar: AccessReview): Map<string, Finding> {
  let index = indexes.get(ar);
  if (!index) {
    index = new Map((ar.status?.findings ?? []).filter((f) => f.kind === 'DatasetAccess' && REVOKED.has(f.decision)).map((f) => [f.access, f]));
    indexes.set(ar, index);
  }
  return index;
}

/**
 * The revocation an AccessReview holds for this DatasetAccess's current spec: a review allowed on its
 * Warehouse, whose scope covers it, whose current cycle says revoke for this generation.
 */
export function reviewRevocation(
  reviews: () => AccessReview[],
  warehouse: (name: string) => Warehouse | undefined,
  objectStore: (name: string) => ObjectStore | undefined,
  namespaceLabels: (name: string) => Record<string, string> | undefined,
) {
  /** Whether this review, allowed where it looks, covers this access. */
  const covers = (ar: AccessReview, dsa: DatasetAccess): boolean => {
    const labels = namespaceLabels(ar.metadata.namespace!) ?? {};
    const scope = inScope(ar);
    if (!scope.namespace(dsa.metadata.namespace!)) return false;
    const pg = dsa.spec.warehouse;
    if (pg) {
      const wh = ar.spec.warehouse === pg.name ? warehouse(pg.name) : undefined;
      return wh !== undefined && reviewAllowed(wh, ar.metadata.namespace!, labels) && scope.schema(pg.schema);
    }
    const store = ar.spec.scope.objectStore ? objectStore(ar.spec.scope.objectStore) : undefined;
    return (
      store !== undefined &&
      store.spec.s3.bucket === dsa.spec.s3?.bucket &&
      reviewAllowed(store, ar.metadata.namespace!, labels) &&
      scope.prefix(dsa.spec.s3.prefix)
    );
  };
  return (dsa: DatasetAccess): ReviewRevocation | undefined => {
    const access = keyOf(dsa);
    for (const ar of reviews()) {
      if (!ar.status?.cycle) continue;
      const f = revokedIndex(ar).get(access);
      if (!f || f.generation !== dsa.metadata.generation || !covers(ar, dsa)) continue;
      return {
        review: keyOf(ar),
        cycle: ar.status.cycle.id,
        by: f.by ?? 'onMissingDecision',
        ...(f.reason ? { reason: f.reason } : {}),
        generation: dsa.metadata.generation ?? 1,
      };
    }
    return undefined;
  };
}

/** The DatasetAccesses an AccessReview's status revokes: reconciled when it changes. */
export function accessesRevokedBy(ar: KubeObject): string[] {
  return [...revokedIndex(ar as AccessReview).keys()];
}

/** AccessReviews of a Warehouse: reconciled again when its policy changes. */
export function reviewsOfWarehouse(reviews: () => AccessReview[]) {
  return (wh: KubeObject): string[] =>
    reviews()
      .filter((r) => r.spec.warehouse === wh.metadata.name)
      .map(keyOf);
}

/** AccessReviews of an ObjectStore: reconciled again when its policy changes. */
export function reviewsOfStore(reviews: () => AccessReview[]) {
  return (store: KubeObject): string[] =>
    reviews()
      .filter((r) => r.spec.scope.objectStore === store.metadata.name)
      .map(keyOf);
}
