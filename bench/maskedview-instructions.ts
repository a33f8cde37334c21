// MaskedView scan cost in CPU instructions: the floor, the masked view and the view with the
// k-anonymity guard (the same queries, data and views as maskedview.ts), each run by a single-user
// PostgreSQL backend under valgrind (cachegrind without its cache simulation), which counts the
// instructions the backend executes. Time on a shared machine swings by a third between rounds; the
// count does not depend on what else the machine is doing (repeated runs agree to five digits), so
// it shows what a change to the view's SQL costs where timings cannot. It is serial by nature: a
// single-user backend has no parallel workers. Instructions are not time (a cache miss costs more
// than an add), so it complements the timed bench rather than replacing it.
//
// Needs valgrind and the PostgreSQL server binaries; not the stack: it makes its own throwaway
// cluster in a temporary folder.
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadParser } from '../src/drivers/postgres/expression.ts';
import { planView } from '../src/drivers/postgres/view-sql.ts';
import { createViewStatements, hashKeyQuery } from '../src/drivers/postgres/view-catalog.ts';
import { RAW_JOIN, benchDataSql, benchViewSpec, touchAll } from './maskedview.ts';

export interface InstructionCounts {
  floor: number;
  masked: number;
  kAnon: number;
}

/** Where initdb, pg_ctl and postgres are: on PATH, else the newest /usr/lib/postgresql/N/bin. */
function pgBin(): string {
  const which = spawnSync(
    'bash',
    ['-c', 'if command -v pg_ctl >/dev/null; then dirname "$(command -v pg_ctl)"; else ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; fi'],
    { encoding: 'utf8' },
  );
  const dir = which.stdout.trim();
  if (!dir) throw new Error('PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found');
  return dir;
}

/** PostgreSQL refuses to run as root: as root, run it as the postgres user (as the stack does). */
const asPostgres = (cmd: string, args: string[]) =>
  (process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]) as [string, string[]];

function run(cmd: string, args: string[], input?: string): { stdout: string; stderr: string } {
  const [c, a] = asPostgres(cmd, args);
  const r = spawnSync(c, a, { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

export function valgrindAvailable(): boolean {
  return spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).status === 0;
}

export async function maskedViewInstructions(orders: number): Promise<InstructionCounts> {
  const bin = pgBin();
  const dir = mkdtempSync(join(tmpdir(), 'steward-instructions-'));
  if (process.getuid?.() === 0)
    chownSync(
      dir,
      Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout),
      Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout),
    );
  const data = join(dir, 'data');
  const port = '54329';
  try {
    run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8']);
    // Unix socket only, in the temporary folder: nothing listens on the network.
    run(join(bin, 'pg_ctl'), ['-D', data, '-o', `-k ${dir} -p ${port} -c listen_addresses=''`, '-l', join(dir, 'server.log'), '-w', 'start']);
    try {
      const c = new pg.Client({ host: dir, port: Number(port), user: 'postgres', database: 'postgres', ssl: false });
      await c.connect();
      try {
        await c.query(`${benchDataSql(orders)}
          CREATE ROLE bench_reader NOLOGIN; CREATE ROLE bench_pii NOLOGIN; CREATE ROLE bench_owner NOLOGIN;
          GRANT USAGE ON SCHEMA curated TO bench_reader;`);
        const pii = Number((await c.query(`SELECT oid::int8 AS oid FROM pg_roles WHERE rolname = 'bench_pii'`)).rows[0].oid);
        await loadParser();
        // The SQL Steward builds, created the way Steward creates it (owner role, grants).
        for (const [name, kAnon] of [
          ['sales_masked', false],
          ['sales_kanon', true],
        ] as const) {
          const plan = planView(benchViewSpec(name, kAnon, 'bench_pii', 'bench_reader'), {
            keyQuery: hashKeyQuery(`curated.${name}`),
            unmaskedRoleOids: [pii],
          });
          for (const s of createViewStatements('curated', name, plan.select, 'bench_owner', plan.sourceTables, false)) await c.query(s.sql);
          await c.query(`GRANT SELECT ON curated.${name} TO bench_reader`);
        }
        // The floor is read by a role that may read the raw tables; the views by the reader.
        await c.query('CREATE ROLE bench_raw NOLOGIN; GRANT USAGE ON SCHEMA raw TO bench_raw; GRANT SELECT ON ALL TABLES IN SCHEMA raw TO bench_raw');
        // Hint bits set now, not by whichever query reads the rows first.
        await c.query('VACUUM ANALYZE');
      } finally {
        await c.end();
      }
    } finally {
      run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    }
    // One backend per query; its start-up (a SELECT 1 alone) is subtracted.
    const count = (role: string, query: string): number => {
      const { stderr } = run(
        'valgrind',
        ['--tool=cachegrind', '--cache-sim=no', '--cachegrind-out-file=/dev/null', join(bin, 'postgres'), '--single', '-D', data, 'postgres'],
        `SET ROLE ${role};\n${query.replace(/\s+/g, ' ')};\n`,
      );
      const m = /I\s+refs:\s+([\d,]+)/.exec(stderr);
      if (!m) throw new Error(`no instruction count in valgrind's output: ${stderr.slice(-500)}`);
      if (/ERROR:/.test(stderr)) throw new Error(`the query failed: ${stderr.slice(stderr.indexOf('ERROR:'), stderr.indexOf('ERROR:') + 300)}`);
      return Number(m[1]!.replace(/,/g, ''));
    };
    const startUp = count('bench_reader', 'SELECT 1');
    return {
      floor: count('bench_raw', touchAll(RAW_JOIN)) - startUp,
      masked: count('bench_reader', touchAll('curated.sales_masked')) - startUp,
      kAnon: count('bench_reader', touchAll('curated.sales_kanon')) - startUp,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
