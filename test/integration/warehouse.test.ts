// Warehouse on the real stack: verified TLS as PostgreSQL itself reports it, the causes of a failed
// connection named in status, recovery after the Secret is fixed without a restart, the append-only
// audit table, and no secret anywhere a user or an operator can see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import {
  Steward,
  allEventsText,
  apply,
  kstatus,
  condition,
  ensureNamespace,
  eventsAbout,
  kube,
  makeUnrelatedCa,
  putSecret,
  randomPassword,
  stackCa,
  unique,
  waitForCondition,
  warehouseYaml,
  withPg,
  type Conditioned,
} from './harness.ts';

const NS = 'steward-system';
let steward: Steward;
const created: string[] = [];
const secretsSeen: string[] = [process.env.PGPASSWORD!];

async function makeWarehouse(opts: { password?: string; ca?: string; port?: number; sslMode?: string } = {}): Promise<string> {
  const name = unique('wh');
  created.push(name);
  await putSecret(NS, `${name}-creds`, { username: process.env.PGUSER!, password: opts.password ?? process.env.PGPASSWORD! });
  if (opts.ca !== undefined) await putSecret(NS, `${name}-ca`, { 'ca.crt': opts.ca });
  apply(
    warehouseYaml({ name, port: opts.port, sslMode: opts.sslMode, caSecret: opts.ca !== undefined ? `${name}-ca` : undefined, credsSecret: `${name}-creds` }),
  );
  return name;
}

beforeAll(async () => {
  await ensureNamespace(NS);
  steward = Steward.start({ args: ['--resync', '10m'] });
});

afterAll(async () => {
  await steward?.stop();
  for (const name of created) await kube.delete(WAREHOUSE_TYPE, name).catch(() => undefined);
});

describe('Warehouse', () => {
  it('is Ready with TLSVerified=True, and status carries the TLS version and cipher that pg_stat_ssl reports', async () => {
    const name = await makeWarehouse({ ca: stackCa() });
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'True', 'Connected');
    const tls = condition(wh, 'TLSVerified');
    expect(tls).toMatchObject({ status: 'True', reason: 'CertificateVerified' });

    // The server's own view of a verify-full session from this machine, for comparison.
    const server = await withPg(
      async (c) => (await c.query("SELECT version, cipher, current_setting('server_version') AS v FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).rows[0],
    );
    expect(wh.status?.tls).toEqual({ version: server.version, cipher: server.cipher });
    expect(wh.status?.tls).toMatchObject({ version: expect.stringMatching(/^TLSv1\.[23]$/) });
    expect(String(server.v)).toContain(String(wh.status?.serverVersion));
    expect(tls?.message).toContain(server.cipher);
    expect(kstatus(wh).status).toBe('Current');

    const printed = (await import('./harness.ts')).kubectl(['get', 'wh', name]);
    expect(printed.stdout).toMatch(/NAME\s+HOST\s+DATABASE\s+TLS\s+READY\s+AGE/);
    expect(printed.stdout).toMatch(new RegExp(`${name}\\s+localhost\\s+\\S+\\s+TLSv1\\.[23]\\s+True`));

    // Its Steward's own sessions show up in pg_stat_ssl as encrypted, every one of them.
    const sessions = await withPg(
      async (c) => (await c.query("SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'steward'")).rows,
    );
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.every((s) => s.ssl === true)).toBe(true);
  });

  it('with a CA that did not sign the server certificate is Ready=False (TLSVerificationFailed), and recovers once the Secret holds the right CA', async () => {
    const name = await makeWarehouse({ ca: makeUnrelatedCa() });
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'False', 'TLSVerificationFailed');
    expect(condition(wh, 'TLSVerified')).toMatchObject({ status: 'False', reason: 'TLSVerificationFailed' });
    expect(condition(wh, 'Stalled')).toMatchObject({ status: 'True', reason: 'TLSVerificationFailed' });
    expect(condition(wh, 'Ready')?.message).toContain(`${NS}/${name}-ca`);
    expect(wh.status?.tls).toBeUndefined();
    const events = await eventsAbout(name);
    expect(events.some((e) => e.type === 'Warning' && e.reason === 'TLSVerificationFailed')).toBe(true);

    const pid = steward.pid;
    await putSecret(NS, `${name}-ca`, { 'ca.crt': stackCa() });
    const fixed = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'True', 'Connected');
    expect(condition(fixed, 'TLSVerified')?.status).toBe('True');
    expect(condition(fixed, 'Stalled')?.status).toBe('False');
    expect(steward.pid).toBe(pid);
    expect(steward.running).toBe(true);
  });

  it('with a wrong password is Ready=False (AuthenticationFailed), and recovers once the Secret is fixed', async () => {
    const wrong = randomPassword();
    secretsSeen.push(wrong);
    const name = await makeWarehouse({ ca: stackCa(), password: wrong });
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'False', 'AuthenticationFailed');
    expect(condition(wh, 'Ready')?.message).toMatch(/authentication failed/);
    expect(condition(wh, 'Ready')?.message).toContain(`${NS}/${name}-creds`);
    // Every retry fails the same way: one Event, and no series of repeats after it: the status says it
    // still fails, and a repeat would be an API write per retry (docs/operations.md, Events).
    // The backoff (5 ms, doubling) retries it some ten times in 3 s.
    await new Promise((r) => setTimeout(r, 3000));
    const events = (await eventsAbout(name)).filter((x) => x.reason === 'AuthenticationFailed');
    expect(events).toHaveLength(1);
    expect(events[0]!.series?.count ?? 1).toBe(1);

    await putSecret(NS, `${name}-creds`, { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
    await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'True', 'Connected');
    expect(steward.running).toBe(true);
  });

  it('that cannot be reached is Ready=False (Unreachable) and Reconciling, not Stalled', async () => {
    const name = await makeWarehouse({ ca: stackCa(), port: 1 });
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'False', 'Unreachable');
    expect(condition(wh, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Unreachable' });
    expect(condition(wh, 'Stalled')?.status).toBe('False');
    expect(condition(wh, 'TLSVerified')?.status).toBe('Unknown');
    expect(kstatus(wh).status).toBe('InProgress');
  });

  it('whose credentials Secret does not exist says which Secret to create', async () => {
    const name = unique('wh');
    created.push(name);
    apply(warehouseYaml({ name, credsSecret: 'does-not-exist', sslMode: 'require' }));
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'False', 'CredentialsSecretNotFound');
    expect(condition(wh, 'Ready')?.message).toContain(`${NS}/does-not-exist`);
    expect(kstatus(wh)).toMatchObject({ status: 'Failed', message: expect.stringContaining('does-not-exist') });
    // A spec change the controller has not seen yet reads as InProgress, not as the old verdict.
    expect(kstatus({ ...wh, metadata: { ...wh.metadata, generation: (wh.metadata.generation ?? 1) + 1 } }).status).toBe('InProgress');
  });

  it('with sslMode require is encrypted but reports TLSVerified=False: the certificate was not checked', async () => {
    const name = await makeWarehouse({ sslMode: 'require' });
    const wh = await waitForCondition(WAREHOUSE_TYPE, name, undefined, 'Ready', 'True');
    expect(condition(wh, 'TLSVerified')).toMatchObject({ status: 'False', reason: 'EncryptedNotVerified' });
    expect(wh.status?.tls).toMatchObject({ version: expect.stringMatching(/^TLSv1/) });
  });

  it('writes audit records to the log and to an append-only table that refuses UPDATE, DELETE and TRUNCATE, even for a superuser', async () => {
    const name = created[0]!;
    const rows = await withPg(async (c) => (await c.query('SELECT * FROM steward.audit_log WHERE name = $1 ORDER BY id', [name])).rows);
    expect(rows.map((r) => r.action)).toEqual(expect.arrayContaining(['warehouse.connect']));
    for (const r of rows) {
      expect(r).toMatchObject({ kind: 'Warehouse', outcome: 'success', resource: expect.stringMatching(/^postgres:\/\/localhost:\d+\//) });
      expect(r.request_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.actor).toBeTruthy();
    }
    const logged = steward.logLines().filter((l) => (l.audit as { name?: string } | undefined)?.name === name);
    expect(logged.length).toBeGreaterThanOrEqual(rows.length);
    for (const sql of ["UPDATE steward.audit_log SET outcome = 'failure'", 'DELETE FROM steward.audit_log', 'TRUNCATE steward.audit_log']) {
      await expect(withPg((c) => c.query(sql))).rejects.toThrow(/append-only/);
    }
    // Failures are audited too (in the log: a Warehouse that cannot be reached has no table to write to).
    const failures = steward.logLines().filter((l) => (l.audit as { outcome?: string } | undefined)?.outcome === 'failure');
    expect(failures.map((l) => (l.audit as { error?: string }).error).join('\n')).toMatch(/authentication failed|certificate/);
  });

  it('serves health, readiness and controller-runtime metrics', async () => {
    const started = steward.logLines().find((l) => l.msg === 'steward starting');
    const base = `http://${String(started?.http)}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="warehouse",result="success"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_errors_total|controller_runtime_reconcile_total\{controller="warehouse",result="requeue"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_time_seconds_count\{controller="warehouse"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_depth\{name="warehouse"\} \d/);
    expect(metrics).toMatch(/leader_election_master_status\{name="[^"]+"\} 1/);
  });

  it('never shows a secret value in its logs, events or status', async () => {
    const logs = steward.logs();
    expect(logs.length).toBeGreaterThan(1000);
    const events = await allEventsText();
    const statuses = JSON.stringify((await kube.list<Conditioned>(WAREHOUSE_TYPE)).items.map((w) => w.status));
    const audit = JSON.stringify(await withPg(async (c) => (await c.query('SELECT * FROM steward.audit_log')).rows));
    for (const secret of secretsSeen) {
      expect(secret.length).toBeGreaterThan(8);
      for (const [where, text] of [
        ['logs', logs],
        ['events', events],
        ['status', statuses],
        ['audit table', audit],
      ] as const) {
        expect(text.includes(secret), `${where} contain a secret`).toBe(false);
      }
    }
  });
});
