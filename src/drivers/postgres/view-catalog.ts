// What the catalog says about a MaskedView, and the statements that change it: the owner role that
// alone reads the sources, the hash key table, who can read a source directly (SourcesLocked), the
// view itself, and its reader role. view-driver.ts runs them in one transaction.
import type pg from 'pg';
import { InsufficientPrivilege } from './checked.ts';
import { quoteIdent, quoteLiteral, quoteQualified } from './sql-text.ts';
import { TABLE_PRIVILEGES, createRoleStatements, diffStatements, hardenRoleStatement, observeRole } from './grants.ts';
import type { Session, Statement } from './session.ts';
import { EMPTY_STATE, describeDiff, diffGrants, isEmptyDiff, lockKeys, type GrantDiff, type GrantState, type LockKey } from '../../governance/grants.ts';
import type { AccessObservation } from '../../governance/access-plan.ts';

const KEYS_STATEMENTS = [
  'CREATE TABLE IF NOT EXISTS steward.mask_keys (view_name text PRIMARY KEY, key bytea NOT NULL)',
  'REVOKE ALL ON steward.mask_keys FROM PUBLIC',
];

export interface ViewFacts {
  exists: boolean;
  comment: string | null;
  /** 'v' for a view; anything else (a table, a materialised view) is not one Steward made. */
  relkind?: string;
  owner?: string;
  securityBarrier?: boolean;
  /** sha256 of pg_get_viewdef, as Steward's sessions print it (search_path pinned): what the view does. */
  definitionSha?: string;
}

export async function observeView(client: pg.ClientBase | pg.Pool, schema: string, name: string): Promise<ViewFacts> {
  const r = await client.query<{ comment: string | null; relkind: string; owner: string; security_barrier: boolean; definition_sha: string | null }>(
    `SELECT obj_description(c.oid, 'pg_class') AS comment, c.relkind, pg_get_userbyid(c.relowner) AS owner,
            coalesce('security_barrier=true' = ANY(c.reloptions), false) AS security_barrier,
            CASE WHEN c.relkind = 'v' THEN encode(sha256(convert_to(pg_get_viewdef(c.oid), 'UTF8')), 'hex') END AS definition_sha
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const row = r.rows[0];
  if (!row) return { exists: false, comment: null };
  return {
    exists: true,
    comment: row.comment,
    relkind: row.relkind,
    owner: row.owner,
    securityBarrier: row.security_barrier,
    definitionSha: row.definition_sha ?? undefined,
  };
}

/**
 * Why a schema is no safe place for a masked view, or []: a login that may act as the schema's
 * owner could drop the view and put its own under the name, and one that may create in it could
 * put objects beside it. Counted for every login (superusers, who can do anything anyway, and
 * Steward's own login aside) that is the owner or a holder of CREATE, or a member of one (SET ROLE
 * reaches it, whatever INHERIT says), or any login at all when PUBLIC holds CREATE. Roles that
 * cannot log in act only through their members, who are counted instead: so a NOLOGIN owner whose
 * only member is Steward's login, or Steward's MaskedView owner roles, are no problem.
 */
export async function viewSchemaProblems(client: pg.ClientBase | pg.Pool, schema: string): Promise<string[]> {
  // One round trip: whether the schema exists, and each login that reaches it (as its owner if it
  // does both: that is the graver), owners first.
  const r = await client.query<{ exists: boolean; reach: { login: string; holder: string | null; owns: boolean }[] }>(
    `WITH n AS (SELECT oid, nspowner, nspacl FROM pg_namespace WHERE nspname = $1),
          holders AS (SELECT n.nspowner AS role, true AS owns FROM n
                      UNION SELECT a.grantee, false FROM n, aclexplode(n.nspacl) a WHERE a.privilege_type = 'CREATE'),
          reach AS (SELECT DISTINCT ON (l.rolname) l.rolname::text AS login,
                           CASE WHEN h.role = 0 THEN NULL ELSE pg_get_userbyid(h.role)::text END AS holder, h.owns
                      FROM pg_roles l JOIN holders h ON h.role = 0 OR pg_has_role(l.oid, h.role, 'MEMBER')
                     WHERE l.rolcanlogin AND NOT l.rolsuper AND l.rolname <> current_user AND l.rolname <> session_user
                     ORDER BY l.rolname, h.owns DESC, 2)
     SELECT EXISTS (SELECT 1 FROM n) AS exists,
            coalesce((SELECT json_agg(reach ORDER BY NOT reach.owns, reach.login) FROM reach), '[]') AS reach`,
    [schema],
  );
  const { exists, reach } = r.rows[0]!;
  if (!exists) return [`schema ${schema} does not exist`];
  return reach.map((row) =>
    row.owns
      ? `${row.login} can act as ${row.holder}, the owner of schema ${schema}${row.holder === row.login ? '' : ' (a member of it)'}, and so drop the view and create another under its name`
      : `${row.login} can create in schema ${schema}${row.holder === null ? ' (PUBLIC may)' : row.holder === row.login ? '' : ` (through ${row.holder})`}`,
  );
}

/** The primary keys and unique indexes of tables (valid, not partial, not on expressions), by schema.table. */
export async function uniqueKeys(client: pg.ClientBase | pg.Pool, tables: readonly string[]): Promise<Map<string, string[][]>> {
  const r = await client.query<{ tbl: string; columns: string[] }>(
    `SELECT t.tbl, ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns
       FROM unnest($1::text[]) AS t(tbl)
       JOIN pg_index i ON i.indrelid = to_regclass(t.tbl)
      WHERE i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL`,
    [tables],
  );
  const keys = new Map<string, string[][]>();
  for (const row of r.rows) keys.set(row.tbl, [...(keys.get(row.tbl) ?? []), row.columns]);
  return keys;
}

/** The owner role: NOLOGIN, the only role (besides the tables' owners) Steward lets read the sources. */
export async function ensureOwnerRole(session: Session, role: string, comment: string): Promise<void> {
  const r = await session.client.query<{ comment: string | null }>(`SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`, [
    role,
  ]);
  if (r.rowCount === 0) {
    await session.check(`CREATE ROLE ${quoteIdent(role)} NOLOGIN NOINHERIT`, `role ${role}`);
    await session.check(`COMMENT ON ROLE ${quoteIdent(role)} IS ${quoteLiteral(comment)}`, `role ${role}`);
  } else if (r.rows[0]!.comment !== comment) {
    throw new Error(`role ${role} exists but Steward did not create it`);
  }
  // Handing the view to the role (ALTER VIEW ... OWNER) needs membership in it, unless Steward's
  // login is a superuser (which it should not be; see docs/warehouse.md).
  const member = await session.client.query<{ ok: boolean }>(`SELECT pg_has_role(current_user, $1, 'MEMBER') AS ok`, [role]);
  if (!member.rows[0]!.ok) await session.check(`GRANT ${quoteIdent(role)} TO CURRENT_USER`, `role ${role}`);
}

/**
 * Revokes what a MaskedView's role was granted (on tables and schemas, as the catalog says) and
 * drops it; its members lose it with it.
 * Explicit REVOKEs rather than DROP OWNED BY, which needs more than a CREATEROLE login has. If
 * something else was granted to the role out of band, DROP ROLE fails and says what is left.
 */
export async function dropManagedRole(session: Session, role: string): Promise<string[]> {
  const held = await session.client.query<{ kind: string; schema: string; name: string }>(
    `SELECT 'table' AS kind, n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
      WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)
     UNION
     SELECT 'schema', n.nspname, n.nspname FROM pg_namespace n, aclexplode(n.nspacl) a
      WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
    [role],
  );
  const revokes: Statement[] = held.rows.map((h) =>
    h.kind === 'table'
      ? {
          sql: `REVOKE ALL ON TABLE ${quoteQualified(h.schema, h.name)} FROM ${quoteIdent(role)}`,
          action: 'revoke.privileges',
          object: `${h.schema}.${h.name}`,
        }
      : { sql: `REVOKE ALL ON SCHEMA ${quoteIdent(h.name)} FROM ${quoteIdent(role)}`, action: 'revoke.usage', object: `schema ${h.name}`, shared: true },
  );
  // The caller holds the locks (the view's, in the one order): none are named here.
  return session.run([...revokes, { sql: `DROP ROLE ${quoteIdent(role)}`, action: 'role.drop', object: `role:${role}` }], []);
}

/** The schema pgcrypto is installed in, if it is. Read-only. */
async function findPgcryptoSchema(client: pg.ClientBase | pg.Pool): Promise<string | undefined> {
  const r = await client.query<{ nspname: string }>(
    `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto'`,
  );
  return r.rows[0]?.nspname;
}

/** Where pgcrypto's hmac() lives, if pgcrypto is installed. Read-only. */
export async function findHmacFunction(client: pg.ClientBase | pg.Pool): Promise<string | undefined> {
  const schema = await findPgcryptoSchema(client);
  return schema ? `${quoteIdent(schema)}."hmac"` : undefined;
}

/** The SELECT the view reads its hash key with (one row, column `key`): names the key's row, never the key. */
export function hashKeyQuery(viewName: string): string {
  return `SELECT "k"."key" FROM "steward"."mask_keys" AS "k" WHERE "k"."view_name" = ${quoteLiteral(viewName)}`;
}

/**
 * Installs pgcrypto if needed and a random 32-byte key for the view, created once and kept (the hash
 * is stable across re-creates), readable by the view's owner only. Returns where hmac() lives.
 */
export async function ensureHashKey(session: Session, viewName: string, owner: string): Promise<string> {
  const { client } = session;
  // Look before creating: CREATE ... IF NOT EXISTS checks the privilege to create first, and an
  // administrator may have made the schema (steward audit-table) or installed pgcrypto already.
  const has = await client.query<{ schema: boolean; pgcrypto: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'steward') AS schema, EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto') AS pgcrypto",
  );
  // In public, where it went before Steward pinned search_path to pg_catalog (connection.ts).
  if (!has.rows[0]!.pgcrypto) await session.check('CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public', 'extension pgcrypto');
  if (!has.rows[0]!.schema) await session.check('CREATE SCHEMA IF NOT EXISTS steward', 'schema steward');
  for (const statement of KEYS_STATEMENTS) await session.check(statement, 'steward.mask_keys');
  const pgcrypto = (await findPgcryptoSchema(client))!;
  await client.query(
    `INSERT INTO steward.mask_keys (view_name, key) VALUES ($1, ${quoteIdent(pgcrypto)}."gen_random_bytes"(32)) ON CONFLICT (view_name) DO NOTHING`,
    [viewName],
  );
  await session.check(`GRANT USAGE ON SCHEMA steward TO ${quoteIdent(owner)}`, 'schema steward');
  await session.check(`GRANT SELECT ON steward.mask_keys TO ${quoteIdent(owner)}`, 'steward.mask_keys');
  return `${quoteIdent(pgcrypto)}."hmac"`;
}

export interface Exposure {
  role: string;
  table: string;
}

/**
 * Who can read a source table directly, counting PUBLIC and role membership (has_table_privilege):
 * every reader, and every other role except superusers, the table's owner, the owner roles of
 * Steward's MaskedViews, Steward's own user, and members of the unmasked roles.
 */
export async function sourceExposure(
  client: pg.ClientBase | pg.Pool,
  tables: string[],
  readers: string[],
  unmasked: string[],
  owner: string,
): Promise<Exposure[]> {
  const r = await client.query<{ role: string; tbl: string }>(
    `SELECT r.rolname AS role, t.tbl
       FROM unnest($1::text[]) AS t(tbl)
       CROSS JOIN pg_roles r
      WHERE has_table_privilege(r.oid, t.tbl, 'SELECT')
        AND (r.rolname = ANY($2) OR (
              NOT r.rolsuper
          AND r.rolname NOT LIKE 'pg\\_%'
          AND r.rolname <> $4 AND r.rolname <> current_user
          -- other MaskedViews' owner roles read sources only to serve their own masked views
          AND coalesce(shobj_description(r.oid, 'pg_authid'), '') NOT LIKE 'managed by steward: owner of MaskedView %'
          AND r.oid <> (SELECT relowner FROM pg_class WHERE oid = t.tbl::regclass)
          AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) u(name) JOIN pg_roles ur ON ur.rolname = u.name WHERE pg_has_role(r.oid, ur.oid, 'MEMBER'))))
      ORDER BY 2, 1`,
    [tables, readers, unmasked, owner],
  );
  return r.rows.map((x) => ({ role: x.role, table: x.tbl }));
}

export async function tablesMissing(client: pg.ClientBase | pg.Pool, tables: string[]): Promise<string[]> {
  const r = await client.query<{ tbl: string }>(`SELECT t.tbl FROM unnest($1::text[]) AS t(tbl) WHERE to_regclass(t.tbl) IS NULL`, [tables]);
  return r.rows.map((x) => x.tbl);
}

export function createViewStatements(schema: string, name: string, select: string, owner: string, sources: string[], exists: boolean): Statement[] {
  const view = quoteQualified(schema, name);
  const o = quoteIdent(owner);
  const viewName = `${schema}.${name}`;
  // The view's schema and its sources' are locked by the caller before anything runs (the view is
  // created in its schema first): no statement here names a schema for Session.run to lock late.
  return [
    ...(exists ? [{ sql: `DROP VIEW ${view}`, action: 'view.drop', object: viewName }] : []),
    { sql: `CREATE VIEW ${view} WITH (security_barrier = true) AS ${select}`, action: 'view.create', object: `schema ${schema}` },
    ...[...new Set(sources.map((t) => t.split('.')[0]!))].map((s) => ({
      sql: `GRANT USAGE ON SCHEMA ${quoteIdent(s)} TO ${o}`,
      action: 'grant.usage',
      object: `schema ${s}`,
    })),
    ...sources.map((t) => ({
      sql: `GRANT SELECT ON TABLE ${quoteQualified(t.split('.')[0]!, t.split('.')[1]!)} TO ${o}`,
      action: 'grant.privileges',
      object: t,
    })),
    // A view's new owner must be allowed to create in its schema.
    { sql: `GRANT CREATE ON SCHEMA ${quoteIdent(schema)} TO ${o}`, action: 'grant.create', object: `schema ${schema}` },
    { sql: `ALTER VIEW ${view} OWNER TO ${o}`, action: 'view.owner', object: viewName },
  ];
}

/** The comment that marks the view as Steward's (set once the definition it records exists). */
export function commentViewStatement(schema: string, name: string, comment: string): Statement {
  return { sql: `COMMENT ON VIEW ${quoteQualified(schema, name)} IS ${quoteLiteral(comment)}`, action: 'view.comment', object: `${schema}.${name}` };
}

/** The view's grants to others than its owner (e.g. a DatasetAccess on it), to carry across a re-create. */
export async function viewGrants(client: pg.ClientBase | pg.Pool, schema: string, name: string): Promise<{ grantee: string; privilege: string }[]> {
  const r = await client.query<{ grantee: string; privilege: string }>(
    `SELECT pg_get_userbyid(a.grantee) AS grantee, a.privilege_type AS privilege FROM pg_class c, aclexplode(c.relacl) a
      WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner AND a.grantee <> 0`,
    [`${quoteIdent(schema)}.${quoteIdent(name)}`],
  );
  return r.rows;
}

export function regrantStatements(schema: string, name: string, grants: { grantee: string; privilege: string }[], owner: string): Statement[] {
  return grants
    .filter((g) => g.grantee !== owner && TABLE_PRIVILEGES.has(g.privilege))
    .map((g) => ({
      sql: `GRANT ${g.privilege} ON ${quoteQualified(schema, name)} TO ${quoteIdent(g.grantee)}`,
      action: 'grant.privileges',
      object: `${schema}.${name}`,
    }));
}

/** What a view's reader role holds: SELECT on the view, USAGE on its schema, the readers as members. */
function readerRoleState(schema: string, name: string, members: string[]): GrantState {
  return { tablePrivileges: [{ schema, table: name, privilege: 'SELECT' }], schemaUsage: [schema], defaultPrivileges: [], members, memberOf: [] };
}

/** The reader role as the catalog has it: no usage role to observe (''), it holds USAGE on the view's schema itself. */
export function observeReaderRole(db: pg.ClientBase | pg.Pool, schema: string, role: string): Promise<AccessObservation> {
  return observeRole(db, { groupRole: role, schema, usageRole: '' });
}

/** Every lock setReaders may take for the view's reader role, whoever its readers are, from an observation of it: to take first. */
export function readerRoleLocks(seen: AccessObservation, schema: string, name: string, role: string): LockKey[] {
  const diff = diffGrants(readerRoleState(schema, name, []), seen.role.exists ? seen.state : EMPTY_STATE);
  return [{ kind: 'role', role }, { kind: 'table', schema, table: name }, ...lockKeys(role, diff)];
}

/**
 * Whether the reader role already is what setReaders would make it, from observations alone: then
 * an idle resync opens no transaction. `direct` are the former readers still granted SELECT on the view itself.
 */
export function readerRoleSettled(seen: AccessObservation, schema: string, name: string, readers: string[], direct: string[]): boolean {
  return (
    seen.role.exists && !seen.role.dangerousAttributes.length && isEmptyDiff(diffGrants(readerRoleState(schema, name, readers), seen.state)) && !direct.length
  );
}

/** What setReaders did, and what the reader role still holds beyond its view that Steward may not take. */
export interface ReaderGrants {
  ran: string[];
  /** Non-empty: the readers were removed (fail closed) until that is revoked. */
  heldElsewhere: string[];
}

/** The former readers still granted SELECT on the view itself (an earlier Steward did that). */
export async function directGrantees(db: pg.ClientBase | pg.Pool, schema: string, name: string, formerReaders: readonly string[]): Promise<string[]> {
  return (await viewGrants(db, schema, name)).filter((g) => g.privilege === 'SELECT' && formerReaders.includes(g.grantee)).map((g) => g.grantee);
}

/**
 * Readers reach the view through its reader role, a group role like a DatasetAccess's and closed
 * with the same diff: it holds SELECT on the view and USAGE on the view's schema, and `readers` are
 * its members (none while the sources are exposed). Anything else is drift and is taken away: other
 * members, roles it was made a member of, other privileges. What it was granted on other tables or
 * schemas may take the grantor to revoke; if Steward may not, its members would read that through
 * the role, so the readers are removed instead (fail closed) and `heldElsewhere` says what is left.
 * Taking a reader out is one REVOKE of its membership, and nothing Steward granted outlives the
 * view: the role is dropped with it. A direct SELECT on the view that an earlier Steward granted a
 * reader (one of `formerReaders`) is revoked: the role stands in for it. Grants others made (a
 * DatasetAccess on the view) are not the MaskedView's to take. Reads first: a settled role changes
 * nothing and takes no lock.
 */
export async function setReaders(
  session: Session,
  schema: string,
  name: string,
  role: string,
  comment: string,
  readers: string[],
  formerReaders: string[],
): Promise<ReaderGrants> {
  const { client } = session;
  const view = quoteQualified(schema, name);
  const look = () => observeReaderRole(client, schema, role);
  const seen = await look();
  if (seen.role.exists && seen.role.comment !== comment) throw new Error(`role ${role} exists but Steward did not create it`);
  const desired = (members: string[]): GrantState => readerRoleState(schema, name, members);
  // Split the diff: what is on the view and its schema, the members, and the roles it is in, Steward
  // can always change (it owns the view; CREATEROLE covers memberships); what is elsewhere it may not.
  const onView = (d: GrantDiff): GrantDiff => ({
    ...d,
    revokeTable: d.revokeTable.filter((p) => p.schema === schema && p.table === name),
    revokeUsage: [],
    revokeDefault: [],
  });
  const elsewhere = (d: GrantDiff): GrantDiff => ({
    ...diffGrants(EMPTY_STATE, EMPTY_STATE),
    revokeTable: d.revokeTable.filter((p) => p.schema !== schema || p.table !== name),
    revokeUsage: d.revokeUsage,
    revokeDefault: d.revokeDefault,
  });
  const direct = await directGrantees(client, schema, name, formerReaders);
  if (readerRoleSettled(seen, schema, name, readers, direct)) return { ran: [], heldElsewhere: [] };

  // In the one lock order; a caller that already holds schema locks took these first (readerRoleLocks).
  const locks = readerRoleLocks(seen, schema, name, role);
  const full = diffGrants(desired(readers), seen.role.exists ? seen.state : EMPTY_STATE);
  const ran = await session.run(
    [...(seen.role.exists ? [] : createRoleStatements(role, comment)), ...(seen.role.dangerousAttributes.length ? [hardenRoleStatement(role)] : [])],
    [...locks, ...lockKeys(role, full)],
  );
  // Elsewhere first, under a savepoint: a REVOKE PostgreSQL refuses must not undo the rest.
  const away = diffStatements(role, elsewhere(full));
  if (away.length) {
    try {
      ran.push(...(await session.attempt(() => session.run(away, locks))));
    } catch (e) {
      if (!(e instanceof InsufficientPrivilege)) throw e;
    }
  }
  // Read the catalog again, as DatasetAccess does: a REVOKE of what another role granted can do
  // nothing without even a warning.
  const now = (await look()).state;
  const heldElsewhere = describeDiff(elsewhere(diffGrants(desired(readers), now)));
  const members = heldElsewhere.length ? [] : readers;
  const core = onView(diffGrants(desired(members), now));
  ran.push(
    ...(await session.run(
      [
        ...direct.map((g) => ({ sql: `REVOKE SELECT ON ${view} FROM ${quoteIdent(g)}`, action: 'revoke.privileges', object: `${schema}.${name}` })),
        ...diffStatements(role, core),
      ],
      [...locks, ...lockKeys(role, core)],
    )),
  );
  const left = [
    ...describeDiff(onView(diffGrants(desired(members), (await look()).state))),
    ...(await directGrantees(client, schema, name, formerReaders)).map((g) => `SELECT on ${schema}.${name} to ${g}`),
  ];
  if (left.length) throw new InsufficientPrivilege(`role:${role}`, `PostgreSQL left it unchanged (${left.join('; ')}); was it granted by another role?`);
  return { ran, heldElsewhere };
}
