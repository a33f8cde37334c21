// AccessReview reconciler. A cycle starts on the schedule (or when asked), lists every grant in
// scope read live (each DatasetAccess granted there, each MaskedView reader, and the grants in the
// catalog no Steward object explains), applies the reviewers' decisions for that cycle, and at the
// due time applies onMissingDecision to every access nobody decided on. The revocation of a
// DatasetAccess is carried out by its own reconciler (status.findings says revoke; reviewRevocation
// reads it): one writer per object. An out-of-band grant is revoked here, and only on a decision.
import { accessReviewKind, REVIEW_REQUESTED_ANNOTATION, type AccessReview, type AccessReviewStatus } from '../api/accessreview.ts';
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { MaskedView } from '../api/maskedview.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import type { AuditTrail } from '../audit/sink.ts';
import { groupRoleName } from '../governance/grants.ts';
import { namespaceMatches } from '../governance/policy.ts';
import { cycleId, judgeDecisions, nextCycleAt, outOfBand, type Decision } from '../governance/review.ts';
import { findCondition } from '../runtime/conditions.ts';
import { stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { parseDuration } from '../runtime/duration.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import type { ReviewRevocation } from './datasetaccess.ts';
import { readerRoleName } from './maskedview.ts';
import { connectWarehouse, type WarehouseDeps } from './warehouse-preamble.ts';

export const ACCESS_REVIEW_TYPE: ResourceType = resourceType(accessReviewKind);

/** Past cycles kept in status. */
const HISTORY = 12;
/** The reminder goes out this long before the due time (or at a quarter of dueIn, if that is shorter). */
const REMIND_BEFORE_MS = 24 * 3600_000;

type Status = AccessReviewStatus;
type Finding = NonNullable<Status['findings']>[number];
type OutOfBandFinding = NonNullable<Status['outOfBand']>[number];
type Cycle = NonNullable<Status['cycle']>;

export interface AccessReviewDeps extends WarehouseDeps {
  audit: AuditTrail;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  accesses: () => DatasetAccess[];
  views: () => MaskedView[];
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace}/${o.metadata.name}`;
const REVOKED = new Set(['revoke', 'revoked-by-default']);
const KEPT = new Set(['keep', 'kept-by-default']);

/** Whether the Warehouse lets this namespace hold reviews of it (reviewPolicy; default deny). */
export function reviewAllowed(wh: Warehouse, namespace: string, labels: Record<string, string>): boolean {
  const selector = wh.spec.reviewPolicy?.namespaces;
  return selector !== undefined && namespaceMatches(selector, { name: namespace, labels });
}

function inScope(ar: AccessReview) {
  const { namespaces, schemas } = ar.spec.scope;
  return { namespace: (n: string) => !namespaces || namespaces.includes(n), schema: (s: string) => !schemas || schemas.includes(s) };
}

export function accessReviewReconciler(deps: AccessReviewDeps) {
  return async function reconcileAccessReview(ar: AccessReview, ctx: ReconcileContext): Promise<Outcome> {
    const namespace = ar.metadata.namespace!;
    const key = keyOf(ar);
    const connected = await connectWarehouse(deps, ar.spec.warehouse, 'nothing reviewed');
    if ('outcome' in connected) return connected.outcome;
    const { wh, drivers } = connected;
    if (!reviewAllowed(wh, namespace, deps.namespaceLabels(namespace) ?? {}))
      return stalled(
        'PolicyDenied',
        `Warehouse ${wh.metadata.name}'s reviewPolicy does not name namespace ${namespace}: a review here could revoke other teams' grants, so nothing is reviewed. Ask the Warehouse owner to add it to spec.reviewPolicy.namespaces.`,
        'Review',
      );
    const now = ctx.now;
    const status = ar.status ?? {};
    const trail = (requestId: string) => deps.audit.scope({ request_id: requestId, kind: 'AccessReview', namespace, name: ar.metadata.name });
    const events: NonNullable<Outcome['events']> = [];
    let cycle: Cycle | undefined = status.cycle;
    const requested = ar.metadata.annotations?.[REVIEW_REQUESTED_ANNOTATION];
    const asked = requested !== undefined && requested !== status.lastRequestedAt;
    const created = new Date(ar.metadata.creationTimestamp ?? now.toISOString());
    const next = nextCycleAt(ar.spec.schedule, cycle ? new Date(cycle.startedAt) : undefined, created);
    const fields: Record<string, unknown> = {};

    // 1. A cycle starts on the schedule, or when asked for.
    let previous = { findings: status.findings ?? [], outOfBand: status.outOfBand ?? [] };
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
      if (asked) fields.lastRequestedAt = requested;
      events.push({
        type: 'Normal',
        reason: 'ReviewStarted',
        note: `cycle ${id} started${asked ? ' (asked for)' : ''}; ${ar.spec.reviewers.join(', ')}: decide by ${cycle.dueAt} (decisions name cycle "${id}")`,
        action: 'Review',
      });
      await trail(ctx.requestId).record(
        { action: 'review.cycle.start', resource: `${wh.metadata.name}/review:${key}`, outcome: 'success', details: { cycle: id, dueAt: cycle.dueAt } },
        drivers.auditTable,
      );
    }
    const dueAt = Date.parse(cycle.dueAt);
    const due = now.getTime() >= dueAt;
    const scope = inScope(ar);

    // 2. Findings, read live: the accesses and view readers in scope, and the grants nobody explains.
    const onWarehouse = deps.accesses().filter((d) => d.spec.warehouse?.name === wh.metadata.name);
    const views = deps.views().filter((v) => v.spec.warehouse === wh.metadata.name);
    const prevFinding = new Map(previous.findings.map((f) => [`${f.kind} ${f.access} ${f.principal}`, f]));
    const accessFindings: Finding[] = [];
    for (const d of onWarehouse) {
      const t = d.spec.warehouse!;
      if (!scope.namespace(d.metadata.namespace!) || !scope.schema(t.schema)) continue;
      const ready = findCondition(d.status?.conditions, 'Ready');
      const revokedHere = d.status?.revokedByReview?.review === key && d.status.revokedByReview.cycle === cycle.id;
      if (!(ready?.status === 'True' && ready.reason === 'Granted') && !revokedHere) continue;
      accessFindings.push({
        kind: 'DatasetAccess',
        access: keyOf(d),
        principal: d.spec.principal.role!,
        dataset: `${t.name}/${t.schema}.${t.tables.join(',')}`,
        privileges: (t.privileges ?? ['SELECT']).join(','),
        ...(d.status?.grantedAt ? { grantedAt: d.status.grantedAt } : {}),
        ...(d.status?.expiresAt ? { expiresAt: d.status.expiresAt } : {}),
        ...(d.spec.justification ? { justification: d.spec.justification } : {}),
        decision: 'pending',
        generation: d.metadata.generation ?? 1,
      });
    }
    for (const v of views) {
      if (!scope.namespace(v.metadata.namespace!) || !scope.schema(v.spec.view.schema)) continue;
      if (findCondition(v.status?.conditions, 'Ready')?.status !== 'True') continue;
      for (const reader of v.spec.readers)
        accessFindings.push({
          kind: 'MaskedView',
          access: keyOf(v),
          principal: reader,
          dataset: `${wh.metadata.name}/${v.spec.view.schema}.${v.spec.view.name}`,
          privileges: 'SELECT',
          decision: 'pending',
          generation: v.metadata.generation ?? 1,
        });
    }
    const { grants, stewardLogin } = await drivers.reviews.grants(ar.spec.scope.schemas);
    const found = outOfBand(grants, {
      stewardLogin,
      accessPrincipals: new Map(onWarehouse.map((d) => [groupRoleName(d.metadata.namespace!, d.metadata.name), d.spec.principal.role!])),
      viewReaders: new Map(views.map((v) => [readerRoleName(v.metadata.namespace!, v.metadata.name), new Set(v.spec.readers)])),
    });
    // Revoked earlier in this cycle: gone from the catalog, still part of the cycle's record.
    const revokedBefore = previous.outOfBand.filter((o) => o.decision === 'revoked' && !found.some((f) => f.id === o.id));

    // 3. Decisions: for this cycle, by a reviewer, about what this cycle found.
    const judged = judgeDecisions((ar.spec.decisions ?? []) as Decision[], cycle.id, ar.spec.reviewers, {
      accesses: new Set(accessFindings.map((f) => f.access)),
      findings: new Set([...found.map((f) => f.id), ...revokedBefore.map((o) => o.id)]),
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
          details: { cycle: cycle.id, decision: f.decision, by: f.by, reason: (f as { reason?: string }).reason },
        });
    }
    const oob: OutOfBandFinding[] = [...revokedBefore];
    for (const g of found) {
      const d = judged.findings.get(g.id);
      const entry: OutOfBandFinding = {
        id: g.id,
        kind: g.kind,
        grantee: g.grantee,
        object: g.object,
        privileges: g.privileges.join(', '),
        decision: 'reported',
      };
      if (d?.decision === 'revoke') {
        await drivers.reviews.revoke(g, trail(ctx.requestId), { cycle: cycle.id, finding: g.id, by: d.by, reason: d.reason });
        Object.assign(entry, { decision: 'revoked', by: d.by });
        events.push({
          type: 'Normal',
          reason: 'OutOfBandRevoked',
          note: `revoked ${g.kind} grant ${g.id} (${g.grantee} on ${g.object}), decided by ${d.by}`,
          action: 'Remediate',
        });
      } else if (d) Object.assign(entry, { decision: 'keep', by: d.by });
      oob.push(entry);
    }
    for (const r of decided) await trail(ctx.requestId).record({ ...r, outcome: 'success' }, drivers.auditTable);
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
    const remindAt = dueAt - Math.min(REMIND_BEFORE_MS, parseDuration(ar.spec.dueIn) / 4);
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
        { action: 'review.cycle.complete', resource: `${wh.metadata.name}/review:${key}`, outcome: 'success', details: { cycle: cycle.id, ...summary } },
        drivers.auditTable,
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
  namespaceLabels: (name: string) => Record<string, string> | undefined,
) {
  return (dsa: DatasetAccess): ReviewRevocation | undefined => {
    const target = dsa.spec.warehouse;
    if (!target) return undefined;
    const access = keyOf(dsa);
    for (const ar of reviews()) {
      if (ar.spec.warehouse !== target.name || !ar.status?.cycle) continue;
      const wh = warehouse(ar.spec.warehouse);
      if (!wh || !reviewAllowed(wh, ar.metadata.namespace!, namespaceLabels(ar.metadata.namespace!) ?? {})) continue;
      const scope = inScope(ar);
      if (!scope.namespace(dsa.metadata.namespace!) || !scope.schema(target.schema)) continue;
      const f = revokedIndex(ar).get(access);
      if (f && f.generation === dsa.metadata.generation)
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
