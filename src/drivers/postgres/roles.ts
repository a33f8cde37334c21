// What the catalog says about the roles a spec names, for governance/reserved.ts to judge. Read-only.
import type pg from 'pg';
import type { GranteeFacts } from '../../governance/reserved.ts';

/** The columns of one role's facts, over pg_roles aliased r; shared with observe() (grants.ts). */
export const ROLE_FACTS_COLUMNS = `r.rolname AS name, r.oid::int8 AS oid, r.rolsuper AS superuser, r.rolbypassrls AS "bypassRls",
  r.rolcreaterole AS "createRole", shobj_description(r.oid, 'pg_authid') AS comment,
  (r.rolname = current_user OR r.rolname = session_user) AS "isSteward"`;

export function toRoleFacts(row: GranteeFacts & { oid: number | string }): GranteeFacts {
  return { ...row, oid: Number(row.oid) };
}

/** The facts of the roles that exist, by name. */
export async function describeRoles(db: pg.ClientBase | pg.Pool, names: readonly string[]): Promise<Map<string, GranteeFacts>> {
  const r = await db.query<GranteeFacts>(`SELECT ${ROLE_FACTS_COLUMNS} FROM pg_roles r WHERE r.rolname = ANY($1::text[])`, [names]);
  return new Map(r.rows.map((row) => [row.name, toRoleFacts(row)]));
}
