// What an AccessReview reads from and changes in PostgreSQL: every grant on the tables and schemas in
// its scope (and every membership in a role holding one), in one read-only query; and the revoke of
// an out-of-band grant a reviewer decided to remove, audited as remediation in the same transaction.
// Only what the finding lists is revoked: a schema finding's privileges, not USAGE that goes with a
// table finding (see foldSchemaUsage), which leaves with the grantee's last table grant there.
import type pg from 'pg';
import type { AuditScope } from '../../audit/sink.ts';
import type { CatalogGrant, OutOfBandGrant } from '../../governance/review.ts';
import { AuditTableSink } from './audit-table.ts';
import { roleComment } from './roles.ts';
import { quoteIdent } from './sql-text.ts';
import { withSession } from './session.ts';
import { WarehouseDriver } from './warehouse-driver.ts';

// Owners' privileges are left out (an owner can grant itself anything back); PUBLIC is grantee 0.
const GRANTS_SQL = `
WITH RECURSIVE scoped AS (
  SELECT oid, nspname, nspowner, nspacl FROM pg_namespace
  WHERE ($1::text[] IS NULL AND nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'steward')) OR nspname = ANY($1::text[])
), tbl AS (
  SELECT 'table'::text AS kind, a.grantee, n.nspname::text AS schema, c.relname::text AS name, a.privilege_type::text AS privilege
  FROM pg_class c JOIN scoped n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) a
  WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND a.grantee <> c.relowner
), sch AS (
  SELECT 'schema'::text, a.grantee, NULL::text, n.nspname::text, a.privilege_type::text
  FROM scoped n, LATERAL aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner
), held AS (
  SELECT * FROM tbl UNION ALL SELECT * FROM sch
), reach(oid) AS (
  -- The roles that can use a privilege in scope: its grantees and the owners (a member of the owner
  -- role holds what the owner holds), and their members, to any depth.
  SELECT grantee FROM held WHERE grantee <> 0
  UNION SELECT c.relowner FROM pg_class c JOIN scoped n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  UNION SELECT nspowner FROM scoped
  UNION SELECT m.member FROM pg_auth_members m JOIN reach r ON m.roleid = r.oid
), mem AS (
  SELECT 'membership'::text, m.member, NULL::text, g.rolname::text, 'MEMBER'::text
  FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
  WHERE m.roleid IN (SELECT oid FROM reach)
), every AS (
  SELECT * FROM held UNION ALL SELECT * FROM mem
)
SELECT e.kind, CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE r.rolname::text END AS grantee,
  coalesce(r.rolsuper, false) AS "granteeIsSuperuser", ${roleComment('r.oid')} AS "granteeComment",
  e.schema, e.name, array_agg(DISTINCT e.privilege ORDER BY e.privilege) AS privileges
FROM every e LEFT JOIN pg_roles r ON r.oid = e.grantee
GROUP BY e.kind, e.grantee, r.rolname, r.rolsuper, r.oid, e.schema, e.name
ORDER BY 1, 2, 5, 6`;

export class PostgresReviewDriver extends WarehouseDriver {
  /** Every grant in the schemas (all but the system's and Steward's own when undefined), with Steward's login. */
  async grants(schemas: readonly string[] | undefined): Promise<{ grants: CatalogGrant[]; stewardLogin: string }> {
    return withSession(
      this.pool,
      async (session) => {
        const r = await session.client.query<CatalogGrant>(GRANTS_SQL, [schemas ?? null]);
        const who = await session.client.query<{ u: string }>('SELECT current_user::text AS u');
        return { grants: r.rows, stewardLogin: who.rows[0]!.u };
      },
      { mode: 'READ ONLY' },
    );
  }

  /** Revokes an out-of-band grant a reviewer decided to remove. Returns the statements that ran. */
  async revoke(grant: OutOfBandGrant, audit: AuditScope, details: Record<string, unknown>): Promise<string> {
    const grantee = grant.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(grant.grantee);
    return withSession(this.pool, async (session) => {
      const statements: string[] = [];
      const run = async (sql: string) => {
        await session.client.query(sql);
        statements.push(sql);
      };
      if (grant.kind === 'table') {
        await run(`REVOKE ALL ON TABLE ${quoteIdent(grant.schema!)}.${quoteIdent(grant.name)} FROM ${grantee}`);
        if (grant.schemaUsage && !(await holdsTableIn(session.client, grant.grantee, grant.schema!)))
          await run(`REVOKE USAGE ON SCHEMA ${quoteIdent(grant.schema!)} FROM ${grantee}`);
      } else if (grant.kind === 'schema') {
        const privileges = grant.privileges.filter((p) => SCHEMA_PRIVILEGES.has(p));
        if (privileges.length > 0) await run(`REVOKE ${privileges.join(', ')} ON SCHEMA ${quoteIdent(grant.name)} FROM ${grantee}`);
      } else await run(`REVOKE ${quoteIdent(grant.name)} FROM ${grantee}`);
      const statement = statements.join('; ');
      await audit.record(
        { action: 'review.remediate', resource: this.resource(`${grant.kind}:${grant.object}`), outcome: 'success', details: { ...details, statement } },
        new AuditTableSink(session),
      );
      return statement;
    });
  }
}

/** The privilege keywords a schema ACL holds (aclexplode's names): nothing else is put in a REVOKE. */
const SCHEMA_PRIVILEGES = new Set(['USAGE', 'CREATE']);

/** Whether the role (or PUBLIC) still holds a privilege on any table in the schema, other than as its owner. */
async function holdsTableIn(client: pg.ClientBase, grantee: string, schema: string): Promise<boolean> {
  const r = await client.query<{ holds: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(c.relacl) a
       WHERE n.nspname = $1 AND a.grantee <> c.relowner
         AND a.grantee = CASE WHEN $2 = 'PUBLIC' THEN 0::oid ELSE (SELECT oid FROM pg_roles WHERE rolname = $2) END
     ) AS holds`,
    [schema, grantee],
  );
  return r.rows[0]!.holds;
}
