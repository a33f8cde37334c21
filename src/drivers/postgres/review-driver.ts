// What an AccessReview reads from and changes in PostgreSQL: every grant on the tables and schemas in
// its scope (and every membership in a role holding one), in one read-only query; and the revoke of
// an out-of-band grant a reviewer decided to remove, audited as remediation in the same transaction.
import type { AuditScope } from '../../audit/sink.ts';
import type { CatalogGrant, OutOfBandGrant } from '../../governance/review.ts';
import { AuditTableSink } from './audit-table.ts';
import { roleComment } from './roles.ts';
import { quoteIdent } from './sql-text.ts';
import { withSession } from './session.ts';
import { WarehouseDriver } from './warehouse-driver.ts';

// Owners' privileges are left out (an owner can grant itself anything back); PUBLIC is grantee 0.
const GRANTS_SQL = `
WITH scoped AS (
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
), mem AS (
  SELECT 'membership'::text, m.member, NULL::text, g.rolname::text, 'MEMBER'::text
  FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
  WHERE m.roleid IN (SELECT grantee FROM held WHERE grantee <> 0)
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
      'READ ONLY',
    );
  }

  /** Revokes an out-of-band grant a reviewer decided to remove. Returns the statement that ran. */
  async revoke(grant: OutOfBandGrant, audit: AuditScope, details: Record<string, unknown>): Promise<string> {
    const grantee = grant.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(grant.grantee);
    const sql =
      grant.kind === 'table'
        ? `REVOKE ALL ON TABLE ${quoteIdent(grant.schema!)}.${quoteIdent(grant.name)} FROM ${grantee}`
        : grant.kind === 'schema'
          ? `REVOKE ALL ON SCHEMA ${quoteIdent(grant.name)} FROM ${grantee}`
          : `REVOKE ${quoteIdent(grant.name)} FROM ${grantee}`;
    await withSession(this.pool, async (session) => {
      await session.client.query(sql);
      await audit.record(
        { action: 'review.remediate', resource: this.resource(`${grant.kind}:${grant.object}`), outcome: 'success', details: { ...details, statement: sql } },
        new AuditTableSink(session.client),
      );
    });
    return sql;
  }
}
