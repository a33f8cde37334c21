// The PostgreSQL driver of MaskedView: observe everything the reconciler decides from (sources,
// named roles, the view's schema, the view as found, who can read the sources, the reader role) in
// one read-only transaction; apply a build and the readers in one transaction under the view's
// locks, looking again before it changes anything; remove the view and its roles.
import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import type { AuditScope, ScopedInput } from '../../audit/sink.ts';
import { StaleObservation } from '../../runtime/controller.ts';
import { tableLock, type LockKey } from '../../governance/grants.ts';
import type { AccessObservation } from '../../governance/access-plan.ts';
import type { GranteeFacts } from '../../governance/reserved.ts';
import type { Applied, Driver } from '../driver.ts';
import { AuditTableSink } from './audit-table.ts';
import { describeRoles } from './roles.ts';
import { quoteQualified } from './sql-text.ts';
import { withSession } from './session.ts';
import { WarehouseDriver } from './warehouse-driver.ts';
import { PrimedObservations } from '../primed.ts';
import {
  commentViewStatement,
  createViewStatements,
  directGrantees,
  dropManagedRole,
  ensureHashKey,
  ensureOwnerRole,
  findHmacFunction,
  observeReaderRole,
  observeView,
  readerRoleLocks,
  readerRoleSettled,
  regrantStatements,
  setReaders,
  sourceExposure,
  tablesMissing,
  uniqueKeys,
  viewGrants,
  viewSchemaProblems,
  type Exposure,
  type ViewFacts,
} from './view-catalog.ts';

/** One MaskedView in its Warehouse, as the driver sees it. */
export interface ViewTarget {
  schema: string;
  name: string;
  /** How Steward's comment on the view starts: `<prefix>sha=… def=…` (see viewComment). */
  commentPrefix: string;
  /** The role that owns the view and alone reads its sources. */
  owner: string;
  ownerComment: string;
  /** The role that holds SELECT on the view; the readers are its members. */
  readerRole: string;
  readerComment: string;
  /** Every source table, schema.table. */
  sources: string[];
  readers: string[];
  unmaskedRoles: string[];
  /** Readers an earlier reconcile served (status.readers): a direct grant to one of them is Steward's to revoke. */
  formerReaders: string[];
  /** Tables whose unique keys the k-anonymity join check reads (empty when it does not apply). */
  keyedTables: string[];
}

export interface ViewObservation {
  missingSources: string[];
  /** Facts of the readers and unmasked roles that exist. */
  roles: Record<string, GranteeFacts>;
  uniqueKeys: Record<string, string[][]>;
  /** Why the view's schema is no safe place for it (viewSchemaProblems), or []. */
  schemaProblems: string[];
  /** Where pgcrypto's hmac() lives, when it is installed. */
  hmacFunction?: string;
  view: ViewFacts;
  /** Who can read a source directly, bypassing the mask (SourcesLocked). */
  exposure: Exposure[];
  readerRole: AccessObservation;
  /** Former readers still holding SELECT on the view itself. */
  directGrantees: string[];
}

/** What to make true: the view built from `build` (when it is not already), and these readers. */
export interface ViewChange {
  /** The hash of the SELECT this spec makes, recorded in the view's comment beside its stored definition's, and in its audit records. */
  sha: string;
  build?: {
    select: string;
    usesHash: boolean;
    /** The hmac() the SELECT calls: if installing pgcrypto puts it elsewhere, the plan is stale. */
    hmacFunction: string;
    /** Grants others made on Steward's view, carried over to the new one; not those on a view found in its place. */
    keepGrants: boolean;
  };
  /** The reader role's members: none while the sources are exposed (fail closed). */
  readers: string[];
  /** How many columns the view masks, for its audit record. */
  maskedColumns: number;
  /** The reader role holds what Steward may not revoke, already reported: not audited again. */
  driftKnown: boolean;
}

export interface ViewApplied extends Applied {
  built: boolean;
  /** What the reader role holds beyond its view that Steward may not revoke: the readers were removed. */
  heldElsewhere: string[];
  /** What remove dropped. */
  dropped: string[];
}

export interface ViewDriver extends Driver<ViewTarget, ViewObservation, ViewChange, ViewApplied> {
  /** `onlyIfDropped`: the notes are written only when something was dropped (a withdrawal for a reason already reported). */
  remove(target: ViewTarget, audit: AuditScope, notes?: ScopedInput[], onlyIfDropped?: boolean): Promise<ViewApplied>;
}

/** The comment Steward records on its view: whose it is, the hash of the SQL it was built from, and that of the definition PostgreSQL stored. */
export const viewComment = (t: Pick<ViewTarget, 'commentPrefix'>, sha: string, definitionSha: string): string =>
  `${t.commentPrefix}sha=${sha} def=${definitionSha}`;

/** The two hashes a view's comment records (views built before the definition was recorded have no def). */
export const recordedHashes = (comment: string | null): { sha?: string; def?: string } => ({
  sha: /\bsha=([0-9a-f]+)/.exec(comment ?? '')?.[1],
  def: /\bdef=([0-9a-f]+)/.exec(comment ?? '')?.[1],
});

/** What Steward finds under the view's name: nothing, its own view as it built it, its view changed behind its back, or someone else's. */
export type Found = { kind: 'absent' } | { kind: 'ours' } | { kind: 'tampered'; problems: string[] } | { kind: 'foreign' };

/**
 * Steward's view is the relation with its comment, owned by the view's owner role (only Steward's
 * login may hand it that role), a security_barrier view whose definition is the one Steward
 * recorded when it built it. A comment anyone who owns a view can copy; the rest they cannot fake.
 */
export function judgeView(facts: ViewFacts, t: Pick<ViewTarget, 'commentPrefix' | 'owner'>): Found {
  if (!facts.exists) return { kind: 'absent' };
  if (!facts.comment?.startsWith(t.commentPrefix)) return { kind: 'foreign' };
  const recordedDefinition = recordedHashes(facts.comment).def;
  const problems = [
    ...(facts.relkind !== 'v' ? [`it is not a view (relkind ${facts.relkind})`] : []),
    ...(facts.owner !== t.owner ? [`it is owned by ${facts.owner}, not ${t.owner}`] : []),
    ...(facts.relkind === 'v' && !facts.securityBarrier ? ['security_barrier is off'] : []),
    // Views built before Steward recorded the definition have none to compare: they are rebuilt anyway (the comment differs).
    ...(recordedDefinition && facts.definitionSha !== recordedDefinition ? ['its definition is not the one Steward built'] : []),
  ];
  return problems.length ? { kind: 'tampered', problems } : { kind: 'ours' };
}

/** The view's and its sources' table locks, and their schemas'. */
function viewLocks(t: ViewTarget): LockKey[] {
  const tables = [`${t.schema}.${t.name}`, ...t.sources];
  return [...tables.map(tableLock), ...[t.schema, ...t.sources.map((x) => x.split('.')[0]!)].map((schema) => ({ kind: 'schema', schema }) as const)];
}

const HASH_KEY_LOCKS: LockKey[] = [tableLock('steward.mask_keys'), { kind: 'schema', schema: 'steward' }];

/** What observe reads of one view, on a connection inside a read-only transaction. */
async function observeViewTarget(client: pg.ClientBase, t: ViewTarget, hmacFunction: string | undefined): Promise<ViewObservation> {
  const missingSources = await tablesMissing(client, t.sources);
  const roles = Object.fromEntries(await describeRoles(client, [...t.readers, ...t.unmaskedRoles]));
  const keys = t.keyedTables.length && !missingSources.length ? Object.fromEntries(await uniqueKeys(client, t.keyedTables)) : {};
  return {
    missingSources,
    roles,
    uniqueKeys: keys,
    schemaProblems: await viewSchemaProblems(client, t.schema),
    hmacFunction,
    view: await observeView(client, t.schema, t.name),
    exposure: missingSources.length ? [] : await sourceExposure(client, t.sources, t.readers, t.unmaskedRoles, t.owner),
    readerRole: await observeReaderRole(client, t.schema, t.readerRole),
    directGrantees: await directGrantees(client, t.schema, t.name, t.formerReaders),
  };
}

export class PostgresViewDriver extends WarehouseDriver implements ViewDriver {
  private readonly primed = new PrimedObservations<ViewTarget, ViewObservation>((t) => `${t.schema}.${t.name}`);

  /** Everything the reconciler decides from, in one read-only transaction (one snapshot per statement, one connection). */
  async observe(t: ViewTarget): Promise<ViewObservation> {
    return (
      this.primed.take(t) ?? withSession(this.pool, async ({ client }) => observeViewTarget(client, t, await findHmacFunction(client)), { mode: 'READ ONLY' })
    );
  }

  /** Every view of the Warehouse in one read-only transaction (an idle resync): a few queries per view, one transaction in all. */
  async prime(targets: readonly ViewTarget[]): Promise<void> {
    if (!targets.length) return;
    const readAt = Date.now();
    const observations = await withSession(
      this.pool,
      async ({ client }) => {
        const hmacFunction = await findHmacFunction(client);
        const out: ViewObservation[] = [];
        for (const t of targets) out.push(await observeViewTarget(client, t, hmacFunction));
        return out;
      },
      { mode: 'READ ONLY' },
    );
    this.primed.put(targets, observations, readAt);
  }

  async apply(t: ViewTarget, basis: ViewObservation, change: ViewChange, audit: AuditScope, notes: ScopedInput[] = []): Promise<ViewApplied> {
    const settled = !change.build && readerRoleSettled(basis.readerRole, t.schema, t.name, change.readers, basis.directGrantees);
    if (settled) {
      // An idle resync: nothing to change, no transaction, no lock.
      if (notes.length) await audit.recordMany(notes, new AuditTableSink(this.pool));
      return { ran: [], built: false, heldElsewhere: [], dropped: [] };
    }
    this.primed.changing(t);
    return withSession(this.pool, async (session) => {
      const { client } = session;
      const ran: string[] = [];
      if (change.build) {
        // Every lock this transaction will take, at once and in the one order: GRANTs on one table
        // or schema from two sessions fail with "tuple concurrently updated", and the reader role's
        // (which setReaders changes below) may not come after the schemas.
        await session.lock([
          ...viewLocks(t),
          { kind: 'role', role: t.owner },
          ...(change.build.usesHash ? HASH_KEY_LOCKS : []),
          ...readerRoleLocks(basis.readerRole, t.schema, t.name, t.readerRole),
        ]);
        const facts = await observeView(client, t.schema, t.name);
        if (!isDeepStrictEqual(facts, basis.view)) throw new StaleObservation(`${t.schema}.${t.name} changed while Steward planned; retrying`);
        await ensureOwnerRole(session, t.owner, t.ownerComment);
        if (change.build.usesHash) {
          const hmac = await ensureHashKey(session, `${t.schema}.${t.name}`, t.owner);
          if (hmac !== change.build.hmacFunction) throw new StaleObservation(`pgcrypto's hmac() is ${hmac}, not where the view was planned with; retrying`);
        }
        // Replace in one transaction: readers wait on the lock, then see the new masked view.
        const kept = change.build.keepGrants ? await viewGrants(client, t.schema, t.name) : [];
        ran.push(...(await session.run(createViewStatements(t.schema, t.name, change.build.select, t.owner, t.sources, facts.exists), [])));
        // The definition as PostgreSQL stored it, recorded beside the SQL's hash: a resync that finds
        // another definition under the comment knows the view was changed behind Steward's back.
        const built = await observeView(client, t.schema, t.name);
        ran.push(...(await session.run([commentViewStatement(t.schema, t.name, viewComment(t, change.sha, built.definitionSha!))], [])));
        ran.push(...(await session.run(regrantStatements(t.schema, t.name, kept, t.owner), [])));
      }
      // Verify what the readers were decided from: who can read the sources must be as observed.
      const exposure = await sourceExposure(client, t.sources, t.readers, t.unmaskedRoles, t.owner);
      if (!isDeepStrictEqual(exposure, basis.exposure)) throw new StaleObservation('who can read the sources changed while Steward planned; retrying');
      const readers = await setReaders(session, t.schema, t.name, t.readerRole, t.readerComment, change.readers, t.formerReaders);
      ran.push(...readers.ran);
      const records: ScopedInput[] = [
        ...notes,
        ...(change.build || readers.ran.length
          ? [
              {
                action: change.build ? 'view.replace' : 'view.grants',
                resource: this.resource(`${t.schema}.${t.name}`),
                outcome: 'success' as const,
                details: { sha: change.sha, grants: readers.ran, maskedColumns: change.maskedColumns },
              },
            ]
          : []),
        ...(readers.heldElsewhere.length && !change.driftKnown
          ? [
              {
                action: 'view.reader_role_drift',
                resource: this.resource(`${t.schema}.${t.name}`),
                outcome: 'denied' as const,
                details: { role: t.readerRole, held: readers.heldElsewhere },
              },
            ]
          : []),
      ];
      await audit.recordMany(records, new AuditTableSink(session));
      return { ran, built: !!change.build, heldElsewhere: readers.heldElsewhere, dropped: [] };
    });
  }

  /**
   * Drops the view (only when it is the one Steward built) and its owner and reader roles (only
   * when Steward made them): afterwards nothing Steward made for the view serves anyone. Used on
   * deletion, and to withdraw a view that may not serve. `notes` get the list of what was dropped.
   */
  async remove(t: ViewTarget, audit: AuditScope, notes: ScopedInput[] = [], onlyIfDropped = false): Promise<ViewApplied> {
    // Read first: a view already withdrawn costs a resync no lock.
    const before = await this.droppable(this.pool, t);
    if (!before.view && before.roles.length === 0) {
      if (!onlyIfDropped && notes.length)
        await audit.recordMany(
          notes.map((n) => ({ ...n, details: { ...n.details, dropped: [] } })),
          new AuditTableSink(this.pool),
        );
      return { ran: [], built: false, heldElsewhere: [], dropped: [] };
    }
    this.primed.changing(t);
    return withSession(this.pool, async (session) => {
      // The locks the build takes, in the same order: a REVOKE on a source beside a DatasetAccess's
      // GRANT on it would otherwise fail with "tuple concurrently updated".
      await session.lock(viewLocks(t));
      const found = await this.droppable(session.client, t);
      const dropped: string[] = [];
      const ran: string[] = [];
      if (found.view) {
        ran.push(...(await session.run([{ sql: `DROP VIEW ${quoteQualified(t.schema, t.name)}`, action: 'view.drop', object: `${t.schema}.${t.name}` }], [])));
        dropped.push(`view ${t.schema}.${t.name}`);
      }
      for (const role of found.roles) {
        ran.push(...(await dropManagedRole(session, role)));
        dropped.push(`role ${role}`);
      }
      await audit.recordMany(
        notes.map((n) => ({ ...n, details: { ...n.details, dropped } })),
        new AuditTableSink(session),
      );
      return { ran, built: false, heldElsewhere: [], dropped };
    });
  }

  /** What of the view's Steward may drop: the view if its owner role owns it, and the roles Steward made for it. */
  private async droppable(db: pg.ClientBase | pg.Pool, t: ViewTarget): Promise<{ view: boolean; roles: string[] }> {
    // A view the owner role owns is Steward's to drop, even changed behind its back (else the owner
    // role could not be dropped after it); one someone else owns is not, whatever its comment says.
    const facts = await observeView(db, t.schema, t.name);
    const roles = await db.query<{ rolname: string }>(
      `SELECT rolname FROM pg_roles WHERE (rolname, coalesce(shobj_description(oid, 'pg_authid'), '')) IN (($1, $2), ($3, $4))`,
      [t.owner, t.ownerComment, t.readerRole, t.readerComment],
    );
    return {
      view: facts.relkind === 'v' && facts.owner === t.owner && judgeView(facts, t).kind !== 'foreign',
      roles: roles.rows.map((r) => r.rolname),
    };
  }
}
