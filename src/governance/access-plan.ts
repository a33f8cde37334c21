// What one DatasetAccess would change in the warehouse, decided from an observation of the catalog.
// Pure: the driver observes and renders SQL (drivers/postgres/grants.ts); this module decides what
// changes, as data. Shared by the reconciler (which applies it) and `steward plan` (which prints it).
import {
  EMPTY_STATE,
  desiredState,
  describeDiff,
  diffGrants,
  isAllTables,
  isEmptyDiff,
  lockKeys,
  type GrantDiff,
  type GrantState,
  type LockKey,
} from './grants.ts';
import type { GranteeFacts } from './reserved.ts';

export interface RoleFacts {
  exists: boolean;
  comment: string | null;
  /** Attributes a group role must never have. */
  dangerousAttributes: string[];
}

export interface UsageRoleFacts {
  exists: boolean;
  comment: string | null;
  hasUsage: boolean;
}

/** What the catalog says about one access's group role and its surroundings, read in one round trip. */
export interface AccessObservation {
  role: RoleFacts;
  /** The schema's shared usage role. */
  usageRole: UsageRoleFacts;
  state: GrantState;
  schemaExists: boolean;
  /** Tables (and views) of the schema, with owners. */
  tables: { name: string; owner: string }[];
  principalExists: boolean;
  /** What the catalog says about the principal, when it exists (reserved.ts judges it). */
  principal?: GranteeFacts;
}

/** Which group role, in which schema, for whom: what the driver observes and changes. */
export interface AccessTarget {
  groupRole: string;
  /** The ownership comment: how Steward tells its role from someone else's of the same name. */
  comment: string;
  schema: string;
  /** The schema's shared usage role (governance/grants.ts usageRoleName). */
  usageRole: string;
  usageRoleComment: string;
  /** Observed for its facts (refusedRole); unset on paths that only revoke. */
  principal?: string;
}

export interface AccessPlanInput {
  tables: readonly string[];
  privileges: readonly string[];
  principal: string;
  expired: boolean;
  /** The access was Ready for its current generation: any difference now is drift. */
  convergedBefore: boolean;
}

/** A change that brings the group role to what the access asks for. */
export interface GrantPlan {
  kind: 'grant';
  /** Why nothing may be done: the role is someone else's, the schema or tables are missing. */
  blocked?: { reason: 'RoleConflict' | 'SchemaNotFound' | 'TableNotFound'; message: string };
  principalMissing: boolean;
  createRole: boolean;
  /** Attributes to take away from the group role (it was altered out of band). */
  harden: string[];
  createUsageRole: boolean;
  grantUsageRoleUsage: boolean;
  /** The principal whose membership ends now, at the deadline: the expiry doing its job. */
  expire?: string;
  /** Everything else that differs (the expiring membership aside). */
  diff: GrantDiff;
  /** What was found changed behind Steward's back, when it had converged before. */
  drift?: string[];
  /** What the principal's membership does: events come from this, not from the SQL. */
  membership?: 'granted' | 'revoked';
  locks: LockKey[];
  /** What the group role holds once applied: the driver reads the catalog back and compares. */
  expect: GrantState;
}

/** A change that takes away everything the group role holds and drops it (denied, refused, deleted). */
export interface RevokePlan {
  kind: 'revoke';
  /** The role exists and is Steward's; anything else is left alone. */
  drop: boolean;
  /** Everything it holds, taken away before the DROP. */
  diff: GrantDiff;
  locks: LockKey[];
}

export type AccessPlan = GrantPlan | RevokePlan;

const NONE: GrantDiff = diffGrants(EMPTY_STATE, EMPTY_STATE);

export function planAccess(o: AccessObservation, t: AccessTarget, i: AccessPlanInput): GrantPlan {
  const none: GrantPlan = {
    kind: 'grant',
    principalMissing: !o.principalExists,
    createRole: false,
    harden: [],
    createUsageRole: false,
    grantUsageRoleUsage: false,
    diff: NONE,
    locks: [],
    expect: o.state,
  };
  if (o.role.exists && o.role.comment !== t.comment) {
    return {
      ...none,
      blocked: {
        reason: 'RoleConflict',
        message: `role ${t.groupRole} exists but Steward did not create it (its comment is ${JSON.stringify(o.role.comment)}); rename or drop that role`,
      },
    };
  }
  if (o.usageRole.exists && o.usageRole.comment !== t.usageRoleComment) {
    return { ...none, blocked: { reason: 'RoleConflict', message: `role ${t.usageRole} exists but Steward did not create it; rename or drop that role` } };
  }
  if (!o.schemaExists) return { ...none, blocked: { reason: 'SchemaNotFound', message: `schema ${t.schema} does not exist` } };
  const missing = isAllTables(i.tables) ? [] : i.tables.filter((x) => !o.tables.some((y) => y.name === x));
  if (missing.length)
    return { ...none, blocked: { reason: 'TableNotFound', message: `table ${missing.map((x) => `${t.schema}.${x}`).join(', ')} does not exist` } };

  const member = i.expired || !o.principalExists ? undefined : i.principal;
  const desired = desiredState({
    schema: t.schema,
    tables: i.tables,
    existingTables: o.tables,
    privileges: i.privileges,
    member,
    usageRole: t.usageRole,
  });
  const diff = diffGrants(desired, o.role.exists ? o.state : EMPTY_STATE);
  const expire = i.expired && diff.removeMembers.includes(i.principal) ? i.principal : undefined;
  const rest: GrantDiff = { ...diff, removeMembers: diff.removeMembers.filter((m) => m !== expire) };
  const harden = o.role.exists ? o.role.dangerousAttributes : [];
  const drifted = i.convergedBefore && o.role.exists && (!isEmptyDiff(rest) || harden.length > 0);
  const createUsageRole = !o.usageRole.exists;
  const grantUsageRoleUsage = !o.usageRole.hasUsage;
  return {
    kind: 'grant',
    principalMissing: !o.principalExists,
    createRole: !o.role.exists,
    harden,
    createUsageRole,
    grantUsageRoleUsage,
    expire,
    diff: rest,
    drift: drifted ? [...describeDiff(rest), ...(harden.length ? [`role attributes ${harden.join(', ')}`] : [])] : undefined,
    membership: diff.addMembers.includes(i.principal) ? 'granted' : diff.removeMembers.includes(i.principal) ? 'revoked' : undefined,
    locks: [
      ...lockKeys(t.groupRole, diff),
      ...(o.role.exists ? [] : [{ kind: 'role', role: t.groupRole } as const]),
      // The usage role is shared by every access in the schema: locked late (isSharedKey), and by
      // whoever joins it as well as whoever creates it, so that it is never dropped from under a join.
      ...(createUsageRole || grantUsageRoleUsage
        ? [{ kind: 'usage', role: t.usageRole } as const]
        : diff.joinRoles.includes(t.usageRole)
          ? [{ kind: 'usage', role: t.usageRole, join: true } as const]
          : []),
      ...(grantUsageRoleUsage ? [{ kind: 'schema', schema: t.schema } as const] : []),
    ],
    expect: desired,
  };
}

/** Takes away what the group role holds and drops it, when it is Steward's; nothing otherwise. */
export function planRevoke(o: AccessObservation, t: AccessTarget): RevokePlan {
  const drop = o.role.exists && o.role.comment === t.comment;
  const diff = drop ? diffGrants(EMPTY_STATE, o.state) : NONE;
  return { kind: 'revoke', drop, diff, locks: drop ? [...lockKeys(t.groupRole, diff), { kind: 'role', role: t.groupRole }] : [] };
}

/** Nothing to change: a resync that finds this takes no lock and opens no transaction. */
export function isNoop(p: AccessPlan): boolean {
  if (p.kind === 'revoke') return !p.drop;
  return !!p.blocked || (!p.createRole && !p.harden.length && !p.createUsageRole && !p.grantUsageRoleUsage && !p.expire && isEmptyDiff(p.diff));
}

/**
 * What a grant plan left undone, read from an observation made after it ran (undefined once it all
 * took): PostgreSQL lets a REVOKE of what another role granted do nothing, without even a warning.
 */
export function grantLeftUndone(o: AccessObservation, t: AccessTarget, p: GrantPlan): { diff: GrantDiff; other: string[] } | undefined {
  const other = [
    ...(o.role.exists && o.role.comment === t.comment ? [] : [`role ${t.groupRole} is not Steward's`]),
    ...(o.role.dangerousAttributes.length ? [`role ${t.groupRole} still has ${o.role.dangerousAttributes.join(', ')}`] : []),
    ...(o.usageRole.hasUsage ? [] : [`role ${t.usageRole} has no USAGE on schema ${t.schema}`]),
  ];
  const diff = diffGrants(p.expect, o.state);
  return other.length || !isEmptyDiff(diff) ? { diff, other } : undefined;
}
