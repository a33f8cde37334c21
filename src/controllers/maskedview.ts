// MaskedView reconciler: parse and render the view, verify that no reader can read its sources
// directly (fail closed: readers get nothing otherwise), replace the view in one transaction, and
// publish its column-level lineage (status, a ConfigMap, an OpenLineage event).
import { createHash, randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { maskedViewKind, type MaskedView } from '../api/maskedview.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from '../runtime/kube.ts';
import { StaleObservation, stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { findCondition } from '../runtime/conditions.ts';
import type { AuditScope, AuditTrail } from '../audit/sink.ts';
import { viewPolicyDenial } from '../governance/policy.ts';
import { refusedRole } from '../governance/reserved.ts';
import { LockOrderError, ownerRoleName, readerRoleName } from '../governance/grants.ts';
import { ExpressionError, MaskBypassError, loadParser } from '../drivers/postgres/expression.ts';
import { planView, refuseRowMultiplyingJoins, type ViewPlan } from '../drivers/postgres/view-sql.ts';
import { hashKeyQuery } from '../drivers/postgres/view-catalog.ts';
import { judgeView, recordedHashes, type ViewTarget } from '../drivers/postgres/view-driver.ts';
import { InsufficientPrivilege } from '../drivers/postgres/checked.ts';
import type { WarehouseDrivers } from '../drivers/postgres/connector.ts';
import { connectWarehouse, readAheadByWarehouse, type WarehouseDeps } from './warehouse-preamble.ts';
import { requestedBy } from '../api/meta.ts';

export const MASKED_VIEW_TYPE: ResourceType = resourceType(maskedViewKind);
export const MASKED_VIEW_FINALIZER = 'steward.dev/drop-view';
const CONFIGMAP_TYPE: ResourceType = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };

export interface OpenLineageTarget {
  url?: string;
  file?: string;
}

export interface MaskedViewDeps extends WarehouseDeps {
  client: KubeClient;
  audit: AuditTrail;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  openLineage?: OpenLineageTarget;
}

export { ownerRoleName, readerRoleName };

const ownerComment = (mv: MaskedView) => `managed by steward: owner of MaskedView ${mv.metadata.namespace}/${mv.metadata.name}`;
const readerComment = (mv: MaskedView) => `managed by steward: readers of MaskedView ${mv.metadata.namespace}/${mv.metadata.name}`;

/** The view and its roles in the Warehouse, as the driver sees them. `sources` defaults to what the spec names. */
export function viewTarget(mv: MaskedView, sources?: string[]): ViewTarget {
  const { spec } = mv;
  const namespace = mv.metadata.namespace!;
  return {
    schema: spec.view.schema,
    name: spec.view.name,
    commentPrefix: `managed by steward: MaskedView ${namespace}/${mv.metadata.name} `,
    owner: ownerRoleName(namespace, mv.metadata.name),
    ownerComment: ownerComment(mv),
    readerRole: readerRoleName(namespace, mv.metadata.name),
    readerComment: readerComment(mv),
    // As planView lists them (deduplicated), so a read ahead from this target serves the reconcile's.
    sources: sources ?? [...new Set([spec.from.table, ...(spec.joins ?? []).map((j) => j.table)])],
    readers: spec.readers,
    unmaskedRoles: spec.unmaskedRoles ?? [],
    formerReaders: [...new Set([...spec.readers, ...(mv.status?.readers ?? '').split(',').filter(Boolean)])],
    keyedTables: spec.kAnonymity ? (spec.joins ?? []).map((j) => j.table) : [],
  };
}

/**
 * Whether the lineage in status is not the plan's. Not by JSON text: the API server hands objects
 * back with their keys sorted, so the text differed at every resync and each one re-sent the
 * OpenLineage event and read the ConfigMap. Compared as the JSON it is stored as (no undefined).
 */
export function lineageDiffers(inStatus: unknown, planned: ViewPlan['lineage']): boolean {
  return !isDeepStrictEqual(inStatus, JSON.parse(JSON.stringify(planned)));
}

/** The guide's lineage format, with inputs and masked added per column. */
export function lineageDocument(mv: MaskedView, plan: ViewPlan, now: Date) {
  return { dataset: plan.lineage.dataset, columns: plan.lineage.columns, owner: mv.spec.owner, last_updated: now.toISOString().slice(0, 10) };
}

/** An OpenLineage RunEvent with the columnLineage facet; masking is flagged per field. */
export function openLineageEvent(mv: MaskedView, wh: Warehouse, plan: ViewPlan, now: Date) {
  const ns = `postgres://${wh.spec.postgres.host}:${wh.spec.postgres.port ?? 5432}`;
  const db = wh.spec.postgres.database;
  const producer = 'https://github.com/steward-dev/steward';
  return {
    eventType: 'COMPLETE',
    eventTime: now.toISOString(),
    producer,
    schemaURL: 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent',
    run: { runId: randomUUID() },
    job: { namespace: 'steward', name: `${mv.metadata.namespace}/${mv.metadata.name}` },
    inputs: plan.sourceTables.map((t) => ({ namespace: ns, name: `${db}.${t}` })),
    outputs: [
      {
        namespace: ns,
        name: `${db}.${plan.lineage.dataset}`,
        facets: {
          columnLineage: {
            _producer: producer,
            _schemaURL: 'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json',
            fields: Object.fromEntries(
              plan.lineage.columns.map((c) => [
                c.name,
                {
                  inputFields: c.inputs.map((i) => {
                    const [schema, table, field] = i.split('.');
                    return {
                      namespace: ns,
                      name: `${db}.${schema}.${table}`,
                      field,
                      transformations: [{ type: c.masked ? 'INDIRECT' : 'DIRECT', subtype: c.masked ? 'MASKING' : 'TRANSFORMATION', masking: c.masked }],
                    };
                  }),
                  transformationDescription: c.source,
                  transformationType: c.masked ? 'MASKED' : 'IDENTITY',
                },
              ]),
            ),
          },
        },
      },
    ],
  };
}

async function sendOpenLineage(target: OpenLineageTarget | undefined, event: unknown): Promise<void> {
  if (!target) return;
  if (target.file) await appendFile(target.file, `${JSON.stringify(event)}\n`);
  if (target.url) {
    const res = await fetch(target.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(event) });
    if (!res.ok) throw new Error(`OpenLineage endpoint answered ${res.status}`);
  }
}

/** The batched resync's read ahead: every view of a Warehouse observed in one read-only transaction (Driver.prime). */
export function readAheadViews(deps: WarehouseDeps) {
  return (views: MaskedView[]): Promise<void> =>
    readAheadByWarehouse(
      deps,
      views.filter((v) => !v.metadata.deletionTimestamp),
      (v) => v.spec.warehouse,
      (drivers, _wh, list) => drivers.views.prime?.(list.map((v) => viewTarget(v))) ?? Promise.resolve(),
    );
}

export function maskedViewReconciler(deps: MaskedViewDeps) {
  return async function reconcileMaskedView(mv: MaskedView, ctx: ReconcileContext): Promise<Outcome> {
    const spec = mv.spec;
    const namespace = mv.metadata.namespace!;
    const viewName = `${spec.view.schema}.${spec.view.name}`;
    const shown = { view: viewName, readers: spec.readers.join(',') };
    const connected = await connectWarehouse(deps, spec.warehouse, 'the view was not changed');
    if ('outcome' in connected) return { ...connected.outcome, status: shown };
    const { wh, drivers } = connected;
    await loadParser();
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'MaskedView', namespace, name: mv.metadata.name, actor: requestedBy(mv) });
    const resource = `${wh.metadata.name}/${viewName}`;
    const withdraw = (reason: string, why: string) => withdrawView(drivers, trail, mv, resource, reason, why, viewTarget(mv));

    // 1. What no database needs to be asked about: the policy (Steward's own schema and PostgreSQL's
    // are never grantable, whatever it says), and expressions that would undo the view's masks.
    const labels = deps.namespaceLabels(namespace) ?? {};
    const sourceSchemas = [spec.from.table, ...(spec.joins ?? []).map((j) => j.table)].map((t) => t.split('.')[0]!);
    const roles = [...spec.readers, ...(spec.unmaskedRoles ?? [])];
    const denial = viewPolicyDenial(wh.spec.accessPolicy, { namespace: { name: namespace, labels }, viewSchema: spec.view.schema, sourceSchemas, roles });
    if (denial) return withdraw('PolicyDenied', `${denial}. Ask the Warehouse owner to extend spec.accessPolicy, or change the view`);
    let sources: string[];
    try {
      // Validate expressions before touching anything (the hash key expression is fixed SQL).
      sources = planView(spec, { hmacFunction: '"public"."hmac"', keyQuery: 'SELECT NULL::bytea AS key' }).sourceTables;
    } catch (e) {
      if (e instanceof MaskBypassError) return withdraw('MaskBypass', e.message);
      if (!(e instanceof ExpressionError)) throw e;
      await trail.record({ action: 'view.validate', resource, outcome: 'denied', error: e.message }, drivers.auditTable).catch(() => undefined);
      return {
        state: 'Stalled',
        reason: 'InvalidExpression',
        message: `${e.message}; the view was not changed`,
        status: shown,
        events: [{ type: 'Warning', reason: 'InvalidExpression', note: e.message, action: 'Validate' }],
      };
    }

    try {
      // 2. Observe once: sources, the roles the spec names, the schema, the view as found, who can read the sources.
      const target = viewTarget(mv, sources);
      const observed = await drivers.views.observe(target);

      // 3. Decide, from the observation alone.
      if (observed.missingSources.length) {
        const message = `source table ${observed.missingSources.join(', ')} does not exist; retrying`;
        return { state: 'Progressing', reason: 'SourceNotFound', message, status: shown };
      }
      // Steward never creates the roles a view names: a missing one is for its owner to create.
      const named = [
        ...spec.readers.map((role) => ({ role, field: 'readers' })),
        ...(spec.unmaskedRoles ?? []).map((role) => ({ role, field: 'unmaskedRoles' })),
      ];
      const absent = named.filter((n) => !observed.roles[n.role]);
      if (absent.length) {
        const list = absent.map((n) => `${n.role} (${n.field})`).join(', ');
        const what = absent.length === 1 ? `role ${list} does not exist` : `roles ${list} do not exist`;
        const why = `${what} in Warehouse ${spec.warehouse}; Steward never creates the roles a view names. Once they exist, the next resync builds the view; the view was not changed`;
        return stalled('RoleNotFound', why, 'Validate', shown);
      }
      const refused = named.map((n) => ({ ...n, why: refusedRole(observed.roles[n.role]!) })).find((n) => n.why);
      if (refused) return withdraw('PolicyDenied', `${refused.field}: ${refused.why}: it is never grantable, whatever the accessPolicy says`);
      if (spec.kAnonymity) {
        try {
          refuseRowMultiplyingJoins(spec, new Map(Object.entries(observed.uniqueKeys)));
        } catch (e) {
          if (e instanceof MaskBypassError) return withdraw('MaskBypass', e.message);
          throw e;
        }
      }
      if (observed.schemaProblems.length) {
        const why = `${observed.schemaProblems.join('; ')}. Revoke that, or place the view in a schema only Steward's login may create in`;
        return withdraw('ViewSchemaUnsafe', why);
      }
      const found = judgeView(observed.view, target);
      if (found.kind === 'foreign' || (found.kind === 'tampered' && observed.view.relkind !== 'v')) {
        return {
          state: 'Stalled',
          reason: 'ViewConflict',
          message: `${viewName} exists and is not this MaskedView's${found.kind === 'tampered' ? ` (${found.problems.join('; ')})` : ''}; rename or drop it`,
          status: { ...shown, readers: '' },
        };
      }

      // 4. Plan (pure): the SQL this spec makes now. Membership is checked by OID: a role dropped and
      // re-created under its name is a new role, and the view is rebuilt for it (the OIDs are part of
      // the SQL, so of its hash). Built again unless the view is Steward's, as this spec makes it, and
      // its definition was recorded.
      const hmacFunction = observed.hmacFunction ?? '"public"."hmac"';
      const unmaskedRoleOids = (spec.unmaskedRoles ?? []).map((r) => observed.roles[r]!.oid);
      const plan = planView(spec, { hmacFunction, keyQuery: hashKeyQuery(viewName), unmaskedRoleOids });
      const sha = createHash('sha256').update(plan.select).digest('hex').slice(0, 16);
      const recorded = recordedHashes(observed.view.comment);
      const build = found.kind !== 'ours' || recorded.sha !== sha || !recorded.def;
      const exposed = observed.exposure;
      // Audited when it is found, not on every resync while it lasts.
      const alreadyExposed = findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'False';
      const notes = [
        ...(found.kind === 'tampered'
          ? [{ action: 'view.tampered', resource, outcome: 'denied' as const, details: { found: found.problems, rebuilt: true } }]
          : []),
        ...(exposed.length && !alreadyExposed ? [{ action: 'view.sources_exposed', resource, outcome: 'denied' as const, details: { exposed } }] : []),
      ];

      // 5. Apply: build (when needed) and set the readers (none while the sources are exposed: fail closed).
      const applied = await drivers.views.apply(
        target,
        observed,
        {
          sha,
          build: build ? { select: plan.select, usesHash: plan.usesHash, hmacFunction, keepGrants: found.kind === 'ours' } : undefined,
          readers: exposed.length ? [] : spec.readers,
          maskedColumns: plan.maskedColumns,
          driftKnown: findCondition(mv.status?.conditions, 'Ready')?.reason === 'ReaderRoleDrift',
        },
        trail,
        notes,
      );
      return await servedOutcome(deps, mv, wh, plan, ctx, {
        exposed,
        built: applied.built,
        heldElsewhere: applied.heldElsewhere,
        readerRole: target.readerRole,
      });
    } catch (e) {
      // The reader role changed between the look that chose the locks and the change: look again.
      if (e instanceof LockOrderError) throw new StaleObservation(`${e.message}; retrying`);
      if (e instanceof StaleObservation) throw e;
      const message = drivers.scrub(e instanceof Error ? e.message : String(e));
      await trail.record({ action: 'view.replace', resource, outcome: 'failure', error: message }, drivers.auditTable).catch(() => undefined);
      const code = (e as { code?: string }).code;
      // Privilege errors arrive as InsufficientPrivilege (every statement that needs one is checked);
      // any other class-42 error is PostgreSQL's verdict on the SQL.
      if (code?.startsWith('42') && code !== '42501' && !(e instanceof InsufficientPrivilege)) {
        // A column that does not exist, types that do not match: the spec must change, so say so instead of retrying with backoff.
        const why = `PostgreSQL refused the view: ${message}; the view was not changed`;
        return stalled('InvalidExpression', why, 'Build', shown);
      }
      if (e instanceof InsufficientPrivilege) {
        // Rolled back: the view and its readers are as they were. Resyncs retry once the login is granted more.
        const advice = `${message}. Nothing was changed. Grant the login what docs/warehouse.md lists`;
        return stalled('InsufficientPrivilege', advice, 'Build', shown);
      }
      throw e;
    }
  };
}

/**
 * Fail closed: a view that may not serve is taken away from everyone (dropped, with its roles;
 * grants others made on it go with it), audited when that changed something or the reason is new.
 * It is built again once the cause is gone.
 */
async function withdrawView(
  drivers: WarehouseDrivers,
  trail: AuditScope,
  mv: MaskedView,
  resource: string,
  reason: string,
  why: string,
  target: ViewTarget,
): Promise<Outcome> {
  const again = findCondition(mv.status?.conditions, 'Ready')?.reason === reason;
  const { dropped } = await drivers.views.remove(
    target,
    trail,
    [{ action: 'view.withdraw', resource, outcome: 'denied', details: { reason }, error: why }],
    again,
  );
  return {
    state: 'Stalled',
    reason,
    message: `${why}; ${dropped.length ? 'the view was withdrawn' : 'no view is built'}: it serves no one until this is fixed`,
    status: { view: `${mv.spec.view.schema}.${mv.spec.view.name}`, readers: '' },
    conditions: [{ type: 'SourcesLocked', status: 'Unknown', reason: 'NotServing', message: 'the view is not served, so its sources were not checked' }],
    events: again && !dropped.length ? [] : [{ type: 'Warning', reason, note: why, action: 'Withdraw' }],
  };
}

/** The view is built: publish its lineage (when it changed) and say whether it serves its readers. */
async function servedOutcome(
  deps: MaskedViewDeps,
  mv: MaskedView,
  wh: Warehouse,
  plan: ViewPlan,
  ctx: ReconcileContext,
  r: { exposed: { role: string; table: string }[]; built: boolean; heldElsewhere: string[]; readerRole: string },
): Promise<Outcome> {
  const spec = mv.spec;
  const viewName = `${spec.view.schema}.${spec.view.name}`;
  const shown = { view: viewName, readers: spec.readers.join(',') };
  // Lineage: status, ConfigMap, OpenLineage. Only when something changed: an idle resync makes no API call.
  const lineageChanged = lineageDiffers(mv.status?.lineage, plan.lineage);
  if (lineageChanged || mv.status?.observedGeneration !== mv.metadata.generation) {
    await writeLineageConfigMap(deps.client, mv, lineageDocument(mv, plan, ctx.now));
  }
  if (lineageChanged) {
    await sendOpenLineage(deps.openLineage, openLineageEvent(mv, wh, plan, ctx.now)).catch((e: unknown) =>
      ctx.logger.warn({ err: String(e) }, 'could not send the OpenLineage event'),
    );
  }
  const status = { ...shown, maskedColumns: plan.maskedColumns, lineage: plan.lineage };
  if (r.exposed.length) {
    const list = r.exposed.map((x) => `${x.role} can read ${x.table}`).join('; ');
    return {
      state: 'Stalled',
      reason: 'SourcesExposed',
      message: `${list} directly, bypassing the mask; readers were removed from the view until that is revoked (or, if that role may see raw data, list it in unmaskedRoles)`,
      status: { ...status, readers: '' },
      conditions: [{ type: 'SourcesLocked', status: 'False', reason: 'SourcesExposed', message: list }],
      events: [{ type: 'Warning', reason: 'SourcesExposed', note: list, action: 'Verify' }],
    };
  }
  const locked = {
    type: 'SourcesLocked',
    status: 'True',
    reason: 'SourcesLocked',
    message: `no reader and no role outside unmaskedRoles can read ${plan.sourceTables.join(', ')} directly`,
  } as const;
  if (r.heldElsewhere.length) {
    const held = `the view's reader role ${r.readerRole} was granted out of band what Steward's login may not revoke (${r.heldElsewhere.join('; ')})`;
    return {
      state: 'Stalled',
      reason: 'ReaderRoleDrift',
      message: `${held}; its members would read that through it, so the readers were removed until it is revoked`,
      status: { ...status, readers: '' },
      conditions: [locked],
      events: [{ type: 'Warning', reason: 'ReaderRoleDrift', note: held, action: 'Verify' }],
    };
  }
  // A Normal event when the view is built, and when readers get it back after SourcesExposed or ReaderRoleDrift.
  const wasServing =
    findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'True' && findCondition(mv.status?.conditions, 'Ready')?.reason !== 'ReaderRoleDrift';
  return {
    state: 'Ready',
    reason: 'ViewReady',
    message: `${viewName} serves ${plan.maskedColumns} masked column(s) to ${spec.readers.join(', ')}`,
    status,
    conditions: [locked],
    events:
      r.built || !wasServing
        ? [{ type: 'Normal', reason: 'ViewReady', note: `${viewName} built with ${plan.maskedColumns} masked column(s)`, action: 'Build' }]
        : [],
  };
}

async function writeLineageConfigMap(client: KubeClient, mv: MaskedView, doc: ReturnType<typeof lineageDocument>): Promise<void> {
  const name = `${mv.metadata.name}-lineage`;
  const namespace = mv.metadata.namespace!;
  const data = { 'lineage.json': `${JSON.stringify(doc, null, 2)}\n` };
  try {
    const cm = await client.get<KubeObject & { data?: Record<string, string> }>(CONFIGMAP_TYPE, name, namespace);
    const same = (a?: string) => a && JSON.stringify({ ...JSON.parse(a), last_updated: '' }) === JSON.stringify({ ...doc, last_updated: '' });
    if (same(cm.data?.['lineage.json'])) return;
    await client.patch(CONFIGMAP_TYPE, name, namespace, { data }, 'merge');
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await client.create(
      CONFIGMAP_TYPE,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'steward' },
          // Deleted with its MaskedView (where a garbage collector runs).
          ownerReferences: [{ apiVersion: 'steward.dev/v1alpha1', kind: 'MaskedView', name: mv.metadata.name, uid: mv.metadata.uid, controller: true }],
        } as KubeObject['metadata'],
        data,
      } as KubeObject,
      namespace,
    );
  }
}

export function maskedViewCleanup(deps: MaskedViewDeps) {
  return async function cleanupMaskedView(mv: MaskedView, ctx: ReconcileContext): Promise<Outcome> {
    const spec = mv.spec;
    const connected = await connectWarehouse(deps, spec.warehouse, 'the view stays until it does', { mustBeReady: false });
    if ('outcome' in connected) return { ...connected.outcome, message: `cannot drop the view: ${connected.outcome.message}` };
    const { wh, drivers } = connected;
    try {
      const trail = deps.audit.scope({
        request_id: ctx.requestId,
        kind: 'MaskedView',
        namespace: mv.metadata.namespace,
        name: mv.metadata.name,
        actor: requestedBy(mv),
      });
      const resource = `${wh.metadata.name}/${spec.view.schema}.${spec.view.name}`;
      await drivers.views.remove(viewTarget(mv), trail, [{ action: 'view.drop', resource, outcome: 'success' }]);
      await deps.client.delete(CONFIGMAP_TYPE, `${mv.metadata.name}-lineage`, mv.metadata.namespace).catch(() => undefined);
    } catch (e) {
      const message = drivers.scrub(e instanceof Error ? e.message : String(e));
      return { state: 'Progressing', reason: 'DropFailed', message: `cannot drop the view yet: ${message}; retrying` };
    }
    return {
      state: 'Ready',
      reason: 'Dropped',
      message: 'view dropped',
      events: [{ type: 'Normal', reason: 'Dropped', note: `dropped ${spec.view.schema}.${spec.view.name}`, action: 'Drop' }],
    };
  };
}

export function viewsOfWarehouse(views: () => MaskedView[]) {
  return (wh: KubeObject): string[] =>
    views()
      .filter((v) => v.spec.warehouse === wh.metadata.name)
      .map((v) => `${v.metadata.namespace}/${v.metadata.name}`);
}

export function viewsInNamespace(views: () => MaskedView[]) {
  return (ns: KubeObject): string[] =>
    views()
      .filter((v) => v.metadata.namespace === ns.metadata.name)
      .map((v) => `${v.metadata.namespace}/${v.metadata.name}`);
}
