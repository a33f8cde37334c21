// The logins of a SecretRotation: what the catalog says about the role and its alternate login, the
// alternate login made and kept a member of the role, a password set (as a SCRAM verifier, with
// statement logging off for the change), a login tested over the Warehouse's own TLS settings, and a
// login retired (an unknown password, VALID UNTIL now, its sessions ended). Every change is audited
// in the transaction that makes it. No password, and no verifier, is ever in a record or an error.
import pg from 'pg';
import type { AuditScope } from '../../audit/sink.ts';
import type { GranteeFacts } from '../../governance/reserved.ts';
import { AuditTableSink } from './audit-table.ts';
import { classifyConnectionError, poolConfig, type ConnectionFailure, type ConnectionSettings } from './connection.ts';
import { ROLE_FACTS_COLUMNS, roleComment, toRoleFacts } from './roles.ts';
import { generatePassword, scramVerifier } from './scram.ts';
import { quoteIdent, quoteLiteral } from './sql-text.ts';
import { withSession, type Session } from './session.ts';
import { WarehouseDriver } from './warehouse-driver.ts';

export interface LoginFacts {
  role?: GranteeFacts & {
    canLogin: boolean;
    /** A role the login is a member of (directly or not) that no rotation may hand out: a superuser, CREATEROLE, BYPASSRLS, predefined or Steward's login. */
    refusedMembership: string | null;
  };
  alternate?: { comment: string | null; member: boolean; setsRole: boolean; canLogin: boolean };
}

export type LoginTest = { ok: true } | { ok: false; failure: ConnectionFailure; message: string };

const OBSERVE_SQL = `
SELECT (SELECT row_to_json(x) FROM (
          SELECT ${ROLE_FACTS_COLUMNS}, r.rolcanlogin AS "canLogin",
                 (SELECT g.rolname FROM pg_roles g
                   WHERE g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'MEMBER')
                     AND (g.rolsuper OR g.rolcreaterole OR g.rolbypassrls OR g.oid < 16384 OR g.rolname = current_user OR g.rolname = session_user)
                   ORDER BY g.rolname LIMIT 1) AS "refusedMembership"
            FROM pg_roles r WHERE r.rolname = $1) x) AS role,
       (SELECT row_to_json(y) FROM (
          SELECT ${roleComment('a.oid')} AS comment, a.rolcanlogin AS "canLogin",
                 EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid AND g.rolname = $1) AS member,
                 coalesce(('role=' || $1) = ANY (a.rolconfig), false) AS "setsRole"
            FROM pg_roles a WHERE a.rolname = $2) y) AS alternate`;

export class PostgresLoginDriver extends WarehouseDriver {
  private readonly settings: ConnectionSettings;

  constructor(pool: pg.Pool, warehouse: string, settings: ConnectionSettings) {
    super(pool, warehouse);
    this.settings = settings;
  }

  async observe(role: string, alternate: string): Promise<LoginFacts> {
    const r = await this.pool.query<{ role: (LoginFacts['role'] & { oid: number | string }) | null; alternate: LoginFacts['alternate'] | null }>(OBSERVE_SQL, [
      role,
      alternate,
    ]);
    const row = r.rows[0]!;
    return {
      ...(row.role ? { role: { ...row.role, ...toRoleFacts(row.role) } } : {}),
      ...(row.alternate ? { alternate: row.alternate } : {}),
    };
  }

  /**
   * The alternate login, made (without a password: it cannot log in until one is set) and kept a
   * member of the role, with `SET role` to it, so it holds everything the role holds, now and later,
   * and what it creates is owned by the role. Returns what ran.
   */
  async ensureAlternate(role: string, alternate: string, comment: string, facts: LoginFacts, audit: AuditScope): Promise<string[]> {
    const statements: string[] = [];
    if (!facts.alternate) statements.push(`CREATE ROLE ${quoteIdent(alternate)} LOGIN`, `COMMENT ON ROLE ${quoteIdent(alternate)} IS ${quoteLiteral(comment)}`);
    if (!facts.alternate?.member) statements.push(`GRANT ${quoteIdent(role)} TO ${quoteIdent(alternate)}`);
    if (!facts.alternate?.setsRole) statements.push(`ALTER ROLE ${quoteIdent(alternate)} SET role = ${quoteLiteral(role)}`);
    if (!statements.length) return [];
    await withSession(this.pool, async (session) => {
      for (const sql of statements) await session.client.query(sql);
      await audit.record(
        { action: 'login.prepare', resource: this.resource(`role:${alternate}`), outcome: 'success', details: { role, statements } },
        new AuditTableSink(session),
      );
    });
    return statements;
  }

  /** Sets the login's password (its SCRAM verifier) and lifts any VALID UNTIL, with statement logging off for the change. */
  async setPassword(login: string, password: string, audit: AuditScope, requestId: string): Promise<void> {
    await withSession(this.pool, async (session) => {
      const logged = await quietStatementLog(session);
      await session.client.query(`ALTER ROLE ${quoteIdent(login)} PASSWORD ${quoteLiteral(scramVerifier(password))} VALID UNTIL 'infinity'`);
      await audit.record(
        { action: 'login.set_password', resource: this.resource(`role:${login}`), outcome: 'success', details: { rotation: requestId, statementLog: logged } },
        new AuditTableSink(session),
      );
    });
  }

  /** Ends a login: a password nobody knows, VALID UNTIL now, and its sessions terminated. Returns how many sessions were ended. */
  async retire(login: string, audit: AuditScope, requestId: string): Promise<number> {
    return withSession(this.pool, async (session) => {
      const logged = await quietStatementLog(session);
      await session.client.query(`ALTER ROLE ${quoteIdent(login)} PASSWORD ${quoteLiteral(scramVerifier(generatePassword(48)))} VALID UNTIL '-infinity'`);
      const ended = await session.client.query<{ n: string }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`,
        [login],
      );
      const sessions = Number(ended.rows[0]?.n ?? 0);
      await audit.record(
        {
          action: 'login.retire',
          resource: this.resource(`role:${login}`),
          outcome: 'success',
          details: { rotation: requestId, sessionsEnded: sessions, statementLog: logged },
        },
        new AuditTableSink(session),
      );
      return sessions;
    });
  }

  /** Logs in as `login` with `password` over the Warehouse's TLS settings and asks who it is. */
  async test(login: string, password: string): Promise<LoginTest> {
    const client = new pg.Client({ ...poolConfig({ ...this.settings, username: login, password }, 1), application_name: 'steward-rotation-test' });
    try {
      await client.connect();
      const r = await client.query<{ u: string }>('SELECT session_user::text AS u');
      if (r.rows[0]?.u !== login) return { ok: false, failure: 'ConnectionFailed', message: `logged in as ${r.rows[0]?.u}, not ${login}` };
      return { ok: true };
    } catch (err) {
      const message = (err instanceof Error ? err.message : String(err)).split(password).join('[REDACTED]');
      return { ok: false, failure: classifyConnectionError(err), message };
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The connection facts a target publishes beside the credential. */
  endpoint(): Pick<ConnectionSettings, 'host' | 'port' | 'database' | 'sslMode'> {
    const { host, port, database, sslMode } = this.settings;
    return { host, port, database, sslMode };
  }
}

/**
 * `SET LOCAL log_statement = 'none'`, so the ALTER ROLE is not written to the server log even where
 * log_statement is 'all' (the verifier is not the password, but it is not for a log either). It needs
 * SET on the parameter (superuser, or GRANT SET ON PARAMETER log_statement, PostgreSQL 15): without it
 * the change goes ahead, and the audit record says the statement may have been logged.
 */
async function quietStatementLog(session: Session): Promise<'suppressed' | 'not suppressed: grant SET ON PARAMETER log_statement to Steward'> {
  try {
    await session.attempt(() => session.client.query(`SET LOCAL log_statement = 'none'`));
    return 'suppressed';
  } catch {
    return 'not suppressed: grant SET ON PARAMETER log_statement to Steward';
  }
}
