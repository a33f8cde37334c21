// What the catalog says about the roles a spec names, for governance/reserved.ts to judge. Read-only.
import type pg from 'pg';
import type { GranteeFacts } from '../../governance/reserved.ts';

/**
 * A role's comment, by its oid: what shobj_description(oid, 'pg_authid') returns, read from
 * pg_shdescription's index directly (the function looks pg_authid up by name at every call).
 */
export const roleComment = (oid: string) => `(SELECT description FROM pg_shdescription WHERE objoid = ${oid} AND classoid = 'pg_authid'::regclass)`;

/** The columns of one role's facts, over pg_roles aliased r; shared with observe() (grants.ts). */
export const ROLE_FACTS_COLUMNS = `r.rolname AS name, r.oid::int8 AS oid, r.rolsuper AS superuser, r.rolbypassrls AS "bypassRls",
  r.rolcreaterole AS "createRole", ${roleComment('r.oid')} AS comment,
  (r.rolname = current_user OR r.rolname = session_user) AS "isSteward"`;

export function toRoleFacts(row: GranteeFacts & { oid: number | string }): GranteeFacts {
  return { ...row, oid: Number(row.oid) };
}

/** The facts of the roles that exist, by name. */
export async function describeRoles(db: pg.ClientBase | pg.Pool, names: readonly string[]): Promise<Map<string, GranteeFacts>> {
  const r = await db.query<GranteeFacts>(`SELECT ${ROLE_FACTS_COLUMNS} FROM pg_roles r WHERE r.rolname = ANY($1::text[])`, [names]);
  return new Map(r.rows.map((row) => [row.name, toRoleFacts(row)]));
}
