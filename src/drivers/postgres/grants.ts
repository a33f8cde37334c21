// The PostgreSQL side of a group role: observe what it holds (from the catalog, never from memory)
// and render the SQL that closes a diff (identifiers quoted, nothing pasted). Used for DatasetAccess
// group roles and for MaskedView reader roles alike; session.ts runs it.
import type pg from 'pg';
import type { GrantDiff } from '../../governance/grants.ts';
import { EMPTY_STATE, diffGrants } from '../../governance/grants.ts';
import type { AccessObservation, AccessTarget, GrantPlan, RevokePlan, UsageRoleFacts } from '../../governance/access-plan.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from './sql-text.ts';
import type { GranteeFacts } from '../../governance/reserved.ts';
import { ROLE_FACTS_COLUMNS, roleComment, toRoleFacts } from './roles.ts';
import { prepared } from './prepared.ts';
import type { Queryable, Statement } from './session.ts';

// Everything observe() needs for one group role, in one round trip: the role, its grants, members
// and memberships, the schema, its tables, and whether the principal exists. Correlated subqueries,
// each an index lookup: the objects whose ACL names the role come from pg_shdepend (PostgreSQL
// records every ACL entry, and every ownership, against the role: what DROP OWNED reads), so only
// their ACLs are exploded, not every relation's; comments are read from pg_shdescription directly
// (shobj_description is a SQL function that looks pg_authid up by name each call). A grant observes
// three times, so this is prepared once per connection (prepared() below). Bind parameters only.
const OBSERVE_ONE_SQL = /* sql */ `
WITH g AS (SELECT * FROM pg_roles WHERE rolname = $1), u AS (SELECT * FROM pg_roles WHERE rolname = $4),
dep AS (
  SELECT DISTINCT d.classid, d.objid FROM pg_shdepend d
   WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = (SELECT oid FROM g)
     AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT
  (SELECT json_build_object('comment', ${roleComment('u.oid')},
          'has_usage', EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = $2 AND a.grantee = u.oid AND a.privilege_type = 'USAGE'))
     FROM u) AS usage_role,
  (SELECT row_to_json(x) FROM (SELECT ${roleComment('g.oid')} AS comment, rolcanlogin, rolsuper, rolcreaterole,
          rolcreatedb, rolreplication, rolbypassrls FROM g) x) AS role,
  EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2) AS schema_exists,
  (SELECT coalesce(json_agg(json_build_object('name', c.relname, 'owner', pg_get_userbyid(c.relowner)) ORDER BY c.relname), '[]')
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS tables,
  (SELECT row_to_json(x) FROM (SELECT ${ROLE_FACTS_COLUMNS} FROM pg_roles r WHERE r.rolname = $3) x) AS principal,
  (SELECT coalesce(json_agg(json_build_object('schema', n.nspname, 'table', c.relname, 'privilege', a.privilege_type) ORDER BY n.nspname, c.relname, a.privilege_type), '[]')
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
    WHERE c.oid IN (SELECT objid FROM dep WHERE classid = 'pg_class'::regclass) AND a.grantee = (SELECT oid FROM g)) AS table_privileges,
  (SELECT coalesce(json_agg(n.nspname ORDER BY n.nspname), '[]') FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
    WHERE n.oid IN (SELECT objid FROM dep WHERE classid = 'pg_namespace'::regclass) AND a.grantee = (SELECT oid FROM g) AND a.privilege_type = 'USAGE') AS schema_usage,
  (SELECT coalesce(json_agg(json_build_object('owner', pg_get_userbyid(d.defaclrole), 'schema', coalesce(n.nspname, ''), 'privilege', a.privilege_type) ORDER BY d.defaclrole, n.nspname, a.privilege_type), '[]')
     FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE d.oid IN (SELECT objid FROM dep WHERE classid = 'pg_default_acl'::regclass) AND d.defaclobjtype = 'r' AND a.grantee = (SELECT oid FROM g)) AS default_privileges,
  (SELECT coalesce(json_agg(m.rolname ORDER BY m.rolname), '[]') FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member
    WHERE am.roleid = (SELECT oid FROM g)) AS members,
  (SELECT coalesce(json_agg(r.rolname ORDER BY r.rolname), '[]') FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
    WHERE am.member = (SELECT oid FROM g)) AS member_of
`;

// The same for any number of group roles in one round trip (the idle resync's read ahead): each
// role's facts as OBSERVE_ONE_SQL reads them, set-based (every ACL exploded once and grouped by
// grantee, then joined), so reading 10,000 accesses costs one pass over the catalog, not one per
// access. The two must agree, field for field: test/integration/least-privilege.test.ts compares
// them. Bind parameters only.
const OBSERVE_MANY_SQL = /* sql */ `
WITH t AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(group_role, schema_name, principal, usage_role, i)
), g AS (
  SELECT t.i, r.oid FROM t JOIN pg_roles r ON r.rolname = t.group_role
), rel AS (
  SELECT a.grantee, json_agg(json_build_object('schema', n.nspname, 'table', c.relname, 'privilege', a.privilege_type)
           ORDER BY n.nspname, c.relname, a.privilege_type) AS list
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN LATERAL aclexplode(c.relacl) a
   WHERE c.relacl IS NOT NULL AND a.grantee IN (SELECT oid FROM g)
   GROUP BY a.grantee
), usage AS (
  SELECT a.grantee, json_agg(n.nspname ORDER BY n.nspname) AS list
    FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
   WHERE a.grantee IN (SELECT oid FROM g) AND a.privilege_type = 'USAGE'
   GROUP BY a.grantee
), defaults AS (
  SELECT a.grantee, json_agg(json_build_object('owner', pg_get_userbyid(d.defaclrole), 'schema', coalesce(n.nspname, ''), 'privilege', a.privilege_type)
           ORDER BY d.defaclrole, n.nspname, a.privilege_type) AS list
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace CROSS JOIN LATERAL aclexplode(d.defaclacl) a
   WHERE d.defaclobjtype = 'r' AND a.grantee IN (SELECT oid FROM g)
   GROUP BY a.grantee
), members AS (
  SELECT am.roleid AS oid, json_agg(m.rolname ORDER BY m.rolname) AS list
    FROM pg_auth_members am JOIN pg_roles m ON m.oid = am.member
   WHERE am.roleid IN (SELECT oid FROM g) GROUP BY am.roleid
), member_of AS (
  SELECT am.member AS oid, json_agg(r.rolname ORDER BY r.rolname) AS list
    FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid
   WHERE am.member IN (SELECT oid FROM g) GROUP BY am.member
), schemas AS (
  SELECT s.schema_name, n.oid AS nsp FROM (SELECT DISTINCT schema_name FROM t) s LEFT JOIN pg_namespace n ON n.nspname = s.schema_name
), tables AS (
  SELECT s.schema_name, json_agg(json_build_object('name', c.relname, 'owner', pg_get_userbyid(c.relowner)) ORDER BY c.relname) AS list
    FROM schemas s JOIN pg_class c ON c.relnamespace = s.nsp
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') GROUP BY s.schema_name
)
SELECT
  t.i,
  (SELECT json_build_object('comment', shobj_description(u.oid, 'pg_authid'),
          'has_usage', EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = t.schema_name AND a.grantee = u.oid AND a.privilege_type = 'USAGE'))
     FROM pg_roles u WHERE u.rolname = t.usage_role) AS usage_role,
  (SELECT row_to_json(x) FROM (SELECT shobj_description(r.oid, 'pg_authid') AS comment, rolcanlogin, rolsuper, rolcreaterole,
          rolcreatedb, rolreplication, rolbypassrls FROM pg_roles r WHERE r.oid = g.oid) x) AS role,
  s.nsp IS NOT NULL AS schema_exists,
  coalesce(tables.list, '[]') AS tables,
  (SELECT row_to_json(x) FROM (SELECT ${ROLE_FACTS_COLUMNS} FROM pg_roles r WHERE r.rolname = t.principal) x) AS principal,
  coalesce(rel.list, '[]') AS table_privileges,
  coalesce(usage.list, '[]') AS schema_usage,
  coalesce(defaults.list, '[]') AS default_privileges,
  coalesce(members.list, '[]') AS members,
  coalesce(member_of.list, '[]') AS member_of
FROM t
LEFT JOIN g ON g.i = t.i
LEFT JOIN schemas s ON s.schema_name = t.schema_name
LEFT JOIN tables ON tables.schema_name = t.schema_name
LEFT JOIN rel ON rel.grantee = g.oid
LEFT JOIN usage ON usage.grantee = g.oid
LEFT JOIN defaults ON defaults.grantee = g.oid
LEFT JOIN members ON members.oid = g.oid
LEFT JOIN member_of ON member_of.oid = g.oid
ORDER BY t.i
`;

interface ObserveRow {
  usage_role: { comment: string | null; has_usage: boolean } | null;
  role: {
    comment: string | null;
    rolcanlogin: boolean;
    rolsuper: boolean;
    rolcreaterole: boolean;
    rolcreatedb: boolean;
    rolreplication: boolean;
    rolbypassrls: boolean;
  } | null;
  schema_exists: boolean;
  tables: { name: string; owner: string }[];
  principal: (GranteeFacts & { oid: number | string }) | null;
  table_privileges: { schema: string; table: string; privilege: string }[];
  schema_usage: string[];
  default_privileges: { owner: string; schema: string; privilege: string }[];
  members: string[];
  member_of: string[];
}

type RoleTarget = Pick<AccessTarget, 'groupRole' | 'schema' | 'principal' | 'usageRole'>;

/** Reads everything the group role holds, from the catalog, in one query. */
export async function observeRole(db: Queryable, t: RoleTarget): Promise<AccessObservation> {
  return toObservation(
    (await db.query<ObserveRow>(prepared('observe_role', OBSERVE_ONE_SQL, [t.groupRole, t.schema, t.principal ?? null, t.usageRole]))).rows[0]!,
  );
}

/** observeRole for many group roles at once (the idle resync of a whole Warehouse): one query, in the targets' order. */
export async function observeRoles(db: pg.ClientBase | pg.Pool, targets: readonly RoleTarget[]): Promise<AccessObservation[]> {
  if (!targets.length) return [];
  const rows = (
    await db.query<ObserveRow>(OBSERVE_MANY_SQL, [
      targets.map((t) => t.groupRole),
      targets.map((t) => t.schema),
      targets.map((t) => t.principal ?? null),
      targets.map((t) => t.usageRole),
    ])
  ).rows;
  return rows.map(toObservation);
}

function toObservation(row: ObserveRow): AccessObservation {
  const u = row.usage_role;
  const r = row.role;
  const attrs = r
    ? {
        LOGIN: r.rolcanlogin,
        SUPERUSER: r.rolsuper,
        CREATEROLE: r.rolcreaterole,
        CREATEDB: r.rolcreatedb,
        REPLICATION: r.rolreplication,
        BYPASSRLS: r.rolbypassrls,
      }
    : {};
  return {
    role: {
      exists: r !== null,
      comment: r?.comment ?? null,
      dangerousAttributes: Object.entries(attrs)
        .filter(([, v]) => v)
        .map(([k]) => k),
    },
    usageRole: { exists: u !== null, comment: u?.comment ?? null, hasUsage: u?.has_usage ?? false },
    schemaExists: row.schema_exists,
    tables: row.tables,
    principalExists: row.principal !== null,
    ...(row.principal ? { principal: toRoleFacts(row.principal) } : {}),
    state: {
      tablePrivileges: row.table_privileges,
      schemaUsage: row.schema_usage,
      defaultPrivileges: row.default_privileges,
      members: row.members,
      memberOf: row.member_of,
    },
  };
}

export function createRoleStatements(groupRole: string, comment: string): Statement[] {
  const r = quoteIdent(groupRole);
  return [
    // NOLOGIN: nobody signs in as it. INHERIT, so it passes on its schema's usage role; any other
    // role it is made a member of is drift, and revoked.
    { sql: `CREATE ROLE ${r} NOLOGIN INHERIT`, action: 'role.create', object: `role:${groupRole}` },
    { sql: `COMMENT ON ROLE ${r} IS ${quoteLiteral(comment)}`, action: 'role.comment', object: `role:${groupRole}` },
  ];
}

export function hardenRoleStatement(groupRole: string): Statement {
  return {
    sql: `ALTER ROLE ${quoteIdent(groupRole)} NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS`,
    action: 'role.harden',
    object: `role:${groupRole}`,
  };
}

/** The schema's shared usage role: created once, holding USAGE on the schema and nothing else. */
export function usageRoleStatements(usage: UsageRoleFacts, schema: string, role: string, comment: string): Statement[] {
  const r = quoteIdent(role);
  const out: Statement[] = [];
  if (!usage.exists) {
    out.push({ sql: `CREATE ROLE ${r} NOLOGIN NOINHERIT`, action: 'usage_role.create', object: `role:${role}`, shared: true });
    out.push({ sql: `COMMENT ON ROLE ${r} IS ${quoteLiteral(comment)}`, action: 'usage_role.comment', object: `role:${role}`, shared: true });
  }
  if (!usage.hasUsage)
    out.push({ sql: `GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${r}`, action: 'usage_role.grant', object: `schema:${schema}`, shared: true });
  return out;
}

/** The schema's usage role, once no access in the schema uses it: its USAGE revoked, and it dropped. */
export function usageRoleDropStatements(schema: string, role: string): Statement[] {
  const r = quoteIdent(role);
  return [
    { sql: `REVOKE USAGE ON SCHEMA ${quoteIdent(schema)} FROM ${r}`, action: 'usage_role.revoke', object: `schema:${schema}`, shared: true },
    { sql: `DROP ROLE ${r}`, action: 'usage_role.drop', object: `role:${role}`, shared: true },
  ];
}

/** The statements that turn `actual` into `desired`: take-aways first, the new membership last. */
export function diffStatements(groupRole: string, d: GrantDiff, beforeJoining: Statement[] = []): Statement[] {
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
  // Schema statements come late: every access in a schema shares its catalog row, so the schema's lock
  // is taken just before them and held only until commit (Session.run in session.ts).
  for (const s of d.revokeUsage)
    out.push({ sql: `REVOKE USAGE ON SCHEMA ${quoteIdent(s)} FROM ${g}`, action: 'revoke.usage', object: `schema:${s}`, shared: true });
  for (const s of d.grantUsage) out.push({ sql: `GRANT USAGE ON SCHEMA ${quoteIdent(s)} TO ${g}`, action: 'grant.usage', object: `schema:${s}`, shared: true });
  out.push(...beforeJoining);
  // Joining the schema's usage role: under its (shared) lock, so it cannot be dropped meanwhile.
  for (const r of d.joinRoles) out.push({ sql: `GRANT ${quoteIdent(r)} TO ${g}`, action: 'grant.usage', object: `role:${groupRole}`, shared: true });
  // The principal joins last, once everything it is to hold is in place.
  for (const m of d.addMembers) out.push({ sql: `GRANT ${g} TO ${quoteIdent(m)}`, action: 'grant.membership', object: `role:${groupRole}` });
  return out;
}

/** The table privileges PostgreSQL knows: privilege names come from the catalog or the CRD's enum, and anything else is refused, not pasted. */
export const TABLE_PRIVILEGES: ReadonlySet<string> = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER', 'MAINTAIN']);

function byTable(ps: GrantDiff['grantTable']): Map<{ sql: string; name: string }, string[]> {
  const grouped = new Map<string, { key: { sql: string; name: string }; privileges: string[] }>();
  for (const p of ps) {
    if (!TABLE_PRIVILEGES.has(p.privilege)) throw new Error(`unexpected privilege ${JSON.stringify(p.privilege)}`);
    const name = `${p.schema}.${p.table}`;
    const entry = grouped.get(name) ?? { key: { sql: quoteQualified(p.schema, p.table), name }, privileges: [] };
    entry.privileges.push(p.privilege);
    grouped.set(name, entry);
  }
  return new Map([...grouped.values()].map((e) => [e.key, e.privileges.sort()]));
}

/**
 * Takes away what the role holds (`held`: the diff from it to nothing), then drops it. Explicit
 * REVOKEs rather than DROP OWNED BY, which needs membership in the role (Steward's login is not a
 * superuser on a managed database) and scans every dependency of the database under the table
 * locks. Anything else granted to the role out of band makes DROP ROLE fail with PostgreSQL's list
 * of what is left, which the reconciler reports.
 */
export function dropRoleStatements(groupRole: string, held: GrantDiff): Statement[] {
  return [...diffStatements(groupRole, held), { sql: `DROP ROLE ${quoteIdent(groupRole)}`, action: 'role.drop', object: `role:${groupRole}` }];
}

/** The SQL of a DatasetAccess plan, in the order it runs: the expiring membership first, the new one last. */
export function accessStatements(t: AccessTarget, p: GrantPlan | RevokePlan): { expiry: Statement[]; rest: Statement[] } {
  if (p.kind === 'revoke') return { expiry: [], rest: p.drop ? dropRoleStatements(t.groupRole, p.diff) : [] };
  if (p.blocked) return { expiry: [], rest: [] };
  const usage: Statement[] = usageRoleStatements(
    { exists: !p.createUsageRole, comment: null, hasUsage: !p.grantUsageRoleUsage },
    t.schema,
    t.usageRole,
    t.usageRoleComment,
  );
  return {
    expiry: p.expire ? diffStatements(t.groupRole, { ...diffGrants(EMPTY_STATE, EMPTY_STATE), removeMembers: [p.expire] }) : [],
    rest: [
      ...(p.createRole ? createRoleStatements(t.groupRole, t.comment) : []),
      ...(p.harden.length ? [hardenRoleStatement(t.groupRole)] : []),
      ...diffStatements(t.groupRole, p.diff, usage),
    ],
  };
}
