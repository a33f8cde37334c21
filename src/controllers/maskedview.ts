// MaskedView reconciler: parse and render the view, verify that no reader can read its sources
// directly (fail closed: readers get nothing otherwise), replace the view in one transaction, and
// publish its column-level lineage (status, a ConfigMap, an OpenLineage event).
import { createHash, randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import type pg from 'pg';
import { maskedViewKind, type MaskedView } from '../api/maskedview.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from '../runtime/kube.ts';
import { StaleObservation, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { findCondition } from '../runtime/conditions.ts';
import type { AuditTrail } from '../audit/sink.ts';
import { ExpressionError, MaskBypassError, loadParser } from '../governance/expression.ts';
import { planView, refuseRowMultiplyingJoins, type ViewPlan } from '../governance/maskedview.ts';
import { viewPolicyDenial } from '../governance/policy.ts';
import { refusedRole } from '../governance/reserved.ts';
import { describeRoles } from '../drivers/postgres/roles.ts';
import { AuditTableSink } from '../drivers/postgres/audit-table.ts';
import {
  commentViewStatement,
  createViewStatements,
  dropManagedRole,
  ensureHashKey,
  ensureOwnerRole,
  findHmacFunction,
  hashKeyQuery,
  observeView,
  readerRoleLocks,
  regrantStatements,
  setReaders,
  sourceExposure,
  tablesMissing,
  uniqueKeys,
  viewGrants,
  viewSchemaProblems,
  type ReaderGrants,
  type ViewFacts,
} from '../drivers/postgres/maskedview.ts';
import { quoteQualified } from '../governance/sql-text.ts';
import { ObjectLocks } from '../drivers/postgres/locks.ts';
import { LockOrderError, tableLock, type LockKey } from '../governance/grants.ts';
import { inTransaction } from '../drivers/postgres/transaction.ts';
import { InsufficientPrivilege, runChecked } from '../drivers/postgres/checked.ts';
import type { WarehouseConnections } from '../drivers/postgres/connector.ts';
import { connectWarehouse } from './warehouse-preamble.ts';

export const MASKED_VIEW_TYPE: ResourceType = resourceType(maskedViewKind);
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
  namespaceLabels: (name: string) => Record<string, string> | undefined;
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

const viewCommentPrefix = (mv: MaskedView) => `managed by steward: MaskedView ${mv.metadata.namespace}/${mv.metadata.name} `;
/** Whose the view is, the hash of the SQL it was built from, and that of the definition PostgreSQL stored. */
const viewComment = (mv: MaskedView, sha: string, definitionSha: string) => `${viewCommentPrefix(mv)}sha=${sha} def=${definitionSha}`;
/** The two hashes a view's comment records (views built before the definition was recorded have no def). */
const recordedHashes = (comment: string | null) => ({ sha: /\bsha=([0-9a-f]+)/.exec(comment ?? '')?.[1], def: /\bdef=([0-9a-f]+)/.exec(comment ?? '')?.[1] });
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

/** What Steward finds under the view's name: nothing, its own view as it built it, its view changed behind its back, or someone else's. */
type Found = { kind: 'absent' } | { kind: 'ours' } | { kind: 'tampered'; problems: string[] } | { kind: 'foreign' };

/**
 * Steward's view is the relation with its comment, owned by the view's owner role (only Steward's
 * login may hand it that role), a security_barrier view whose definition is the one Steward
 * recorded when it built it. A comment anyone who owns a view can copy; the rest they cannot fake.
 */
function judgeView(facts: ViewFacts, mv: MaskedView, owner: string): Found {
  if (!facts.exists) return { kind: 'absent' };
  if (!facts.comment?.startsWith(viewCommentPrefix(mv))) return { kind: 'foreign' };
  const recordedDefinition = recordedHashes(facts.comment).def;
  const problems = [
    ...(facts.relkind !== 'v' ? [`it is not a view (relkind ${facts.relkind})`] : []),
    ...(facts.owner !== owner ? [`it is owned by ${facts.owner}, not ${owner}`] : []),
    ...(facts.relkind === 'v' && !facts.securityBarrier ? ['security_barrier is off'] : []),
    // Views built before Steward recorded the definition have none to compare: they are rebuilt anyway (the comment differs).
    ...(recordedDefinition && facts.definitionSha !== recordedDefinition ? ['its definition is not the one Steward built'] : []),
  ];
  return problems.length ? { kind: 'tampered', problems } : { kind: 'ours' };
}

/** The view's and its sources' table locks, and their schemas'. */
function viewLocks(spec: MaskedView['spec'], sources: readonly string[]): LockKey[] {
  const tables = [`${spec.view.schema}.${spec.view.name}`, ...sources];
  return [...tables.map(tableLock), ...[spec.view.schema, ...sources.map((t) => t.split('.')[0]!)].map((schema) => ({ kind: 'schema', schema }) as const)];
}

/**
 * Drops the view (only when it is the one Steward built) and the view's owner and reader roles (only
 * when Steward made them): afterwards nothing Steward made for the view serves anyone. Returns what
 * it dropped. Used on deletion, and to withdraw a view that may not serve.
 */
async function dropViewAndRoles(client: pg.ClientBase, mv: MaskedView): Promise<string[]> {
  const { schema, name } = mv.spec.view;
  const owner = ownerRoleName(mv.metadata.namespace!, mv.metadata.name);
  // A view the owner role owns is Steward's to drop, even changed behind its back (else the owner
  // role could not be dropped after it); one someone else owns is not, whatever its comment says.
  const droppable = (facts: ViewFacts) => facts.relkind === 'v' && facts.owner === owner && judgeView(facts, mv, owner).kind !== 'foreign';
  const look = async () => ({
    view: droppable(await observeView(client, schema, name)),
    // Steward's roles for the view, if it made them (a role of that name it did not make is not its to drop).
    roles: (
      await client.query<{ rolname: string }>(
        `SELECT rolname FROM pg_roles WHERE (rolname, coalesce(shobj_description(oid, 'pg_authid'), '')) IN (($1, $2), ($3, $4))`,
        [owner, ownerComment(mv), readerRoleName(mv.metadata.namespace!, mv.metadata.name), readerComment(mv)],
      )
    ).rows.map((r) => r.rolname),
  });
  // Read first: a view already withdrawn costs a resync no lock.
  const before = await look();
  if (!before.view && before.roles.length === 0) return [];
  // The locks the build takes, in the same order: a REVOKE on a source beside a DatasetAccess's
  // GRANT on it would otherwise fail with "tuple concurrently updated".
  await new ObjectLocks(client).take(viewLocks(mv.spec, [mv.spec.from.table, ...(mv.spec.joins ?? []).map((j) => j.table)]));
  const found = await look();
  const dropped: string[] = [];
  if (found.view) {
    await client.query(`DROP VIEW ${quoteQualified(schema, name)}`);
    dropped.push(`view ${schema}.${name}`);
  }
  for (const role of found.roles) {
    await dropManagedRole(client, role);
    dropped.push(`role ${role}`);
  }
  return dropped;
}

export function maskedViewReconciler(deps: MaskedViewDeps) {
  return async function reconcileMaskedView(mv: MaskedView, ctx: ReconcileContext): Promise<Outcome> {
    const spec = mv.spec;
    const namespace = mv.metadata.namespace!;
    const viewName = `${spec.view.schema}.${spec.view.name}`;
    const shown = { view: viewName, readers: spec.readers.join(',') };
    const connected = await connectWarehouse(deps, spec.warehouse, 'the view was not changed');
    if ('outcome' in connected) return { ...connected.outcome, status: shown };
    const { wh, pool } = connected;
    await loadParser();
    const owner = ownerRoleName(namespace, mv.metadata.name);
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'MaskedView', namespace, name: mv.metadata.name });
    const record = (
      db: pg.ClientBase | pg.Pool,
      action: string,
      outcome: 'success' | 'failure' | 'denied',
      details?: Record<string, unknown>,
      error?: string,
    ) =>
      trail.record(
        {
          action,
          resource: `${wh.metadata.name}/${viewName}`,
          outcome,
          details,
          error,
        },
        new AuditTableSink(db),
      );

    /**
     * Fail closed: a view that may not serve is taken away from everyone (dropped, with its roles;
     * grants others made on it go with it), in its own transaction, and audited when that changed
     * something or the reason is new. It is built again once the cause is gone.
     */
    const withdraw = async (reason: string, why: string): Promise<Outcome> => {
      const again = findCondition(mv.status?.conditions, 'Ready')?.reason === reason;
      const dropped = await inTransaction(pool, async (c) => {
        const d = await dropViewAndRoles(c, mv);
        if (d.length || !again) await record(c, 'view.withdraw', 'denied', { reason, dropped: d }, why);
        return d;
      });
      return {
        state: 'Stalled',
        reason,
        message: `${why}; ${dropped.length ? 'the view was withdrawn' : 'no view is built'}: it serves no one until this is fixed`,
        status: { ...shown, readers: '' },
        conditions: [{ type: 'SourcesLocked', status: 'Unknown', reason: 'NotServing', message: 'the view is not served, so its sources were not checked' }],
        events: again && !dropped.length ? [] : [{ type: 'Warning', reason, note: why, action: 'Withdraw' }],
      };
    };

    // 1. What no database needs to be asked about: the policy (Steward's own schema and PostgreSQL's
    // are never grantable, whatever it says), and expressions that would undo the view's masks.
    const labels = deps.namespaceLabels(namespace) ?? {};
    const sourceSchemas = [spec.from.table, ...(spec.joins ?? []).map((j) => j.table)].map((t) => t.split('.')[0]!);
    const roles = [...spec.readers, ...(spec.unmaskedRoles ?? [])];
    const denial = viewPolicyDenial(wh.spec.accessPolicy, { namespace: { name: namespace, labels }, viewSchema: spec.view.schema, sourceSchemas, roles });
    if (denial) return withdraw('PolicyDenied', `${denial}. Ask the Warehouse owner to extend spec.accessPolicy, or change the view`);
    let plan: ViewPlan;
    try {
      // Validate expressions before touching anything (the hash key expression is fixed SQL).
      plan = planView(spec, { hmacFunction: '"public"."hmac"', keyQuery: 'SELECT NULL::bytea AS key' });
    } catch (e) {
      if (e instanceof MaskBypassError) return withdraw('MaskBypass', e.message);
      if (!(e instanceof ExpressionError)) throw e;
      await record(pool, 'view.validate', 'denied', undefined, e.message).catch(() => undefined);
      return {
        state: 'Stalled',
        reason: 'InvalidExpression',
        message: `${e.message}; the view was not changed`,
        status: shown,
        events: [{ type: 'Warning', reason: 'InvalidExpression', note: e.message, action: 'Validate' }],
      };
    }

    // 2. What the catalog must confirm before anything is built: sources, roles, the schema.
    const checked = await inTransaction(
      pool,
      async (client): Promise<{ outcome: Outcome } | { withdraw: string; why: string } | { unmaskedRoleOids: number[] }> => {
        const missing = await tablesMissing(client, plan.sourceTables);
        if (missing.length)
          return {
            outcome: { state: 'Progressing', reason: 'SourceNotFound', message: `source table ${missing.join(', ')} does not exist; retrying`, status: shown },
          };
        // Steward never creates the roles a view names: a missing one is for its owner to create.
        const named = [
          ...spec.readers.map((role) => ({ role, field: 'readers' })),
          ...(spec.unmaskedRoles ?? []).map((role) => ({ role, field: 'unmaskedRoles' })),
        ];
        const facts = await describeRoles(
          client,
          named.map((n) => n.role),
        );
        const absent = named.filter((n) => !facts.has(n.role));
        if (absent.length) {
          const list = absent.map((n) => `${n.role} (${n.field})`).join(', ');
          const what = absent.length === 1 ? `role ${list} does not exist` : `roles ${list} do not exist`;
          const why = `${what} in Warehouse ${spec.warehouse}; Steward never creates the roles a view names. Once they exist, the next resync builds the view; the view was not changed`;
          return {
            outcome: {
              state: 'Stalled',
              reason: 'RoleNotFound',
              message: why,
              status: shown,
              events: [{ type: 'Warning', reason: 'RoleNotFound', note: why, action: 'Validate' }],
            },
          };
        }
        const refused = named.map((n) => ({ ...n, why: refusedRole(facts.get(n.role)!) })).find((n) => n.why);
        if (refused) return { withdraw: 'PolicyDenied', why: `${refused.field}: ${refused.why}: it is never grantable, whatever the accessPolicy says` };
        if (spec.kAnonymity) {
          try {
            refuseRowMultiplyingJoins(
              spec,
              await uniqueKeys(
                client,
                (spec.joins ?? []).map((j) => j.table),
              ),
            );
          } catch (e) {
            if (e instanceof MaskBypassError) return { withdraw: 'MaskBypass', why: e.message };
            throw e;
          }
        }
        const unsafe = await viewSchemaProblems(client, spec.view.schema);
        if (unsafe.length)
          return { withdraw: 'ViewSchemaUnsafe', why: `${unsafe.join('; ')}. Revoke that, or place the view in a schema only Steward's login may create in` };
        // Membership is checked by OID: a role dropped and re-created under its name is a new role,
        // and the view is rebuilt for it (the OIDs are part of the SQL, so of its hash).
        return { unmaskedRoleOids: (spec.unmaskedRoles ?? []).map((r) => facts.get(r)!.oid) };
      },
    );
    if ('withdraw' in checked) return withdraw(checked.withdraw, checked.why);
    if ('outcome' in checked) return checked.outcome;
    const { unmaskedRoleOids } = checked;

    // 3. Build (when the view is not the one this spec makes), lock the sources, grant the readers.
    const client = await pool.connect();
    let exposed: { role: string; table: string }[];
    let readerGrants: ReaderGrants;
    const readerRole = readerRoleName(namespace, mv.metadata.name);
    let changedView = false;
    let tampered: string[] = [];
    const locks = new ObjectLocks(client);
    try {
      await client.query('BEGIN');
      // Plan with what is there, read-only: an idle resync changes nothing and takes no lock.
      const keyQuery = hashKeyQuery(viewName);
      let hmac = plan.usesHash ? await findHmacFunction(client) : undefined;
      plan = planView(spec, { hmacFunction: hmac ?? '"public"."hmac"', keyQuery, unmaskedRoleOids });
      let sha = createHash('sha256').update(plan.select).digest('hex').slice(0, 16);
      const facts = await observeView(client, spec.view.schema, spec.view.name);
      const found = judgeView(facts, mv, owner);
      if (found.kind === 'foreign' || (found.kind === 'tampered' && facts.relkind !== 'v')) {
        await client.query('ROLLBACK');
        return {
          state: 'Stalled',
          reason: 'ViewConflict',
          message: `${viewName} exists and is not this MaskedView's${found.kind === 'tampered' ? ` (${found.problems.join('; ')})` : ''}; rename or drop it`,
          status: { ...shown, readers: '' },
        };
      }
      if (found.kind === 'tampered') tampered = found.problems;
      // Built again unless it is Steward's, as this spec makes it, and its definition was recorded.
      const recorded = recordedHashes(facts.comment);
      if (found.kind !== 'ours' || recorded.sha !== sha || !recorded.def) {
        // Every lock this transaction will take, at once and in the one order: GRANTs on one table
        // or schema from two sessions fail with "tuple concurrently updated", and the reader role's
        // (which setReaders changes below) may not come after the schemas.
        await locks.take([
          ...viewLocks(spec, plan.sourceTables),
          { kind: 'role', role: owner },
          ...(plan.usesHash ? [tableLock('steward.mask_keys'), { kind: 'schema', schema: 'steward' } as const] : []),
          ...(await readerRoleLocks(client, spec.view.schema, spec.view.name, readerRole)),
        ]);
        await ensureOwnerRole(client, owner, ownerComment(mv));
        if (plan.usesHash) {
          hmac = await ensureHashKey(client, viewName, owner);
          plan = planView(spec, { hmacFunction: hmac, keyQuery, unmaskedRoleOids });
          sha = createHash('sha256').update(plan.select).digest('hex').slice(0, 16);
        }
        // Replace in one transaction: readers wait on the lock, then see the new masked view. Grants
        // others made on Steward's view (a DatasetAccess) are carried over to the new one; what was
        // granted on a view put in its place is not.
        const kept = found.kind === 'ours' ? await viewGrants(client, spec.view.schema, spec.view.name) : [];
        for (const s of createViewStatements(spec.view.schema, spec.view.name, plan.select, owner, plan.sourceTables, facts.exists))
          await runChecked(client, s.sql, s.object);
        // The definition as PostgreSQL stored it, recorded beside the SQL's hash: a resync that finds
        // another definition under the comment knows the view was changed behind Steward's back.
        const built = await observeView(client, spec.view.schema, spec.view.name);
        await runChecked(client, commentViewStatement(spec.view.schema, spec.view.name, viewComment(mv, sha, built.definitionSha!)), viewName);
        for (const s of regrantStatements(spec.view.schema, spec.view.name, kept, owner)) await runChecked(client, s, viewName);
        changedView = true;
      }
      if (tampered.length) await record(client, 'view.tampered', 'denied', { found: tampered, rebuilt: true });
      // SourcesLocked: nobody outside unmaskedRoles may read a source directly. Otherwise fail closed.
      exposed = await sourceExposure(client, plan.sourceTables, spec.readers, spec.unmaskedRoles ?? [], owner);
      const formerReaders = [...new Set([...spec.readers, ...(mv.status?.readers ?? '').split(',').filter(Boolean)])];
      readerGrants = await setReaders(
        client,
        locks,
        spec.view.schema,
        spec.view.name,
        readerRole,
        readerComment(mv),
        exposed.length ? [] : spec.readers,
        formerReaders,
      );
      if (changedView || readerGrants.ran.length)
        await record(client, changedView ? 'view.replace' : 'view.grants', 'success', { sha, grants: readerGrants.ran, maskedColumns: plan.maskedColumns });
      // Audited when it is found, not on every resync while it lasts.
      const alreadyExposed = findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'False';
      if (exposed.length && !alreadyExposed) await record(client, 'view.sources_exposed', 'denied', { exposed });
      const alreadyDrifted = findCondition(mv.status?.conditions, 'Ready')?.reason === 'ReaderRoleDrift';
      if (readerGrants.heldElsewhere.length && !alreadyDrifted)
        await record(client, 'view.reader_role_drift', 'denied', { role: readerRole, held: readerGrants.heldElsewhere });
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      // The reader role changed between the look that chose the locks and the change: look again.
      if (e instanceof LockOrderError) throw new StaleObservation(`${e.message}; retrying`);
      await record(pool, 'view.replace', 'failure', undefined, e instanceof Error ? e.message : String(e)).catch(() => undefined);
      const code = (e as { code?: string }).code;
      // Privilege errors arrive as InsufficientPrivilege (every statement that needs one runs through
      // runChecked); any other class-42 error is PostgreSQL's verdict on the SQL.
      if (code?.startsWith('42') && code !== '42501' && !(e instanceof InsufficientPrivilege)) {
        // PostgreSQL's own verdict on the SQL (a column that does not exist, types that do not
        // match): the spec must change, so say so instead of retrying with backoff.
        const why = `PostgreSQL refused the view: ${e instanceof Error ? e.message : String(e)}; the view was not changed`;
        return {
          state: 'Stalled',
          reason: 'InvalidExpression',
          message: why,
          status: shown,
          events: [{ type: 'Warning', reason: 'InvalidExpression', note: why, action: 'Build' }],
        };
      }
      if (e instanceof InsufficientPrivilege) {
        // Rolled back: the view and its readers are as they were. Resyncs retry once the login is granted more.
        const advice = `${e.message}. Nothing was changed. Grant the login what docs/warehouse.md lists`;
        return {
          state: 'Stalled',
          reason: 'InsufficientPrivilege',
          message: advice,
          status: shown,
          events: [{ type: 'Warning', reason: 'InsufficientPrivilege', note: advice, action: 'Build' }],
        };
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
      await sendOpenLineage(deps.openLineage, openLineageEvent(mv, wh, plan, ctx.now)).catch((e: unknown) =>
        ctx.logger.warn({ err: String(e) }, 'could not send the OpenLineage event'),
      );
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
    const locked = {
      type: 'SourcesLocked',
      status: 'True',
      reason: 'SourcesLocked',
      message: `no reader and no role outside unmaskedRoles can read ${plan.sourceTables.join(', ')} directly`,
    } as const;
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
    const wasServing =
      findCondition(mv.status?.conditions, 'SourcesLocked')?.status === 'True' && findCondition(mv.status?.conditions, 'Ready')?.reason !== 'ReaderRoleDrift';
    return {
      state: 'Ready',
      reason: 'ViewReady',
      message: `${viewName} serves ${plan.maskedColumns} masked column(s) to ${spec.readers.join(', ')}`,
      status,
      conditions: [locked],
      events:
        changedView || !wasServing
          ? [{ type: 'Normal', reason: 'ViewReady', note: `${viewName} built with ${plan.maskedColumns} masked column(s)`, action: 'Build' }]
          : [],
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
    const wh = deps.warehouse(spec.warehouse);
    if (!wh) return { state: 'Progressing', reason: 'WarehouseNotFound', message: `cannot drop the view: Warehouse ${spec.warehouse} does not exist` };
    try {
      const { pool } = await deps.connections.pool(wh);
      await inTransaction(pool, async (client) => {
        const dropped = await dropViewAndRoles(client, mv);
        await deps.audit.scope({ request_id: ctx.requestId, kind: 'MaskedView', namespace: mv.metadata.namespace, name: mv.metadata.name }).record(
          {
            action: 'view.drop',
            resource: `${wh.metadata.name}/${spec.view.schema}.${spec.view.name}`,
            outcome: 'success',
            details: { dropped },
          },
          new AuditTableSink(client),
        );
      });
      await deps.client.delete(CONFIGMAP_TYPE, `${mv.metadata.name}-lineage`, mv.metadata.namespace).catch(() => undefined);
    } catch (e) {
      return { state: 'Progressing', reason: 'DropFailed', message: `cannot drop the view yet: ${e instanceof Error ? e.message : String(e)}; retrying` };
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
