// What a DatasetAccess should hold in the warehouse, and the difference from what it holds. Pure:
// the driver observes the catalog and renders SQL; this module only names and compares sets.
import { createHash } from 'node:crypto';

export const ROLE_PREFIX = 'stw_';
const MAX_ROLE_BYTES = 63;

/**
 * A role Steward owns for one object: readable (<prefix><namespace>_<name>) and unique (a hash of
 * namespace/name, since "a-b/c" and "a/b-c" would otherwise read alike), at most 63 bytes.
 */
export function objectRoleName(prefix: string, namespace: string, name: string): string {
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8);
  const readable = `${namespace}_${name}`.replace(/[^a-z0-9_]/g, '_');
  const room = MAX_ROLE_BYTES - prefix.length - hash.length - 1;
  return `${prefix}${readable.slice(0, room)}_${hash}`;
}

/** The group role Steward owns for one DatasetAccess: stw_<namespace>_<name>_<hash>. */
export function groupRoleName(namespace: string, name: string): string {
  return objectRoleName(ROLE_PREFIX, namespace, name);
}

/** The role that owns a MaskedView and alone reads its sources. */
export const ownerRoleName = (namespace: string, name: string): string => objectRoleName('stw_mv_', namespace, name);
/** The role that holds SELECT on a MaskedView (and USAGE on its schema); the readers are its members. */
export const readerRoleName = (namespace: string, name: string): string => objectRoleName('stw_mvr_', namespace, name);

/**
 * One shared role per schema holds USAGE on it, and every group role in that schema is a member.
 * The schema's ACL then grows by one entry per schema, not per access (PostgreSQL cannot hold more
 * than ~2,400 ACL entries on a row), and accesses never contend on the schema's catalog row. Roles
 * are cluster-wide, so the name is keyed by database too: a role never carries USAGE across databases.
 */
export function usageRoleName(database: string, schema: string): string {
  const hash = createHash('sha256').update(`${database}/${schema}`).digest('hex').slice(0, 8);
  const room = MAX_ROLE_BYTES - `${ROLE_PREFIX}usage__`.length - hash.length;
  return `${ROLE_PREFIX}usage_${schema.slice(0, room)}_${hash}`;
}

export function usageRoleComment(database: string, schema: string): string {
  return `managed by steward: USAGE on schema ${database}.${schema} for Steward's group roles`;
}

/** The comment Steward puts on roles it owns: how it tells its roles from everyone else's. */
export function ownershipComment(namespace: string, name: string): string {
  return `managed by steward: DatasetAccess ${namespace}/${name}`;
}

export interface TablePrivilege {
  schema: string;
  table: string;
  privilege: string;
}

export interface DefaultPrivilege {
  owner: string;
  schema: string;
  privilege: string;
}

/** Everything a group role holds that Steward manages. */
export interface GrantState {
  tablePrivileges: TablePrivilege[];
  schemaUsage: string[];
  /** ALTER DEFAULT PRIVILEGES for table owners, so future tables are covered (tables: ["*"]). */
  defaultPrivileges: DefaultPrivilege[];
  /** Roles that are members of the group role: the principal, and nobody else. */
  members: string[];
  /** Roles the group role is itself a member of: only its schema's usage role. */
  memberOf: string[];
}

export const EMPTY_STATE: GrantState = { tablePrivileges: [], schemaUsage: [], defaultPrivileges: [], members: [], memberOf: [] };

export interface DesiredInput {
  schema: string;
  tables: readonly string[];
  /** Every table of the schema now, with owners: what "*" covers. */
  existingTables: readonly { name: string; owner: string }[];
  privileges: readonly string[];
  /** The principal, or none when the access has expired. */
  member?: string;
  /** The schema's usage role, through which the group role gets USAGE. */
  usageRole: string;
}

export function isAllTables(tables: readonly string[]): boolean {
  return tables.length === 1 && tables[0] === '*';
}

export function desiredState(input: DesiredInput): GrantState {
  const all = isAllTables(input.tables);
  const tables = all ? input.existingTables.map((t) => t.name) : [...input.tables];
  const owners = all ? [...new Set(input.existingTables.map((t) => t.owner))].sort() : [];
  return {
    tablePrivileges: tables.flatMap((table) => input.privileges.map((privilege) => ({ schema: input.schema, table, privilege }))),
    schemaUsage: [],
    defaultPrivileges: owners.flatMap((owner) => input.privileges.map((privilege) => ({ owner, schema: input.schema, privilege }))),
    members: input.member ? [input.member] : [],
    memberOf: [input.usageRole],
  };
}

export interface GrantDiff {
  grantTable: TablePrivilege[];
  revokeTable: TablePrivilege[];
  grantUsage: string[];
  revokeUsage: string[];
  grantDefault: DefaultPrivilege[];
  revokeDefault: DefaultPrivilege[];
  addMembers: string[];
  removeMembers: string[];
  leaveRoles: string[];
  joinRoles: string[];
}

const tpKey = (p: TablePrivilege) => `${p.schema}.${p.table}:${p.privilege}`;
const dpKey = (p: DefaultPrivilege) => `${p.owner}@${p.schema}:${p.privilege}`;

function minus<T>(a: readonly T[], b: readonly T[], key: (x: T) => string): T[] {
  const have = new Set(b.map(key));
  const seen = new Set<string>();
  return a.filter((x) => {
    const k = key(x);
    if (have.has(k) || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function diffGrants(desired: GrantState, actual: GrantState): GrantDiff {
  return {
    grantTable: minus(desired.tablePrivileges, actual.tablePrivileges, tpKey),
    revokeTable: minus(actual.tablePrivileges, desired.tablePrivileges, tpKey),
    grantUsage: minus(desired.schemaUsage, actual.schemaUsage, String),
    revokeUsage: minus(actual.schemaUsage, desired.schemaUsage, String),
    grantDefault: minus(desired.defaultPrivileges, actual.defaultPrivileges, dpKey),
    revokeDefault: minus(actual.defaultPrivileges, desired.defaultPrivileges, dpKey),
    addMembers: minus(desired.members, actual.members, String),
    removeMembers: minus(actual.members, desired.members, String),
    leaveRoles: minus(actual.memberOf, desired.memberOf, String),
    joinRoles: minus(desired.memberOf, actual.memberOf, String),
  };
}

export function isEmptyDiff(d: GrantDiff): boolean {
  return Object.values(d).every((list: unknown[]) => list.length === 0);
}

/**
 * A warehouse object a transaction changes, as an advisory lock key. GRANT and REVOKE on one object
 * from two sessions fail with "tuple concurrently updated", so each is locked for the transaction
 * that changes it, in one global order (Session in drivers/postgres/session.ts): schemas last.
 */
export type LockKey =
  | { kind: 'role'; role: string }
  | { kind: 'table'; schema: string; table: string }
  | { kind: 'defacl'; owner: string; schema: string }
  /**
   * A schema's shared usage role: shared like the schema, so locked late like it. `join`: the
   * transaction only joins it, and takes the lock in shared mode: joiners do not wait for one another
   * (each inserts its own membership row), only for whoever creates or drops the role (exclusive).
   */
  | { kind: 'usage'; role: string; join?: boolean }
  | { kind: 'schema'; schema: string };

/**
 * Keys shared by every access in a schema (its usage role, the schema itself): taken last, just
 * before the first statement that needs them, so they are held only until commit.
 */
export function isSharedKey(k: LockKey): boolean {
  return k.kind === 'schema' || k.kind === 'usage';
}

/** The key's name, hashed into the advisory lock: the same text every Steward version has used. */
export function lockName(k: LockKey): string {
  switch (k.kind) {
    case 'role':
    case 'usage':
      return `role:${k.role}`;
    case 'table':
      return `table:${k.schema}.${k.table}`;
    case 'defacl':
      return `defacl:${k.owner}@${k.schema}`;
    case 'schema':
      return `schema:${k.schema}`;
  }
}

/** schema.table as a table lock key. */
export function tableLock(qualified: string): LockKey {
  const [schema, table] = qualified.split('.') as [string, string];
  return { kind: 'table', schema, table };
}

/** The warehouse objects a diff touches, as lock keys (each once). */
export function lockKeys(groupRole: string, d: GrantDiff): LockKey[] {
  const keys = new Map<string, LockKey>();
  const add = (k: LockKey) => keys.set(lockName(k), k);
  for (const p of [...d.grantTable, ...d.revokeTable]) add({ kind: 'table', schema: p.schema, table: p.table });
  for (const s of [...d.grantUsage, ...d.revokeUsage]) add({ kind: 'schema', schema: s });
  for (const p of [...d.grantDefault, ...d.revokeDefault]) add({ kind: 'defacl', owner: p.owner, schema: p.schema });
  if (d.addMembers.length || d.removeMembers.length || d.leaveRoles.length || d.joinRoles.length) add({ kind: 'role', role: groupRole });
  return [...keys.values()];
}

/**
 * The order locks are taken in, given those a transaction already holds: every key but the shared
 * ones first, sorted; the shared ones (usage roles and schemas: every access in a schema shares
 * them, so they are held for the shortest time) last, sorted. A key already held is not taken
 * again. A key that is not shared, asked for once a shared one is held, would break the order (and
 * so the promise that two transactions never deadlock): refused with LockOrderError, for the caller
 * to take its keys earlier.
 */
export function lockOrder(held: ReadonlySet<string>, sharedHeld: boolean, keys: readonly LockKey[]): LockKey[] {
  const fresh = new Map<string, LockKey>();
  for (const k of keys) if (!held.has(lockName(k))) fresh.set(lockName(k), k);
  const byName = (a: LockKey, b: LockKey) => (lockName(a) < lockName(b) ? -1 : 1);
  const objects = [...fresh.values()].filter((k) => !isSharedKey(k)).sort(byName);
  const shared = [...fresh.values()].filter(isSharedKey).sort(byName);
  if (objects.length && sharedHeld) throw new LockOrderError(objects.map(lockName));
  return [...objects, ...shared];
}

export class LockOrderError extends Error {
  constructor(names: string[]) {
    super(`lock order: ${names.join(', ')} asked for after a shared (schema or usage role) lock; take every other key first`);
    this.name = 'LockOrderError';
  }
}

/** A short human summary of a diff, for events and audit details. */
export function describeDiff(d: GrantDiff): string[] {
  const out: string[] = [];
  const tp = (ps: TablePrivilege[]) => ps.map((p) => `${p.privilege} on ${p.schema}.${p.table}`).join(', ');
  if (d.grantTable.length) out.push(`missing ${tp(d.grantTable)}`);
  if (d.revokeTable.length) out.push(`extra ${tp(d.revokeTable)}`);
  if (d.grantUsage.length) out.push(`missing USAGE on schema ${d.grantUsage.join(', ')}`);
  if (d.revokeUsage.length) out.push(`extra USAGE on schema ${d.revokeUsage.join(', ')}`);
  if (d.grantDefault.length) out.push(`missing default privileges for ${d.grantDefault.map(dpKey).join(', ')}`);
  if (d.revokeDefault.length) out.push(`extra default privileges for ${d.revokeDefault.map(dpKey).join(', ')}`);
  if (d.addMembers.length) out.push(`missing member ${d.addMembers.join(', ')}`);
  if (d.removeMembers.length) out.push(`extra member ${d.removeMembers.join(', ')}`);
  if (d.leaveRoles.length) out.push(`group role is a member of ${d.leaveRoles.join(', ')}`);
  if (d.joinRoles.length) out.push(`group role is not a member of ${d.joinRoles.join(', ')}`);
  return out;
}
