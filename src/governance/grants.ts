// What a DatasetAccess should hold in the warehouse, and the difference from what it holds. Pure:
// the driver observes the catalog and renders SQL; this module only compares sets.
import { createHash } from 'node:crypto';

export const ROLE_PREFIX = 'stw_';
const MAX_ROLE_BYTES = 63;

/**
 * The group role Steward owns for one DatasetAccess: readable (stw_<namespace>_<name>) and unique
 * (a hash of namespace/name, since "a-b/c" and "a/b-c" would otherwise read alike), at most 63 bytes.
 */
export function groupRoleName(namespace: string, name: string): string {
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 8);
  const readable = `${namespace}_${name}`.replace(/[^a-z0-9_]/g, '_');
  const room = MAX_ROLE_BYTES - ROLE_PREFIX.length - hash.length - 1;
  return `${ROLE_PREFIX}${readable.slice(0, room)}_${hash}`;
}

/** The comment Steward puts on roles it owns: how it tells its roles from everyone else's. */
export function ownershipComment(namespace: string, name: string): string {
  return `managed by steward: DatasetAccess ${namespace}/${name}`;
}

export interface TablePrivilege {
  table: string;
  privilege: string;
}

export interface GrantState {
  /** Privileges of the group role on tables of the schema. */
  tablePrivileges: TablePrivilege[];
  schemaUsage: boolean;
  /** Table owners for whom ALTER DEFAULT PRIVILEGES covers future tables (tables: ["*"]). */
  defaultPrivileges: { owner: string; privilege: string }[];
  members: string[];
}

export interface DesiredInput {
  tables: readonly string[] | '*';
  /** Every table in the schema now, and their owners: needed for "*". */
  existingTables: readonly { name: string; owner: string }[];
  privileges: readonly string[];
  /** The principal, or none when the access is expired, denied or being removed. */
  member?: string;
}

export function desiredState(input: DesiredInput): GrantState {
  const all = input.tables === '*';
  const tables = all ? input.existingTables.map((t) => t.name) : [...input.tables];
  const owners = all ? [...new Set(input.existingTables.map((t) => t.owner))] : [];
  return {
    tablePrivileges: tables.flatMap((table) => input.privileges.map((privilege) => ({ table, privilege }))),
    schemaUsage: true,
    defaultPrivileges: owners.flatMap((owner) => input.privileges.map((privilege) => ({ owner, privilege }))),
    members: input.member ? [input.member] : [],
  };
}

export interface GrantDiff {
  grantTable: TablePrivilege[];
  revokeTable: TablePrivilege[];
  grantUsage: boolean;
  grantDefault: { owner: string; privilege: string }[];
  revokeDefault: { owner: string; privilege: string }[];
  addMembers: string[];
  removeMembers: string[];
}

const tp = (p: TablePrivilege) => `${p.table}\u0000${p.privilege}`;
const dp = (p: { owner: string; privilege: string }) => `${p.owner}\u0000${p.privilege}`;

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
    grantTable: minus(desired.tablePrivileges, actual.tablePrivileges, tp),
    revokeTable: minus(actual.tablePrivileges, desired.tablePrivileges, tp),
    grantUsage: desired.schemaUsage && !actual.schemaUsage,
    grantDefault: minus(desired.defaultPrivileges, actual.defaultPrivileges, dp),
    revokeDefault: minus(actual.defaultPrivileges, desired.defaultPrivileges, dp),
    addMembers: minus(desired.members, actual.members, String),
    removeMembers: minus(actual.members, desired.members, String),
  };
}

export function isEmptyDiff(d: GrantDiff): boolean {
  return !d.grantUsage && [d.grantTable, d.revokeTable, d.grantDefault, d.revokeDefault, d.addMembers, d.removeMembers].every((x) => x.length === 0);
}
