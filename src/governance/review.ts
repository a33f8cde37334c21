// AccessReview decisions, pure: when a cycle starts and what it is called, which grants the
// catalog shows that no Steward object explains (out-of-band), and which decisions count. The
// controller reads the catalog and the cluster, this module judges, the driver revokes.
import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { groupRoleName, readerRoleName, ROLE_PREFIX } from './grants.ts';
import { MANAGED_COMMENT_PREFIX } from './reserved.ts';
import { parseDuration } from '../runtime/duration.ts';

/** When the next cycle starts: `every` after the last start (the first at creation), `cron` the next match after it (UTC). */
export function nextCycleAt(schedule: { every?: string; cron?: string }, lastStart: Date | undefined, created: Date): Date {
  if (schedule.every) return lastStart ? new Date(lastStart.getTime() + parseDuration(schedule.every)) : created;
  return CronExpressionParser.parse(schedule.cron!, { currentDate: lastStart ?? created, tz: 'UTC' })
    .next()
    .toDate();
}

/** A cycle's id: its start date (UTC), and -2, -3... for further cycles that day, so decisions can name it. */
export function cycleId(start: Date, earlier: readonly string[]): string {
  const day = start.toISOString().slice(0, 10);
  if (!earlier.includes(day)) return day;
  let n = 2;
  while (earlier.includes(`${day}-${n}`)) n++;
  return `${day}-${n}`;
}

/** One grant the catalog shows in the review's scope. */
export interface CatalogGrant {
  kind: 'table' | 'schema' | 'membership';
  /** The role that holds it ('PUBLIC' for everyone), or for a membership the member. */
  grantee: string;
  granteeIsSuperuser: boolean;
  granteeComment: string | null;
  /** The table's schema, the schema, or the role the grantee is a member of (`name`). */
  schema: string | null;
  name: string;
  privileges: string[];
}

/** What Steward objects explain, besides Steward's own roles. */
export interface Explanations {
  /** Steward's own login. */
  stewardLogin: string;
  /** DatasetAccess group role -> its principal (every DatasetAccess on the Warehouse, in scope or not). */
  accessPrincipals: ReadonlyMap<string, string>;
  /** MaskedView reader role -> the readers its spec names. */
  viewReaders: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The roles a DatasetAccess or MaskedView names as its principal or reader. Naming a group role
   * grants its members: who is in the team is the directory's business, not an extra grant.
   */
  namedRoles: ReadonlySet<string>;
}

/** What explains grants on a Warehouse: its accesses (granted or not) and its views, with whether Steward granted them. */
export function explanations(
  stewardLogin: string,
  accesses: readonly { namespace: string; name: string; principal: string; granted: boolean }[],
  views: readonly { namespace: string; name: string; readers: readonly string[]; ready: boolean }[],
): Explanations {
  return {
    stewardLogin,
    accessPrincipals: new Map(accesses.map((d) => [groupRoleName(d.namespace, d.name), d.principal])),
    viewReaders: new Map(views.map((v) => [readerRoleName(v.namespace, v.name), new Set(v.readers)])),
    // Only what Steward granted: a denied access naming the owner's role must not hide its members.
    namedRoles: new Set([...accesses.filter((d) => d.granted).map((d) => d.principal), ...views.filter((v) => v.ready).flatMap((v) => v.readers)]),
  };
}

export interface OutOfBandGrant extends CatalogGrant {
  /** Stable across cycles: the same grant, the same id (decisions name it). */
  id: string;
  /** For display: schema.table, schema, or the role. */
  object: string;
  /**
   * A table grant's grantee also holds USAGE on the table's schema by hand: the half of the grant
   * that makes the table reachable. Shown with the table, not as a finding of its own; revoked with
   * the last of the grantee's tables there.
   */
  schemaUsage?: true;
}

/** A role Steward made: its prefix and its ownership comment. */
export function isStewardRole(name: string, comment: string | null): boolean {
  return name.startsWith(ROLE_PREFIX) && (comment ?? '').startsWith(MANAGED_COMMENT_PREFIX);
}

/**
 * What every PostgreSQL 15 database grants from the start: USAGE on schema public to PUBLIC
 * (CREATE was taken from PUBLIC in 15). Nobody granted it by hand; reporting it in every review of
 * every database would bury the grants that were. Anything more on public (CREATE, a table) is reported.
 */
function isPostgresDefault(g: CatalogGrant): boolean {
  return g.kind === 'schema' && g.grantee === 'PUBLIC' && g.name === 'public' && g.privileges.length === 1 && g.privileges[0] === 'USAGE';
}

export function outOfBandId(kind: CatalogGrant['kind'] | 'iam-policy', grantee: string, object: string): string {
  return `oob-${createHash('sha256').update(`${kind}\0${grantee}\0${object}`).digest('hex').slice(0, 6)}`;
}

/**
 * The grants nobody asked Steward for. Explained, never findings: a superuser's, Steward's login's
 * and Steward's roles' (its group, usage, view and alternate-login roles), a DatasetAccess
 * principal's membership in that access's group role, a MaskedView reader's in the view's reader
 * role, a membership in a role an access or view names (a team role's members), and PostgreSQL's
 * own default (USAGE on schema public to PUBLIC). Owners' privileges are not in the list at all
 * (the catalog read leaves them out); a membership in an owner's role is a finding.
 */
export function outOfBand(grants: readonly CatalogGrant[], why: Explanations): OutOfBandGrant[] {
  const found: OutOfBandGrant[] = [];
  for (const g of grants) {
    if (g.granteeIsSuperuser || g.grantee === why.stewardLogin || isStewardRole(g.grantee, g.granteeComment)) continue;
    if (isPostgresDefault(g)) continue;
    if (g.kind === 'membership') {
      if (why.accessPrincipals.get(g.name) === g.grantee) continue;
      if (why.viewReaders.get(g.name)?.has(g.grantee)) continue;
      if (why.namedRoles.has(g.name)) continue;
    }
    const object = g.kind === 'table' ? `${g.schema}.${g.name}` : g.name;
    found.push({ ...g, object, id: outOfBandId(g.kind, g.grantee, object) });
  }
  return foldSchemaUsage(found).sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * `GRANT SELECT ON s.t TO x` reads nothing without `GRANT USAGE ON SCHEMA s TO x`: by hand, one
 * access is both statements. A reviewer decides on the access, so a grantee's USAGE on a schema
 * where it also holds a table by hand goes with those tables (schemaUsage) instead of being a second
 * finding. USAGE alone, and any other schema privilege (CREATE), stays a finding of its own.
 */
function foldSchemaUsage(found: OutOfBandGrant[]): OutOfBandGrant[] {
  const tablesHeld = new Set(found.filter((f) => f.kind === 'table').map((f) => `${f.grantee}\0${f.schema}`));
  const out: OutOfBandGrant[] = [];
  for (const f of found) {
    if (f.kind === 'table' && found.some((s) => s.kind === 'schema' && s.grantee === f.grantee && s.name === f.schema && s.privileges.includes('USAGE'))) {
      out.push({ ...f, schemaUsage: true });
    } else if (f.kind === 'schema' && f.privileges.includes('USAGE') && tablesHeld.has(`${f.grantee}\0${f.name}`)) {
      const rest = f.privileges.filter((p) => p !== 'USAGE');
      if (rest.length > 0) out.push({ ...f, privileges: rest });
    } else out.push(f);
  }
  return out;
}

export interface Decision {
  cycle: string;
  access?: string;
  finding?: string;
  decision: 'keep' | 'revoke';
  by: string;
  reason?: string;
  /** Who applied it to the cluster (the admission stamp); under GitOps, the GitOps controller. */
  appliedBy?: string;
}

export interface JudgedDecisions {
  /** access (namespace/name) -> the decision that counts. */
  accesses: Map<string, Decision>;
  /** out-of-band finding id -> the decision that counts. */
  findings: Map<string, Decision>;
  /** What did not count, and why: status shows it. */
  ignored: { decision: string; why: string }[];
}

const describe = (d: Decision) => `${d.decision} ${d.access ?? d.finding} for cycle ${d.cycle} by ${d.by}`;

/**
 * The decisions that count for this cycle: for it (another cycle's are stale: last quarter's keep
 * never keeps this quarter's grant), by one of the reviewers, about something this cycle found. For
 * the same grant the last one in the list counts.
 */
export function judgeDecisions(
  decisions: readonly Decision[],
  cycle: string,
  reviewers: readonly string[],
  known: { accesses: ReadonlySet<string>; findings: ReadonlySet<string> },
): JudgedDecisions {
  const judged: JudgedDecisions = { accesses: new Map(), findings: new Map(), ignored: [] };
  for (const d of decisions) {
    if (d.cycle !== cycle) judged.ignored.push({ decision: describe(d), why: `stale: for cycle ${d.cycle}, not the current ${cycle}` });
    else if (!reviewers.includes(d.by)) judged.ignored.push({ decision: describe(d), why: `${d.by} is not one of spec.reviewers` });
    else if (d.access && !known.accesses.has(d.access))
      judged.ignored.push({ decision: describe(d), why: `this cycle found no grant of ${d.access} in scope` });
    else if (d.finding && !known.findings.has(d.finding))
      judged.ignored.push({ decision: describe(d), why: `this cycle found no out-of-band grant ${d.finding}` });
    else if (d.access) judged.accesses.set(d.access, d);
    else judged.findings.set(d.finding!, d);
  }
  return judged;
}
