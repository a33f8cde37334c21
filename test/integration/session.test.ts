// The Session pipelines: what it sends without waiting goes out back to back, on Steward's own pool
// (TLS, the pinned settings, pipeline mode), and is answered in order. These tests hold it to what
// its callers rely on: the queries really share one round trip, the first failure is the one
// reported and nothing of the transaction is left, and a GRANT PostgreSQL declines (a warning, not
// an error) is still caught, on the statement it was about, when others were in flight with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { poolConfig } from '../../src/drivers/postgres/connection.ts';
import { InsufficientPrivilege } from '../../src/drivers/postgres/checked.ts';
import { withSession } from '../../src/drivers/postgres/session.ts';
import { AuditTableSink, ensureAuditTable } from '../../src/drivers/postgres/audit-table.ts';
import type { AuditRecord } from '../../src/audit/record.ts';
import { randomPassword, stackCa, unique, withPg } from './harness.ts';

const LOGIN = unique('sess_login').replace(/-/g, '_');
const GRANTEE = unique('sess_grantee').replace(/-/g, '_');
const CREATED = unique('sess_created').replace(/-/g, '_');
const SCHEMA = unique('sess').replace(/-/g, '_');
const AUDITED = unique('sess_audited').replace(/-/g, '_');
const PW = randomPassword();

function stewardPool(username = process.env.PGUSER!, password = process.env.PGPASSWORD!): pg.Pool {
  return new pg.Pool(
    poolConfig(
      { host: 'localhost', port: Number(process.env.PGPORT), database: process.env.PGDATABASE!, sslMode: 'verify-full', ca: stackCa(), username, password },
      2,
    ),
  );
}

const roleExists = (name: string) => withPg(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount === 1);

beforeAll(async () => {
  // A login that is not a superuser: SELECT on mine with the grant option (it may pass it on), on
  // theirs without it (PostgreSQL only warns when it tries).
  await withPg((c) =>
    c.query(`
      CREATE ROLE ${LOGIN} LOGIN CREATEROLE PASSWORD '${PW}';
      CREATE ROLE ${GRANTEE} NOLOGIN;
      CREATE SCHEMA ${SCHEMA};
      CREATE TABLE ${SCHEMA}.mine (x int);
      CREATE TABLE ${SCHEMA}.theirs (x int);
      GRANT USAGE ON SCHEMA ${SCHEMA} TO ${LOGIN};
      GRANT SELECT ON ${SCHEMA}.mine TO ${LOGIN} WITH GRANT OPTION;
      GRANT SELECT ON ${SCHEMA}.theirs TO ${LOGIN};
    `),
  );
});

afterAll(async () => {
  await withPg((c) =>
    c.query(`DROP SCHEMA ${SCHEMA} CASCADE; DROP ROLE IF EXISTS ${CREATED}; DROP ROLE IF EXISTS ${AUDITED}; DROP ROLE ${GRANTEE}; DROP ROLE ${LOGIN};`),
  );
});

describe('Session (pipelined)', () => {
  it('sends BEGIN, a lock and a read before the first answer comes back: one round trip', async () => {
    const pool = stewardPool();
    try {
      const events: string[] = [];
      const answer = await withSession(
        pool,
        async (session) => {
          // Every write to the socket from here on, against every piece of an answer that comes back.
          type Socket = { write: (...a: unknown[]) => boolean; on: (e: string, f: () => void) => void; off: (e: string, f: () => void) => void };
          const stream = (session as unknown as { db: { connection: { stream: Socket } } }).db.connection.stream;
          const write = stream.write.bind(stream);
          const onData = () => events.push('data');
          stream.write = (...a: unknown[]) => {
            events.push('write');
            return write(...a);
          };
          stream.on('data', onData);
          session.sendLock([{ kind: 'role', role: 'stw_session_test' }]);
          const read = await session.query<{ n: number }>({ text: 'SELECT $1::int AS n', values: [7] });
          stream.write = write;
          stream.off('data', onData);
          return read.rows[0]!.n;
        },
        { pipelineBegin: true },
      );
      expect(answer).toBe(7);
      // The lock and the read were both written before anything came back (BEGIN before the hook).
      expect(events.filter((e) => e === 'write').length).toBeGreaterThanOrEqual(2);
      expect(events.lastIndexOf('write')).toBeLessThan(events.indexOf('data'));
    } finally {
      await pool.end();
    }
  });

  it('reports the first failure of a pipelined batch, not the aborted ones after it, and leaves nothing of the transaction', async () => {
    const pool = stewardPool();
    try {
      const failed = await withSession(
        pool,
        async (session) => {
          session.sendRun(
            [
              { sql: `CREATE ROLE ${CREATED} NOLOGIN`, action: 'role.create', object: `role:${CREATED}` },
              { sql: `GRANT SELECT ON TABLE ${SCHEMA}.no_such_table TO ${CREATED}`, action: 'grant.privileges', object: `${SCHEMA}.no_such_table` },
              { sql: `COMMENT ON ROLE ${CREATED} IS 'never'`, action: 'role.comment', object: `role:${CREATED}` },
            ],
            [],
          );
          await session.query('SELECT 1');
        },
        { pipelineBegin: true },
      ).catch((e: unknown) => e as Error & { code?: string });
      expect(failed).toBeInstanceOf(Error);
      expect((failed as { code?: string }).code).toBe('42P01'); // undefined_table, not 25P02 (transaction aborted)
      expect((failed as Error).message).toContain('no_such_table');
      expect(await roleExists(CREATED)).toBe(false);
    } finally {
      await pool.end();
    }
  });

  it('catches a GRANT PostgreSQL declined with only a warning, on that statement, amid others in flight', async () => {
    const pool = stewardPool(LOGIN, PW);
    try {
      const failed = await withSession(
        pool,
        async (session) => {
          const ran = session.sendRun(
            [
              { sql: `GRANT SELECT ON TABLE ${SCHEMA}.mine TO ${GRANTEE}`, action: 'grant.privileges', object: `${SCHEMA}.mine` },
              { sql: `GRANT SELECT ON TABLE ${SCHEMA}.theirs TO ${GRANTEE}`, action: 'grant.privileges', object: `${SCHEMA}.theirs` },
              { sql: `GRANT SELECT ON TABLE ${SCHEMA}.mine TO ${GRANTEE}`, action: 'grant.privileges', object: `${SCHEMA}.mine` },
            ],
            [],
          );
          await session.query('SELECT 1');
          return ran;
        },
        { pipelineBegin: true },
      ).catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(InsufficientPrivilege);
      expect((failed as InsufficientPrivilege).object).toBe(`${SCHEMA}.theirs`);
      expect((failed as Error).message).toMatch(/no privileges were granted for "theirs"/);
      // Rolled back: the grant on mine, made before the declined one in the same transaction, is gone too.
      const held = await withPg((c) => c.query(`SELECT has_table_privilege($1, $2, 'SELECT') AS ok`, [GRANTEE, `${SCHEMA}.mine`]));
      expect(held.rows[0].ok).toBe(false);
    } finally {
      await pool.end();
    }
  });

  it('sends the audit rows with the COMMIT: a row the table refuses undoes the change, rows it takes commit with it', async () => {
    const pool = stewardPool();
    try {
      await ensureAuditTable(pool);
      const requestId = unique('sess-req');
      const record = (outcome: string): AuditRecord =>
        ({
          ts: new Date().toISOString(),
          request_id: requestId,
          actor: 'test',
          action: 'role.create',
          resource: `role:${AUDITED}`,
          outcome,
          kind: 'Test',
          name: 'session',
        }) as AuditRecord;
      const create = { sql: `CREATE ROLE ${AUDITED} NOLOGIN`, action: 'role.create', object: `role:${AUDITED}` };
      const rows = () => withPg(async (c) => (await c.query('SELECT outcome FROM steward.audit_log WHERE request_id = $1', [requestId])).rows);

      // The table's CHECK refuses the outcome: the error is the INSERT's (23514), not COMMIT's, and the role is not there.
      const failed = await withSession(
        pool,
        async (session) => {
          session.sendRun([create], []);
          await new AuditTableSink(session).writeMany([record('success'), record('not-an-outcome')]);
        },
        { pipelineBegin: true },
      ).catch((e: unknown) => e as Error & { code?: string });
      expect(failed).toBeInstanceOf(Error);
      expect((failed as { code?: string }).code).toBe('23514');
      // PostgreSQL's own message names the table, so the reconcile's failure says which write failed.
      expect((failed as Error).message).toContain('audit_log');
      expect(await roleExists(AUDITED)).toBe(false);
      expect(await rows()).toEqual([]);

      await withSession(
        pool,
        async (session) => {
          session.sendRun([create], []);
          await new AuditTableSink(session).writeMany([record('success')]);
        },
        { pipelineBegin: true },
      );
      expect(await roleExists(AUDITED)).toBe(true);
      expect(await rows()).toEqual([{ outcome: 'success' }]);
    } finally {
      await pool.end();
    }
  });

  it('refuses the raw client while queries it sent are unanswered, and hands it over once they are', async () => {
    const pool = stewardPool();
    try {
      await withSession(
        pool,
        async (session) => {
          void session.send('SELECT 1');
          expect(() => session.client).toThrow(/unanswered/);
          await session.flush();
          expect((await session.client.query('SELECT 2 AS n')).rows[0].n).toBe(2);
        },
        { pipelineBegin: true },
      );
    } finally {
      await pool.end();
    }
  });
});
