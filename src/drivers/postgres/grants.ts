// The PostgreSQL side of a DatasetAccess: observe what a group role holds (from the catalog, never
// from memory), render the SQL that closes a diff (identifiers quoted, nothing pasted), and apply it
// in one transaction under advisory locks on exactly the objects it touches.
import type pg from 'pg';
import type { GrantDiff, GrantState } from '../../governance/grants.ts';
import { lockKeys } from '../../governance/grants.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from './identifiers.ts';

export interface RoleFacts {
  exists: boolean;
  comment: string | null;
  /** Attributes a group role must never have. */
  dangerousAttributes: string[];
}

export interface Observation {
  role: RoleFacts;
  state: GrantState;
  schemaExists: boolean;
  /** Tables (and views) of the schema, with owners. */
  tables: { name: string; owner: string }[];
  principalExists: boolean;
}

/**
 * Reads everything the group role holds, from the catalog. The queries run one after another: on a
 * single client (inside a transaction) pg does not allow them to overlap.
 */
export async function observe(db: pg.ClientBase | pg.Pool, groupRole: string, schema: string, principal: string | undefined): Promise<Observation> {
  const role = await db.query<{ oid: number; comment: string | null; rolcanlogin: boolean; rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolreplication: boolean; rolbypassrls: boolean }>(
      `SELECT r.oid, shobj_description(r.oid, 'pg_authid') AS comment, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls
         FROM pg_roles r WHERE r.rolname = $1`, [groupRole]);
  const schemaRow = await db.query<{ oid: number }>('SELECT oid FROM pg_namespace WHERE nspname = $1', [schema]);
  const tables = await db.query<{ name: string; owner: string }>(
      `SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname`, [schema]);
  const principalRow = principal ? await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [principal]) : { rowCount: 0 };
  const r = role.rows[0];
  const base = { schemaExists: (schemaRow.rowCount ?? 0) > 0, tables: tables.rows, principalExists: (principalRow.rowCount ?? 0) > 0 };
  if (!r) {
    return { ...base, role: { exists: false, comment: null, dangerousAttributes: [] }, state: { tablePrivileges: [], schemaUsage: [], defaultPrivileges: [], members: [], memberOf: [] } };
  }
  const attrs = { LOGIN: r.rolcanlogin, SUPERUSER: r.rolsuper, CREATEROLE: r.rolcreaterole, CREATEDB: r.rolcreatedb, REPLICATION: r.rolreplication, BYPASSRLS: r.rolbypassrls };
  const tp = await db.query<{ schema: string; table: string; privilege: string }>(
      `SELECT n.nspname AS schema, c.relname AS table, a.privilege_type AS privilege
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE a.grantee = $1`, [r.oid]);
  const usage = await db.query<{ schema: string }>(
      `SELECT n.nspname AS schema FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
        WHERE a.grantee = $1 AND a.privilege_type = 'USAGE'`, [r.oid]);
  const defaults = await db.query<{ owner: string; schema: string | null; privilege: string }>(
      `SELECT pg_get_userbyid(d.defaclrole) AS owner, n.nspname AS schema, a.privilege_type AS privilege
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace CROSS JOIN LATERAL aclexplode(d.defaclacl) a
        WHERE d.defaclobjtype = 'r' AND a.grantee = $1`, [r.oid]);
  const members = await db.query<{ name: string }>('SELECT m.rolname AS name FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member WHERE am.roleid = $1', [r.oid]);
  const memberOf = await db.query<{ name: string }>('SELECT g.rolname AS name FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid WHERE am.member = $1', [r.oid]);
  return {
    ...base,
    role: { exists: true, comment: r.comment, dangerousAttributes: Object.entries(attrs).filter(([, v]) => v).map(([k]) => k) },
    state: {
      tablePrivileges: tp.rows,
      schemaUsage: usage.rows.map((u) => u.schema),
      defaultPrivileges: defaults.rows.map((d) => ({ owner: d.owner, schema: d.schema ?? '', privilege: d.privilege })),
      members: members.rows.map((m) => m.name),
      memberOf: memberOf.rows.map((m) => m.name),
    },
  };
}

/** One statement and what it does, for the audit trail and `steward plan`. */
export interface Statement {
  sql: string;
  action: string;
  /** The warehouse object it changes, e.g. curated.customer_sales or role:stw_… */
  object: string;
}

export function createRoleStatements(groupRole: string, comment: string): Statement[] {
  const r = quoteIdent(groupRole);
  return [
    // NOLOGIN: nobody signs in as it; NOINHERIT: it gains nothing from roles it might be granted.
    { sql: `CREATE ROLE ${r} NOLOGIN NOINHERIT`, action: 'role.create', object: `role:${groupRole}` },
    { sql: `COMMENT ON ROLE ${r} IS ${quoteLiteral(comment)}`, action: 'role.comment', object: `role:${groupRole}` },
  ];
}

export function hardenRoleStatement(groupRole: string): Statement {
  return { sql: `ALTER ROLE ${quoteIdent(groupRole)} NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS NOINHERIT`, action: 'role.harden', object: `role:${groupRole}` };
}

/** The statements that turn `actual` into `desired`, grants before memberships, revokes first. */
export function diffStatements(groupRole: string, d: GrantDiff): Statement[] {
  const g = quoteIdent(groupRole);
  const out: Statement[] = [];
  // Take away first: an extra member loses access before anything is added.
  for (const m of d.removeMembers) out.push({ sql: `REVOKE ${g} FROM ${quoteIdent(m)}`, action: 'revoke.membership', object: `role:${groupRole}` });
  for (const r of d.leaveRoles) out.push({ sql: `REVOKE ${quoteIdent(r)} FROM ${g}`, action: 'revoke.role', object: `role:${groupRole}` });
  for (const [table, privileges] of byTable(d.revokeTable)) {
    out.push({ sql: `REVOKE ${privileges.join(', ')} ON TABLE ${table.sql} FROM ${g}`, action: 'revoke.privileges', object: table.name });
  }
  for (const p of d.revokeDefault) {
    out.push({
      sql: `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(p.owner)}${p.schema ? ` IN SCHEMA ${quoteIdent(p.schema)}` : ''} REVOKE ${p.privilege} ON TABLES FROM ${g}`,
      action: 'revoke.default_privileges',
      object: `${p.schema}.*`,
    });
  }
  for (const s of d.revokeUsage) out.push({ sql: `REVOKE USAGE ON SCHEMA ${quoteIdent(s)} FROM ${g}`, action: 'revoke.usage', object: `schema:${s}` });
  for (const s of d.grantUsage) out.push({ sql: `GRANT USAGE ON SCHEMA ${quoteIdent(s)} TO ${g}`, action: 'grant.usage', object: `schema:${s}` });
  for (const [table, privileges] of byTable(d.grantTable)) {
    out.push({ sql: `GRANT ${privileges.join(', ')} ON TABLE ${table.sql} TO ${g}`, action: 'grant.privileges', object: table.name });
  }
  for (const p of d.grantDefault) {
    out.push({
      sql: `ALTER DEFAULT PRIVILEGES FOR ROLE ${quoteIdent(p.owner)} IN SCHEMA ${quoteIdent(p.schema)} GRANT ${p.privilege} ON TABLES TO ${g}`,
      action: 'grant.default_privileges',
      object: `${p.schema}.*`,
    });
  }
  for (const m of d.addMembers) out.push({ sql: `GRANT ${g} TO ${quoteIdent(m)}`, action: 'grant.membership', object: `role:${groupRole}` });
  return out;
}

const PRIVILEGE_WORDS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN']);

function byTable(ps: GrantDiff['grantTable']): Map<{ sql: string; name: string }, string[]> {
  const grouped = new Map<string, { key: { sql: string; name: string }; privileges: string[] }>();
  for (const p of ps) {
    // Privilege names come from the catalog or the CRD's enum; anything else is refused, not pasted.
    if (!PRIVILEGE_WORDS.has(p.privilege)) throw new Error(`unexpected privilege ${JSON.stringify(p.privilege)}`);
    const name = `${p.schema}.${p.table}`;
    const entry = grouped.get(name) ?? { key: { sql: quoteQualified(p.schema, p.table), name }, privileges: [] };
    entry.privileges.push(p.privilege);
    grouped.set(name, entry);
  }
  return new Map([...grouped.values()].map((e) => [e.key, e.privileges.sort()]));
}

export function dropRoleStatements(groupRole: string): Statement[] {
  const g = quoteIdent(groupRole);
  return [
    // Revokes every privilege and default privilege the role holds in this database.
    { sql: `DROP OWNED BY ${g}`, action: 'revoke.all', object: `role:${groupRole}` },
    { sql: `DROP ROLE ${g}`, action: 'role.drop', object: `role:${groupRole}` },
  ];
}

/** Takes the advisory locks for the objects a change touches, in sorted order (no deadlocks). */
export async function lockObjects(client: pg.ClientBase, keys: readonly string[]): Promise<void> {
  for (const key of [...keys].sort()) {
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('steward:' || $1, 0))", [key]);
  }
}

export { lockKeys };

