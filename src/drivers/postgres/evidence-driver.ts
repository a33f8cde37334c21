// What `steward report` asks a PostgreSQL Warehouse, each in a READ ONLY transaction: who can read
// a table (has_table_privilege for every role, PUBLIC from the ACL), what a reader sees of a view
// (as that role, SET LOCAL ROLE), whether connections use TLS (pg_stat_ssl), and what the audit
// table holds. Each method returns the SQL it ran with its rows: the report shows the check as run.
import { PostgresReviewDriver } from './review-driver.ts';
import { quoteIdent } from './sql-text.ts';
import { withSession } from './session.ts';

export interface Checked<T> {
  sql: string;
  rows: T;
}

export interface TableReader {
  role: string;
  superuser: boolean;
  owner: boolean;
  comment: string | null;
}

const READERS_SQL = `SELECT r.rolname::text AS role, r.rolsuper AS superuser, (r.oid = c.relowner) AS owner,
  shobj_description(r.oid, 'pg_authid') AS comment
FROM pg_class c CROSS JOIN pg_roles r
WHERE c.oid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) AND r.rolname NOT LIKE 'pg\\_%'
  AND has_table_privilege(r.oid, c.oid, 'SELECT')
ORDER BY 1`;
const PUBLIC_SQL = `SELECT EXISTS (SELECT 1 FROM pg_class c, LATERAL aclexplode(c.relacl) a
  WHERE c.oid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) AND a.grantee = 0 AND a.privilege_type = 'SELECT') AS public,
  to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL AS exists`;
const PREDEFINED_SQL = `SELECT r.rolname::text AS role FROM pg_roles r
  WHERE r.rolname IN ('pg_read_all_data') AND EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid)`;

const TLS_SQL = `SELECT a.usename::text AS "user", s.ssl, s.version, a.pid = pg_backend_pid() AS mine
FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
WHERE a.datname = current_database() AND a.backend_type = 'client backend'
ORDER BY a.pid`;

const AUDIT_RECORDS_SQL = `SELECT kind, namespace, name, action, count(*)::int AS n FROM steward.audit_log
WHERE outcome = 'success' AND action IN ('grant.privileges', 'grant.membership', 'view.replace', 'view.grants')
GROUP BY 1, 2, 3, 4`;
const AUDIT_INCOMPLETE_SQL = `SELECT count(*)::int AS total,
  count(*) FILTER (WHERE request_id = '' OR actor = '' OR action = '' OR resource = '' OR outcome = '')::int AS incomplete
FROM steward.audit_log`;

export class PostgresEvidenceDriver extends PostgresReviewDriver {
  /** Every role that can SELECT from the table (through membership too), whether PUBLIC can, and pg_read_all_data when it has members. */
  async tableReaders(schema: string, table: string): Promise<Checked<{ exists: boolean; readers: TableReader[]; public: boolean; readAllData: boolean }>> {
    return withSession(
      this.pool,
      async (session) => {
        const pub = await session.client.query<{ public: boolean; exists: boolean }>(PUBLIC_SQL, [schema, table]);
        const readers = await session.client.query<TableReader>(READERS_SQL, [schema, table]);
        const predefined = await session.client.query(PREDEFINED_SQL);
        return {
          sql: `${READERS_SQL.replace(/\s+/g, ' ')}; -- $1 = ${schema}, $2 = ${table}`,
          rows: { exists: pub.rows[0]!.exists, readers: readers.rows, public: pub.rows[0]!.public, readAllData: (predefined.rowCount ?? 0) > 0 },
        };
      },
      { mode: 'READ ONLY' },
    );
  }

  /** Whether each role can SELECT from the table: the negative proof, one row per role. */
  async canRead(schema: string, table: string, roles: readonly string[]): Promise<Checked<{ role: string; can: boolean | null }[]>> {
    const sql = `SELECT r AS role, CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
        THEN has_table_privilege(r, quote_ident($1) || '.' || quote_ident($2), 'SELECT') END AS can
      FROM unnest($3::text[]) AS r`;
    return withSession(
      this.pool,
      async (session) => ({
        sql: `${sql.replace(/\s+/g, ' ')}; -- $1 = ${schema}, $2 = ${table}, $3 = {${roles.join(',')}}`,
        rows: (await session.client.query<{ role: string; can: boolean | null }>(sql, [schema, table, [...roles]])).rows,
      }),
      { mode: 'READ ONLY' },
    );
  }

  /**
   * What `role` sees of the view's columns (up to `limit` rows), read as that role; and, read as
   * Steward, how many of those values also appear in each column's raw source. The raw values
   * themselves never leave this function.
   */
  async maskedSample(
    view: { schema: string; name: string },
    role: string,
    columns: readonly { name: string; source?: { schema: string; table: string; column: string } }[],
    unmaskedRoles: readonly string[],
    limit = 3,
  ): Promise<Checked<{ sample: Record<string, unknown>[]; rawMatches: Record<string, number | null>; readAs: string }>> {
    const list = columns.map((c) => quoteIdent(c.name)).join(', ');
    const sql = `SET LOCAL ROLE ${quoteIdent(role)}; SELECT ${list} FROM ${quoteIdent(view.schema)}.${quoteIdent(view.name)} LIMIT ${limit}; RESET ROLE`;
    return withSession(
      this.pool,
      async (session) => {
        // As the view's reader role when Steward's login may SET ROLE to it (a superuser may); else as
        // Steward's own login, which is just as unprivileged for the view, when it is in none of the
        // unmaskedRoles: checked first, since a member would see raw values and prove nothing.
        let readAs = role;
        await session.client.query('SAVEPOINT steward_sample');
        try {
          await session.client.query(`SET LOCAL ROLE ${quoteIdent(role)}`);
        } catch {
          await session.client.query('ROLLBACK TO SAVEPOINT steward_sample');
          const me = await session.client.query<{ me: string; privileged: boolean }>(
            `SELECT current_user::text AS me, EXISTS (SELECT 1 FROM unnest($1::text[]) u JOIN pg_roles r ON r.rolname = u WHERE pg_has_role(current_user, r.oid, 'MEMBER')) AS privileged`,
            [[...unmaskedRoles]],
          );
          if (me.rows[0]!.privileged)
            throw new Error(`cannot SET ROLE ${role}, and Steward's login ${me.rows[0]!.me} is in an unmaskedRole: no unprivileged reading`);
          readAs = me.rows[0]!.me;
        }
        const sample = (await session.client.query(`SELECT ${list} FROM ${quoteIdent(view.schema)}.${quoteIdent(view.name)} LIMIT ${limit}`)).rows;
        if (readAs === role) await session.client.query('RESET ROLE');
        const rawMatches: Record<string, number | null> = {};
        for (const c of columns) {
          const seen = sample
            .map((r) => r[c.name])
            .filter((v) => v !== null && v !== undefined)
            .map(String);
          if (!c.source || seen.length === 0) {
            rawMatches[c.name] = null;
            continue;
          }
          const r = await session.client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${quoteIdent(c.source.schema)}.${quoteIdent(c.source.table)} WHERE ${quoteIdent(c.source.column)}::text = ANY($1::text[])`,
            [seen],
          );
          rawMatches[c.name] = r.rows[0]!.n;
        }
        return {
          sql: readAs === role ? sql : sql.replace(`SET LOCAL ROLE ${quoteIdent(role)}; `, `-- as ${readAs}: `).replace('; RESET ROLE', ''),
          rows: { sample, rawMatches, readAs },
        };
      },
      { mode: 'READ ONLY' },
    );
  }

  /** Every client connection to the database, with TLS or not (this one included). */
  async connections(): Promise<Checked<{ user: string; ssl: boolean; version: string | null; mine: boolean }[]>> {
    return withSession(this.pool, async (session) => ({ sql: TLS_SQL.replace(/\s+/g, ' '), rows: (await session.client.query(TLS_SQL)).rows }), {
      mode: 'READ ONLY',
    });
  }

  /** How many rotations of the SecretRotation finished, from the audit table. */
  async rotationCount(namespace: string, name: string): Promise<number> {
    return withSession(
      this.pool,
      async (session) =>
        (
          await session.client.query<{ n: number }>(
            `SELECT count(DISTINCT request_id)::int AS n FROM steward.audit_log WHERE kind = 'SecretRotation' AND namespace = $1 AND name = $2 AND action = 'rotation.finish' AND outcome = 'success'`,
            [namespace, name],
          )
        ).rows[0]!.n,
      { mode: 'READ ONLY' },
    );
  }

  /** The grant records per object, and how many records lack one of request_id, actor, action, resource, outcome. */
  async auditFacts(): Promise<
    Checked<{ grants: { kind: string; namespace: string | null; name: string; action: string; n: number }[]; total: number; incomplete: number }>
  > {
    return withSession(
      this.pool,
      async (session) => {
        const grants = await session.client.query(AUDIT_RECORDS_SQL);
        const counts = await session.client.query<{ total: number; incomplete: number }>(AUDIT_INCOMPLETE_SQL);
        return {
          sql: `${AUDIT_RECORDS_SQL.replace(/\s+/g, ' ')}; ${AUDIT_INCOMPLETE_SQL.replace(/\s+/g, ' ')}`,
          rows: { grants: grants.rows, total: counts.rows[0]!.total, incomplete: counts.rows[0]!.incomplete },
        };
      },
      { mode: 'READ ONLY' },
    );
  }
}
