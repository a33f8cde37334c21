// MaskedView reconciler: parse and render the view, verify that no reader can read its sources
// directly (fail closed: readers get nothing otherwise), replace the view in one transaction, and
// publish its column-level lineage (status, a ConfigMap, an OpenLineage event).
import { createHash, randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import type pg from 'pg';
import type { MaskedView } from '../api/maskedview.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { GROUP, VERSION } from '../api/schema.ts';
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from '../runtime/kube.ts';
import type { Outcome, ReconcileContext } from '../runtime/controller.ts';
import { findCondition, isTrue } from '../runtime/conditions.ts';
import type { AuditTrail } from '../audit/sink.ts';
import { ExpressionError, loadParser } from '../governance/expression.ts';
import { planView, type ViewPlan } from '../governance/maskedview.ts';
import { AuditTableSink } from '../drivers/postgres/audit-table.ts';
import {
  createViewStatements, dropManagedRole, ensureHashKey, ensureOwnerRole, findHmacFunction, hashKeyQuery, observeView, regrantStatements, roleOids, setReaders, sourceExposure, tablesMissing, viewGrants, type ReaderGrants,
} from '../drivers/postgres/maskedview.ts';
import { quoteQualified } from '../drivers/postgres/identifiers.ts';
import { lockObjects } from '../drivers/postgres/grants.ts';
import { inTransaction } from '../drivers/postgres/transaction.ts';
import { InsufficientPrivilege, runChecked } from '../drivers/postgres/checked.ts';
import { WarehouseConnections } from './warehouse-connections.ts';

export const MASKED_VIEW_TYPE: ResourceType = { group: GROUP, version: VERSION, plural: 'maskedviews', kind: 'MaskedView', namespaced: true };
export const MASKED_VIEW_FINALIZER = 'steward.dev/drop-view';
const CONFIGMAP_TYPE: ResourceType = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };

export interface OpenLineageTarget {
  url?: string;
  file?: string;
}

export interface MaskedViewDeps {
  client: KubeClient;
  connections: WarehouseConnections;
  audit: AuditTrail;
  warehouse: (name: string) => Warehouse | undefined;
  openLineage?: OpenLineageTarget;
}

/** A role name for a MaskedView, unique to it (the hash) and readable (its namespace and name). */
function viewRoleName(prefix: string, namespace: string, name: string): string {
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8);
  return `${prefix}${`${namespace}_${name}`.replace(/[^a-z0-9_]/g, '_').slice(0, 63 - prefix.length - 1 - 8)}_${hash}`;
}

/** The role that owns the view and alone reads its sources. */
export const ownerRoleName = (namespace: string, name: string): string => viewRoleName('stw_mv_', namespace, name);
/** The role that holds SELECT on the view (and USAGE on its schema); the readers are its members. */
export const readerRoleName = (namespace: string, name: string): string => viewRoleName('stw_mvr_', namespace, name);

const viewComment = (mv: MaskedView, sha: string) => `managed by steward: MaskedView ${mv.metadata.namespace}/${mv.metadata.name} sha=${sha}`;
const ownerComment = (mv: MaskedView) => `managed by steward: owner of MaskedView ${mv.metadata.namespace}/${mv.metadata.name}`;
const readerComment = (mv: MaskedView) => `managed by steward: readers of MaskedView ${mv.metadata.namespace}/${mv.metadata.name}`;

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
    outputs: [{
      namespace: ns,
      name: `${db}.${plan.lineage.dataset}`,
      facets: {
        columnLineage: {
          _producer: producer,
          _schemaURL: 'https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json',
          fields: Object.fromEntries(plan.lineage.columns.map((c) => [c.name, {
            inputFields: c.inputs.map((i) => {
              const [schema, table, field] = i.split('.');
              return { namespace: ns, name: `${db}.${schema}.${table}`, field, transformations: [{ type: c.masked ? 'INDIRECT' : 'DIRECT', subtype: c.masked ? 'MASKING' : 'TRANSFORMATION', masking: c.masked }] };
            }),
            transformationDescription: c.source,
            transformationType: c.masked ? 'MASKED' : 'IDENTITY',
          }])),
        },
      },
    }],
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

export function maskedViewReconciler(deps: MaskedViewDeps) {
  return async function reconcileMaskedView(mv: MaskedView, ctx: ReconcileContext): Promise<Outcome> {
    const spec = mv.spec;
    const namespace = mv.metadata.namespace!;
    const viewName = `${spec.view.schema}.${spec.view.name}`;
    const shown = { view: viewName, readers: spec.readers.join(',') };
    const wh = deps.warehouse(spec.warehouse);
    if (!wh) return { state: 'Progressing', reason: 'WarehouseNotFound', message: `Warehouse ${spec.warehouse} does not exist`, status: shown };
    if (!isTrue(wh.status?.conditions, 'Ready')) return { state: 'Progressing', reason: 'WarehouseNotReady', message: `waiting for Warehouse ${spec.warehouse}`, status: shown };
    await loadParser();
    const owner = ownerRoleName(namespace, mv.metadata.name);
    const { pool } = await deps.connections.pool(wh);
    const record = (db: pg.ClientBase | pg.Pool, action: string, outcome: 'success' | 'failure' | 'denied', details?: Record<string, unknown>, error?: string) =>
      deps.audit.record({ request_id: ctx.requestId, kind: 'MaskedView', namespace, name: mv.metadata.name, action, resource: `${wh.metadata.name}/${viewName}`, outcome, details, error }, new AuditTableSink(db));

    const client = await pool.connect();
    let plan: ViewPlan;
    let exposed: { role: string; table: string }[];
    let readerGrants: ReaderGrants;
    const readerRole = readerRoleName(namespace, mv.metadata.name);
    let changedView = false;
    try {
      await client.query('BEGIN');
      // Validate expressions before touching anything (the hash key expression is fixed SQL).
      try {
        plan = planView(spec, { hmacFunction: '"public"."hmac"', keyQuery: 'SELECT NULL::bytea AS key' });
      } catch (e) {
        if (!(e instanceof ExpressionError)) throw e;
        await client.query('ROLLBACK');
        await record(pool, 'view.validate', 'denied', undefined, e.message).catch(() => undefined);
        return { state: 'Stalled', reason: 'InvalidExpression', message: `${e.message}; the view was not changed`, status: shown, events: [{ type: 'Warning', reason: 'InvalidExpression', note: e.message, action: 'Validate' }] };
      }
      const missing = await tablesMissing(client, plan.sourceTables);
      if (missing.length) {
        await client.query('ROLLBACK');
        return { state: 'Progressing', reason: 'SourceNotFound', message: `source table ${missing.join(', ')} does not exist; retrying`, status: shown };
      }
      // Steward never creates the roles a view names: a missing one is for its owner to create.
      const named = [...spec.readers.map((role) => ({ role, field: 'readers' })), ...(spec.unmaskedRoles ?? []).map((role) => ({ role, field: 'unmaskedRoles' }))];
      const oids = await roleOids(client, named.map((n) => n.role));
      const absent = named.filter((n) => !oids.has(n.role));
      if (absent.length) {
        await client.query('ROLLBACK');
        const list = absent.map((n) => `${n.role} (${n.field})`).join(', ');
        const what = absent.length === 1 ? `role ${list} does not exist` : `roles ${list} do not exist`;
        const why = `${what} in Warehouse ${spec.warehouse}; Steward never creates the roles a view names. Once they exist, the next resync builds the view; the view was not changed`;
        return { state: 'Stalled', reason: 'RoleNotFound', message: why, status: shown, events: [{ type: 'Warning', reason: 'RoleNotFound', note: why, action: 'Validate' }] };
      }
      // Membership is checked by OID: a role dropped and re-created under its name is a new role,
      // and the view is rebuilt for it (the OIDs are part of the SQL, so of its hash).
      const unmaskedRoleOids = (spec.unmaskedRoles ?? []).map((r) => oids.get(r)!);
      // Plan with what is there, read-only: an idle resync changes nothing and takes no lock.
      const keyQuery = hashKeyQuery(viewName);
      let hmac = plan.usesHash ? await findHmacFunction(client) : undefined;
      plan = planView(spec, { hmacFunction: hmac ?? '"public"."hmac"', keyQuery, unmaskedRoleOids });
      let sha = createHash('sha256').update(plan.select).digest('hex').slice(0, 16);
      const facts = await observeView(client, spec.view.schema, spec.view.name);
      if (facts.exists && !facts.comment?.startsWith(`managed by steward: MaskedView ${namespace}/${mv.metadata.name} `)) {
        await client.query('ROLLBACK');
        return { state: 'Stalled', reason: 'ViewConflict', message: `${viewName} exists and is not this MaskedView's; rename or drop it`, status: shown };
      }
      if (!facts.exists || facts.comment !== viewComment(mv, sha)) {
        // The same locks, in the same order, as DatasetAccess: tables (the view is one too) first,
        // then schemas. GRANTs on one table or schema from two sessions would fail with "tuple
        // concurrently updated".
        await lockObjects(client, [viewName, ...plan.sourceTables].map((t) => `table:${t}`));
        await lockObjects(client, [...new Set([spec.view.schema, ...plan.sourceTables.map((t) => t.split('.')[0]!)])].map((x) => `schema:${x}`));
        await ensureOwnerRole(client, owner, ownerComment(mv));
        if (plan.usesHash) {
          hmac = await ensureHashKey(client, viewName, owner);
          plan = planView(spec, { hmacFunction: hmac, keyQuery, unmaskedRoleOids });
          sha = createHash('sha256').update(plan.select).digest('hex').slice(0, 16);
        }
        // Replace in one transaction: readers wait on the lock, then see the new masked view. Grants
        // others made on the view (a DatasetAccess) are carried over to the new one.
        const kept = facts.exists ? await viewGrants(client, spec.view.schema, spec.view.name) : [];
        for (const s of createViewStatements(spec.view.schema, spec.view.name, plan.select, viewComment(mv, sha), owner, plan.sourceTables, facts.exists)) await runChecked(client, s.sql, s.object);
        for (const s of regrantStatements(spec.view.schema, spec.view.name, kept, owner)) await runChecked(client, s, viewName);
        changedView = true;
      }
      // SourcesLocked: nobody outside unmaskedRoles may read a source directly. Otherwise fail closed.
      exposed = await sourceExposure(client, plan.sourceTables, spec.readers, spec.unmaskedRoles ?? [], owner);
      const formerReaders = [...new Set([...spec.readers, ...(mv.status?.readers ?? '').split(',').filter(Boolean)])];
      readerGrants = await setReaders(client, spec.view.schema, spec.view.name, readerRole, readerComment(mv), exposed.length ? [] : spec.readers, formerReaders);
      if (changedView || readerGrants.ran.length) await record(client, changedView ? 'view.replace' : 'view.grants', 'success', { sha, grants: readerGrants.ran, maskedColumns: plan.maskedColumns });
      // Audited when it is found, not on every resync while it lasts.
      const alreadyExposed = findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'False';
      if (exposed.length && !alreadyExposed) await record(client, 'view.sources_exposed', 'denied', { exposed });
      const alreadyDrifted = findCondition(mv.status?.conditions, 'Ready')?.reason === 'ReaderRoleDrift';
      if (readerGrants.heldElsewhere.length && !alreadyDrifted) await record(client, 'view.reader_role_drift', 'denied', { role: readerRole, held: readerGrants.heldElsewhere });
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      await record(pool, 'view.replace', 'failure', undefined, e instanceof Error ? e.message : String(e)).catch(() => undefined);
      const code = (e as { code?: string }).code;
      // Privilege errors arrive as InsufficientPrivilege (every statement that needs one runs through
      // runChecked); any other class-42 error is PostgreSQL's verdict on the SQL.
      if (code?.startsWith('42') && code !== '42501' && !(e instanceof InsufficientPrivilege)) {
        // PostgreSQL's own verdict on the SQL (a column that does not exist, types that do not
        // match): the spec must change, so say so instead of retrying with backoff.
        const why = `PostgreSQL refused the view: ${e instanceof Error ? e.message : String(e)}; the view was not changed`;
        return { state: 'Stalled', reason: 'InvalidExpression', message: why, status: shown, events: [{ type: 'Warning', reason: 'InvalidExpression', note: why, action: 'Build' }] };
      }
      if (e instanceof InsufficientPrivilege) {
        // Rolled back: the view and its readers are as they were. Resyncs retry once the login is granted more.
        const advice = `${e.message}. Nothing was changed. Grant the login what docs/warehouse.md lists`;
        return { state: 'Stalled', reason: 'InsufficientPrivilege', message: advice, status: shown, events: [{ type: 'Warning', reason: 'InsufficientPrivilege', note: advice, action: 'Build' }] };
      }
      throw e;
    } finally {
      client.release();
    }

    // Lineage: status, ConfigMap, OpenLineage (when it changed).
    // Only when something changed: an idle resync makes no API call.
    const lineageChanged = JSON.stringify(mv.status?.lineage) !== JSON.stringify(plan.lineage);
    if (lineageChanged || mv.status?.observedGeneration !== mv.metadata.generation) {
      await writeLineageConfigMap(deps.client, mv, lineageDocument(mv, plan, ctx.now));
    }
    if (lineageChanged) {
      await sendOpenLineage(deps.openLineage, openLineageEvent(mv, wh, plan, ctx.now)).catch((e: unknown) => ctx.logger.warn({ err: String(e) }, 'could not send the OpenLineage event'));
    }
    const status = { ...shown, maskedColumns: plan.maskedColumns, lineage: plan.lineage };
    if (exposed.length) {
      const list = exposed.map((x) => `${x.role} can read ${x.table}`).join('; ');
      return {
        state: 'Stalled',
        reason: 'SourcesExposed',
        message: `${list} directly, bypassing the mask; readers were removed from the view until that is revoked (or, if that role may see raw data, list it in unmaskedRoles)`,
        status: { ...status, readers: '' },
        conditions: [{ type: 'SourcesLocked', status: 'False', reason: 'SourcesExposed', message: list }],
        events: [{ type: 'Warning', reason: 'SourcesExposed', note: list, action: 'Verify' }],
      };
    }
    const locked = { type: 'SourcesLocked', status: 'True', reason: 'SourcesLocked', message: `no reader and no role outside unmaskedRoles can read ${plan.sourceTables.join(', ')} directly` } as const;
    if (readerGrants.heldElsewhere.length) {
      const held = `the view's reader role ${readerRole} was granted out of band what Steward's login may not revoke (${readerGrants.heldElsewhere.join('; ')})`;
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
    const wasServing = findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'True' && findCondition(mv.status?.conditions, 'Ready')?.reason !== 'ReaderRoleDrift';
    return {
      state: 'Ready',
      reason: 'ViewReady',
      message: `${viewName} serves ${plan.maskedColumns} masked column(s) to ${spec.readers.join(', ')}`,
      status,
      conditions: [locked],
      events: changedView || !wasServing ? [{ type: 'Normal', reason: 'ViewReady', note: `${viewName} built with ${plan.maskedColumns} masked column(s)`, action: 'Build' }] : [],
    };
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
    await client.create(CONFIGMAP_TYPE, {
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: {
        name, namespace, labels: { 'app.kubernetes.io/managed-by': 'steward' },
        // Deleted with its MaskedView (where a garbage collector runs).
        ownerReferences: [{ apiVersion: 'steward.dev/v1alpha1', kind: 'MaskedView', name: mv.metadata.name, uid: mv.metadata.uid, controller: true }],
      } as KubeObject['metadata'],
      data,
    } as KubeObject, namespace);
  }
}

export function maskedViewCleanup(deps: MaskedViewDeps) {
  return async function cleanupMaskedView(mv: MaskedView, ctx: ReconcileContext): Promise<Outcome> {
    const spec = mv.spec;
    const wh = deps.warehouse(spec.warehouse);
    if (!wh) return { state: 'Progressing', reason: 'WarehouseNotFound', message: `cannot drop the view: Warehouse ${spec.warehouse} does not exist` };
    const owner = ownerRoleName(mv.metadata.namespace!, mv.metadata.name);
    try {
      const { pool } = await deps.connections.pool(wh);
      await inTransaction(pool, async (client) => {
        const facts = await observeView(client, spec.view.schema, spec.view.name);
        if (facts.exists && facts.comment?.startsWith(`managed by steward: MaskedView ${mv.metadata.namespace}/${mv.metadata.name} `)) {
          await client.query(`DROP VIEW ${quoteQualified(spec.view.schema, spec.view.name)}`);
        }
        // Steward's roles for the view, if it made them (a role of that name it did not make is not its to drop).
        const roles = await client.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE (rolname, coalesce(shobj_description(oid, 'pg_authid'), '')) IN (($1, $2), ($3, $4))`,
          [owner, ownerComment(mv), readerRoleName(mv.metadata.namespace!, mv.metadata.name), readerComment(mv)]);
        for (const r of roles.rows) await dropManagedRole(client, r.rolname);
        await deps.audit.record({ request_id: ctx.requestId, kind: 'MaskedView', namespace: mv.metadata.namespace, name: mv.metadata.name, action: 'view.drop', resource: `${wh.metadata.name}/${spec.view.schema}.${spec.view.name}`, outcome: 'success' }, new AuditTableSink(client));
      });
      await deps.client.delete(CONFIGMAP_TYPE, `${mv.metadata.name}-lineage`, mv.metadata.namespace).catch(() => undefined);
    } catch (e) {
      return { state: 'Progressing', reason: 'DropFailed', message: `cannot drop the view yet: ${e instanceof Error ? e.message : String(e)}; retrying` };
    }
    return { state: 'Ready', reason: 'Dropped', message: 'view dropped', events: [{ type: 'Normal', reason: 'Dropped', note: `dropped ${spec.view.schema}.${spec.view.name}`, action: 'Drop' }] };
  };
}

export function viewsOfWarehouse(views: () => MaskedView[]) {
  return (wh: KubeObject): string[] => views().filter((v) => v.spec.warehouse === wh.metadata.name).map((v) => `${v.metadata.namespace}/${v.metadata.name}`);
}
