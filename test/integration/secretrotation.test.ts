// SecretRotation on the real stack: a pipeline (examples/pipeline) keeps querying through forced
// rotations, reading its credentials the way a pod reads a mounted Secret (a kubelet-like projection
// of the Secret into files, with the ..data link swap); every retired password is proven not to log in;
// and every password Steward generated is searched for in every place it must never be.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline, SecretProjection, failureWindows } from '../stack/pipeline.ts';
import { SECRET_ROTATION_TYPE, pendingSecretName } from '../../src/controllers/secretrotation.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { alternateLoginName } from '../../src/governance/rotation.ts';
import { generatePassword } from '../../src/drivers/postgres/scram.ts';
import { SECRET_TYPE } from '../../src/runtime/secrets.ts';
import {
  Steward,
  allEventsText,
  apply,
  condition,
  ensureNamespace,
  eventsAbout,
  kube,
  pgConfig,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  sumMetric,
  SECRET_GETS,
  API_WRITES,
  reconcilesOf,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('x').slice(2).replace(/-/g, '');
const DB = `sr_${id}`;
const NS = `sr-${id}`;
const WH = `wh-sr-${id}`;
const ETL = `etl_${id}`;
const SOLO = `solo_${id}`;
const OTHER = `other_${id}`;
const INITIAL_PW = randomPassword();
const generated = new Set<string>();
let steward: Steward;
/** The logs of the Steward processes killed on the way, for the scan. */
const earlierLogs: string[] = [];

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });

interface Credentials {
  username: string;
  password: string;
  host: string;
  port: string;
  database: string;
  sslmode: string;
  uri: string;
}

async function published(name: string): Promise<Credentials> {
  const s = await kube.get<{ data: Record<string, string> }>(SECRET_TYPE, name, NS);
  const data = Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) as unknown as Credentials;
  generated.add(data.password);
  return data;
}

/** Logs in as the user with the password; true, or the error. */
async function logsIn(user: string, password: string): Promise<true | string> {
  const c = new pg.Client(pgConfig({ database: DB, user, password }));
  try {
    await c.connect();
    return true;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

function rotation(name: string, o: { role: string; strategy?: string; secret?: string; grace?: string; every?: string; cron?: string; aws?: string }): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: SecretRotation
metadata: {name: ${name}, namespace: ${NS}}
spec:
  warehouse: ${WH}
  role: ${o.role}
  strategy: ${o.strategy ?? 'alternating'}
  schedule: ${o.cron ? `{cron: "${o.cron}"}` : `{every: ${o.every ?? '720h'}}`}
  targets:
    kubernetesSecret: {name: ${o.secret ?? `${name}-credentials`}}
${o.aws ? `    awsSecretsManager: {secretId: ${o.aws}, region: us-east-1}\n` : ''}  gracePeriod: ${o.grace ?? '2s'}
`;
}

const get = (name: string) => kube.get<Conditioned & { metadata: { uid: string } }>(SECRET_ROTATION_TYPE, name, NS);

/** Asks for a rotation now and waits until a new one has finished; returns the rotation's status. */
async function forceRotation(name: string): Promise<Record<string, unknown>> {
  const before = (await get(name)).status?.lastRotationId;
  const at = new Date().toISOString();
  await kube.patch(SECRET_ROTATION_TYPE, name, NS, { metadata: { annotations: { 'steward.dev/rotate-requested-at': at } } }, 'merge');
  const obj = await waitFor(
    `a new rotation of ${name}`,
    async () => {
      const o = await get(name);
      return o.status?.lastRotationId !== before && o.status?.lastRequestedAt === at ? o : undefined;
    },
    60_000,
  );
  return obj.status!;
}

/** The Secret as the kubelet would read it, for SecretProjection. */
const secretOf = (name: string) => async () => {
  const s = await kube.get<{ data: Record<string, string>; metadata: { resourceVersion: string } }>(SECRET_TYPE, name, NS);
  return { data: s.data, resourceVersion: s.metadata.resourceVersion };
};
const QUERY = 'SELECT count(*) FROM app.events';

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) =>
    c.query(`
    CREATE SCHEMA app;
    CREATE TABLE app.events (id int);
    INSERT INTO app.events VALUES (1), (2);
    CREATE ROLE ${ETL} LOGIN PASSWORD '${INITIAL_PW}';
    GRANT USAGE, CREATE ON SCHEMA app TO ${ETL};
    GRANT SELECT ON app.events TO ${ETL};
    CREATE ROLE ${SOLO} LOGIN PASSWORD '${INITIAL_PW}';
    GRANT USAGE ON SCHEMA app TO ${SOLO};
    GRANT SELECT ON app.events TO ${SOLO};
    CREATE ROLE ${OTHER} LOGIN PASSWORD '${INITIAL_PW}';
  `),
  );
  // Every statement logged: the scan at the end proves no password reached the server's log.
  await withPg((c) => c.query(`ALTER SYSTEM SET log_statement = 'all'`).then(() => c.query('SELECT pg_reload_conf()')));
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  apply(
    stackWarehouseYaml({
      name: WH,
      database: DB,
      policy: `    - namespaces: {matchNames: [${NS}]}
      schemas: [app]
      principals: [etl_*, solo_*]`,
    }),
  );
  steward = Steward.start({ args: ['--resync', '3s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
});

afterAll(async () => {
  await withPg((c) => c.query('ALTER SYSTEM RESET log_statement').then(() => c.query('SELECT pg_reload_conf()'))).catch(() => undefined);
  await steward?.stop();
  const left = await kube.list<Conditioned>(SECRET_ROTATION_TYPE, { namespace: NS }).catch(() => ({ items: [] as Conditioned[] }));
  for (const r of left.items) await kube.delete(SECRET_ROTATION_TYPE, r.metadata.name, NS).catch(() => undefined);
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('SecretRotation, alternating', () => {
  it('publishes a tested credential, and a pipeline reading its mounted files sees 0 failures through 20 forced rotations', async () => {
    apply(rotation('etl', { role: ETL }));
    const ready = await waitForCondition(SECRET_ROTATION_TYPE, 'etl', NS, 'Ready', 'True', 'Rotated');
    const alt = alternateLoginName(ETL);
    // The first rotation changes the login nobody uses yet: the role's own password keeps working through the grace period.
    expect(ready.status).toMatchObject({ activeLogin: alt, previousLogin: ETL });
    const first = await published('etl-credentials');
    expect(first).toMatchObject({ username: alt, host: 'localhost', port: process.env.PGPORT, database: DB, sslmode: 'verify-full' });
    expect(first.uri).toBe(`postgresql://${alt}:${first.password}@localhost:${process.env.PGPORT}/${DB}?sslmode=verify-full`);
    expect(first.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(await logsIn(alt, first.password)).toBe(true);
    // After the grace period the role's old password no longer logs in.
    await waitFor('the initial password retired', async () => (await logsIn(ETL, INITIAL_PW)) !== true, 20_000);

    const mount = new SecretProjection(secretOf('etl-credentials'));
    await mount.sync();
    // Faster than a kubelet (a minute): the grace period of this test is 2 s.
    mount.start(300);
    const pipeline = new Pipeline(mount.dir, QUERY);
    const seen: string[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const status = await forceRotation('etl');
        const now = await published('etl-credentials');
        seen.push(now.username);
        expect(status.activeLogin).toBe(now.username);
        expect(await logsIn(now.username, now.password)).toBe(true);
      }
    } finally {
      const result = await pipeline.stop();
      mount.stop();
      expect(result.lines).toEqual([]);
      expect(result.failures).toBe(0);
      expect(result.queries).toBeGreaterThan(100);
      expect(new Set(result.logins)).toEqual(new Set([ETL, alt]));
    }
    // The logins alternate.
    expect(seen.every((u, i) => i === 0 || u !== seen[i - 1])).toBe(true);
  }, 300_000);

  it('after the grace period the retired password no longer logs in and none of its sessions remains', async () => {
    const before = await published('etl-credentials');
    // A session of the published login, as a long-running job would hold.
    const held = new pg.Client(pgConfig({ database: DB, user: before.username, password: before.password }));
    await held.connect();
    held.on('error', () => undefined);
    await forceRotation('etl');
    const after = await published('etl-credentials');
    expect(after.username).not.toBe(before.username);
    // Within the grace period the old one still works.
    expect(await logsIn(before.username, before.password)).toBe(true);
    await waitFor('the previous login retired', async () => (await get('etl')).status?.previousLogin === undefined, 20_000);
    expect(await logsIn(before.username, before.password)).toMatch(/password authentication failed/);
    const sessions = await withPg((c) => c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [before.username]));
    expect(sessions.rows[0].n).toBe(0);
    await expect(held.query('SELECT 1')).rejects.toThrow();
    await held.end().catch(() => undefined);
    const events = await eventsAbout('etl');
    expect(events.some((e) => e.reason === 'LoginRetired')).toBe(true);
  });

  it('objects created by either login are readable by the other, and grants made later reach both', async () => {
    const a = await published('etl-credentials');
    await asSuperuser((c) => c.query(`CREATE TABLE app.later (x int); INSERT INTO app.later VALUES (3); GRANT SELECT ON app.later TO ${ETL}`));
    const connect = async (user: string, password: string) => {
      const c = new pg.Client(pgConfig({ database: DB, user, password }));
      await c.connect();
      return c;
    };
    const first = await connect(a.username, a.password);
    await first.query(`CREATE TABLE app.made_by_${a.username.slice(0, 20)} (x int)`);
    expect((await first.query('SELECT x FROM app.later')).rows).toEqual([{ x: 3 }]);
    await first.end();
    await forceRotation('etl');
    const b = await published('etl-credentials');
    const second = await connect(b.username, b.password);
    expect((await second.query(`SELECT count(*)::int AS n FROM app.made_by_${a.username.slice(0, 20)}`)).rows[0].n).toBe(0);
    await second.query(`CREATE TABLE app.made_by_${b.username.slice(0, 20)} (x int)`);
    expect((await second.query('SELECT x FROM app.later')).rows).toEqual([{ x: 3 }]);
    await second.end();
    const owners = await asSuperuser((c) => c.query(`SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename LIKE 'made_by_%'`));
    expect(owners.rows).toEqual([{ tableowner: ETL }]);
  });

  it('an out-of-band password change is detected, reported, audited and repaired', async () => {
    const before = await published('etl-credentials');
    await withPg((c) => c.query(`ALTER ROLE ${before.username} PASSWORD '${randomPassword()}'`));
    await waitFor('a repair', async () => (await published('etl-credentials')).password !== before.password, 30_000);
    const after = await published('etl-credentials');
    expect(await logsIn(after.username, after.password)).toBe(true);
    const events = await eventsAbout('etl');
    expect(events.find((e) => e.reason === 'PasswordChangedOutOfBand')?.type).toBe('Warning');
    const audited = await asSuperuser((c) => c.query(`SELECT outcome FROM steward.audit_log WHERE name = 'etl' AND action = 'login.drift'`));
    expect(audited.rows.length).toBeGreaterThan(0);
  });

  it('resumes a rotation Steward was killed in the middle of, with the same id and password, publishing it only once it logs in', async () => {
    await waitFor('no grace period', async () => (await get('etl')).status?.previousLogin === undefined, 20_000);
    await steward.stop('SIGKILL');
    earlierLogs.push(steward.logs());
    const sr = await get('etl');
    const status = sr.status!;
    // What a kill after step 1 (pending) leaves: the pending Secret, nothing set, nothing published.
    const rotationId = randomUUID();
    const login = status.activeLogin === ETL ? alternateLoginName(ETL) : ETL;
    // Made at run time, and added to the scan below like every password Steward generated.
    const password = generatePassword(32);
    generated.add(password);
    await kube.create(SECRET_TYPE, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: pendingSecretName('etl'),
        namespace: NS,
        ownerReferences: [{ apiVersion: 'steward.dev/v1alpha1', kind: 'SecretRotation', name: 'etl', uid: sr.metadata.uid, controller: true }],
      },
      data: Object.fromEntries(
        Object.entries({ rotationId, login, password, startedAt: new Date().toISOString() }).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
    } as never);
    expect(await logsIn(login, password)).not.toBe(true);
    steward = Steward.start({ args: ['--resync', '3s'] });
    await waitFor('the rotation resumed and finished', async () => (await get('etl')).status?.lastRotationId === rotationId, 30_000);
    const now = await published('etl-credentials');
    expect(now).toMatchObject({ username: login, password });
    expect(await logsIn(login, password)).toBe(true);
    await waitFor('the pending Secret gone', async () =>
      kube.get(SECRET_TYPE, pendingSecretName('etl'), NS).then(
        () => false,
        () => true,
      ),
    );
    const steps = await asSuperuser((c) => c.query(`SELECT action FROM steward.audit_log WHERE request_id = $1 ORDER BY id`, [rotationId]));
    // No rotation.start: that was step 1, done before the kill. (The retirement of the previous login, later, carries the id too.)
    expect(steps.rows.map((r) => r.action).filter((a) => a !== 'login.retire')).toEqual(['login.set_password', 'rotation.finish']);
  });
});

describe('SecretRotation, a rotation that fails', () => {
  it('leaves the published credential working, is retried with the same id, Stalls after repeated failure, and finishes once the cause is gone', async () => {
    await waitFor('no grace period', async () => (await get('etl')).status?.previousLogin === undefined, 20_000);
    const before = await published('etl-credentials');
    const next = before.username === ETL ? alternateLoginName(ETL) : ETL;
    // The login the rotation changes cannot log in, whatever its password.
    await withPg((c) => c.query(`ALTER ROLE ${next} CONNECTION LIMIT 0`));
    try {
      await kube.patch(
        SECRET_ROTATION_TYPE,
        'etl',
        NS,
        { metadata: { annotations: { 'steward.dev/rotate-requested-at': new Date().toISOString() } } },
        'merge',
      );
      const stalledObj = await waitForCondition(SECRET_ROTATION_TYPE, 'etl', NS, 'Stalled', 'True', 'RotationFailed');
      expect(condition(stalledObj, 'Ready')?.message).toMatch(/did not log in .*nothing was published.*published credential is unchanged/);
      const rotation = stalledObj.status!.rotation as { id: string; attempts: number; login: string };
      expect(rotation).toMatchObject({ login: next });
      expect(rotation.attempts).toBeGreaterThanOrEqual(5);
      expect(await published('etl-credentials')).toEqual(before);
      expect(await logsIn(before.username, before.password)).toBe(true);
      await withPg((c) => c.query(`ALTER ROLE ${next} CONNECTION LIMIT -1`));
      const done = await waitFor('the same rotation finished', async () => {
        const o = await get('etl');
        return o.status?.lastRotationId === rotation.id ? o : undefined;
      });
      expect(done.status?.rotation).toBeUndefined();
      expect((await published('etl-credentials')).username).toBe(next);
    } finally {
      await withPg((c) => c.query(`ALTER ROLE ${next} CONNECTION LIMIT -1`));
    }
  });
});

describe('SecretRotation, single', () => {
  it('changes the password in place: the new one works, the old one does not, and the failure window is measured', async () => {
    apply(rotation('solo', { role: SOLO, strategy: 'single' }));
    await waitForCondition(SECRET_ROTATION_TYPE, 'solo', NS, 'Ready', 'True', 'Rotated');
    expect(await logsIn(SOLO, INITIAL_PW)).toMatch(/password authentication failed/);
    const mount = new SecretProjection(secretOf('solo-credentials'));
    await mount.sync();
    mount.start(300);
    const pipeline = new Pipeline(mount.dir, QUERY);
    const old = await published('solo-credentials');
    for (let i = 0; i < 3; i++) {
      // A second of queries between rotations, so each rotation's window is seen.
      await new Promise((r) => setTimeout(r, 1_000));
      await forceRotation('solo');
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const now = await published('solo-credentials');
    const result = await pipeline.stop();
    mount.stop();
    expect(now.username).toBe(SOLO);
    expect(await logsIn(SOLO, now.password)).toBe(true);
    expect(await logsIn(SOLO, old.password)).toMatch(/password authentication failed/);
    // Said, not asserted: how many queries failed between the change and the projection reaching the files.
    const windows = failureWindows(result);
    console.log(
      `single: ${result.failures} of ${result.queries} queries failed across 3 rotations, in ${windows.length} window(s) of ${windows.map((w) => `${w} ms`).join(', ')} (the projection syncs every 300 ms)`,
    );
    expect(condition(await get('solo'), 'Ready')?.message).toMatch(/strategy single: clients holding the old password fail until they read the new one/);
    expect(result.queries).toBeGreaterThan(20);
    expect(result.failures).toBeLessThan(result.queries);
  });
});

describe('SecretRotation into AWS Secrets Manager (moto)', () => {
  const sm = new SecretsManagerClient({ region: 'us-east-1' });
  const SECRET_ID = `steward-test/${id}/etl`;
  const versions = async (secretId: string) =>
    (await sm.send(new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }))).Versions!.map(
      (v) => [v.VersionId!, v.VersionStages ?? []] as const,
    );
  const awsCurrent = async (secretId: string) =>
    JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }))).SecretString!);

  it('the Kubernetes Secret and AWSCURRENT hold the same tested credential after each rotation, with exactly one version per rotation', async () => {
    const role = `etl_aws_${id}`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}'`));
    apply(rotation('aws', { role, aws: SECRET_ID }));
    await waitForCondition(SECRET_ROTATION_TYPE, 'aws', NS, 'Ready', 'True', 'Rotated');
    const rotationIds: string[] = [(await get('aws')).status!.lastRotationId as string];
    for (let i = 0; i < 3; i++) rotationIds.push((await forceRotation('aws')).lastRotationId as string);
    const k8s = await published('aws-credentials');
    const current = await awsCurrent(SECRET_ID);
    generated.add(current.password);
    expect(current).toEqual({
      engine: 'postgres',
      host: 'localhost',
      port: Number(process.env.PGPORT),
      username: k8s.username,
      password: k8s.password,
      dbname: DB,
    });
    expect(await logsIn(current.username, current.password)).toBe(true);
    const seen = await versions(SECRET_ID);
    // Every version is a rotation's (its id), one each; the last is AWSCURRENT, the one before AWSPREVIOUS, none AWSPENDING.
    expect(seen.map(([v]) => v).sort()).toEqual([...rotationIds].sort());
    expect(Object.fromEntries(seen)[rotationIds.at(-1)!]).toEqual(['AWSCURRENT']);
    expect(Object.fromEntries(seen)[rotationIds.at(-2)!]).toEqual(['AWSPREVIOUS']);
    expect(seen.flatMap(([, stages]) => stages)).not.toContain('AWSPENDING');
    const tags = (await sm.send(new DescribeSecretCommand({ SecretId: SECRET_ID }))).Tags;
    expect(tags).toContainEqual({ Key: 'steward.dev/owner', Value: `${NS}/aws` });
  });

  it('an existing AWS secret not tagged as its own is refused, and left as it was', async () => {
    const secretId = `steward-test/${id}/someone-elses`;
    await sm.send(new CreateSecretCommand({ Name: secretId, SecretString: '{"password":"theirs"}' }));
    const role = `etl_untagged_${id}`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}'`));
    apply(rotation('untagged', { role, aws: secretId }));
    const obj = await waitForCondition(SECRET_ROTATION_TYPE, 'untagged', NS, 'Stalled', 'True', 'SecretNotOwned');
    expect(condition(obj, 'Ready')?.message).toMatch(/tag-resource/);
    expect(await awsCurrent(secretId)).toEqual({ password: 'theirs' });
    expect(await versions(secretId)).toHaveLength(1);
    expect(await logsIn(role, INITIAL_PW)).toBe(true);
    await expect(kube.get(SECRET_TYPE, 'untagged-credentials', NS)).rejects.toThrow();
    await kube.delete(SECRET_ROTATION_TYPE, 'untagged', NS);
  });
});

describe('SecretRotation on a cron schedule', () => {
  it('rotates at the next match of the expression, on its own, and says when in status', async () => {
    const role = `etl_cron_${id}`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}'`));
    apply(rotation('cron', { role, cron: '* * * * *', grace: '1s' }));
    const first = (await waitForCondition(SECRET_ROTATION_TYPE, 'cron', NS, 'Ready', 'True', 'Rotated')).status!;
    const next = Date.parse(first.nextRotationAt as string);
    // Every minute: the next whole minute after the first rotation.
    expect(next).toBe(Math.floor(Date.parse(first.lastRotatedAt as string) / 60_000) * 60_000 + 60_000);
    const second = await waitFor(
      'the scheduled rotation',
      async () => {
        const o = await get('cron');
        return o.status?.lastRotationId !== first.lastRotationId && o.status?.lastRotationId ? o.status : undefined;
      },
      75_000,
    );
    expect(Date.parse(second.lastRotatedAt as string)).toBeGreaterThanOrEqual(next);
    expect(second.lastRequestedAt ?? null).toBeNull(); // nobody asked: the schedule did
    const now = await published('cron-credentials');
    expect(await logsIn(now.username, now.password)).toBe(true);
    const started = await asSuperuser((c) =>
      c.query(`SELECT details->>'reason' AS reason FROM steward.audit_log WHERE request_id = $1 AND action = 'rotation.start'`, [second.lastRotationId]),
    );
    expect(started.rows).toEqual([{ reason: 'scheduled' }]);
    await kube.delete(SECRET_ROTATION_TYPE, 'cron', NS);
  });
});

describe('SecretRotation killed (SIGKILL) once right after each of its four steps', () => {
  const sm = new SecretsManagerClient({ region: 'us-east-1' });
  const SECRET_ID = `steward-test/${id}/crash`;
  const role = `etl_crash_${id}`;
  const rotationIds: string[] = [];
  const awsCurrent = async () => JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId: SECRET_ID, VersionStage: 'AWSCURRENT' }))).SecretString!);
  const audited = async (rotationId: string) =>
    (await asSuperuser((c) => c.query(`SELECT action FROM steward.audit_log WHERE request_id = $1 ORDER BY id`, [rotationId]))).rows.map(
      (r) => r.action as string,
    );

  beforeAll(async () => {
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}'`));
    apply(rotation('crash', { role, aws: SECRET_ID }));
    await waitForCondition(SECRET_ROTATION_TYPE, 'crash', NS, 'Ready', 'True', 'Rotated');
    rotationIds.push((await get('crash')).status!.lastRotationId as string);
  });

  it.each(['pending', 'set', 'test', 'finish'])(
    'after %s: the same rotation resumes, nothing untested is published, one version per rotation',
    async (step) => {
      await waitFor('no grace period', async () => (await get('crash')).status?.previousLogin === undefined, 20_000);
      await steward.stop();
      earlierLogs.push(steward.logs());
      const before = await published('crash-credentials');
      const lastBefore = (await get('crash')).status!.lastRotationId;
      const crashing = Steward.start({ args: ['--resync', '3s'], env: { STEWARD_CRASH_AT: `secretrotation.${step}@${NS}/crash` } });
      steward = crashing;
      await kube.patch(
        SECRET_ROTATION_TYPE,
        'crash',
        NS,
        { metadata: { annotations: { 'steward.dev/rotate-requested-at': new Date().toISOString() } } },
        'merge',
      );
      const exit = await Promise.race([crashing.waitForExit(), new Promise((r) => setTimeout(() => r('still running'), 30_000))]);
      expect(exit, 'Steward killed itself at the crash point').toBe(-1);
      earlierLogs.push(crashing.logs());

      // What the kill left: the rotation under way in the pending Secret, and status not naming it.
      const pendingSecret = await kube.get<{ data: Record<string, string> }>(SECRET_TYPE, pendingSecretName('crash'), NS);
      const pending = Object.fromEntries(Object.entries(pendingSecret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
      generated.add(pending.password!);
      expect((await get('crash')).status!.lastRotationId).toBe(lastBefore);
      // Set only from step 2 on.
      const newLogsIn = await logsIn(pending.login!, pending.password!);
      if (step === 'pending') expect(newLogsIn).not.toBe(true);
      else expect(newLogsIn).toBe(true);
      const afterKill = await published('crash-credentials');
      if (step === 'finish') {
        expect(afterKill.password).toBe(pending.password);
      } else {
        // Not published: consumers still hold the credential before, and it still logs in.
        expect(afterKill).toEqual(before);
        expect((await awsCurrent()).password).toBe(before.password);
        expect(await logsIn(before.username, before.password)).toBe(true);
      }

      steward = Steward.start({ args: ['--resync', '3s'] });
      await waitFor('the same rotation finished', async () => (await get('crash')).status?.lastRotationId === pending.rotationId, 30_000);
      rotationIds.push(pending.rotationId!);
      const now = await published('crash-credentials');
      expect(now).toMatchObject({ username: pending.login, password: pending.password });
      expect(await logsIn(now.username, now.password)).toBe(true);
      const current = await awsCurrent();
      expect({ username: current.username, password: current.password }).toEqual({ username: now.username, password: now.password });
      const versions = (await sm.send(new ListSecretVersionIdsCommand({ SecretId: SECRET_ID, IncludeDeprecated: true }))).Versions!;
      expect(versions.map((v) => v.VersionId).sort()).toEqual([...rotationIds].sort());
      expect(versions.flatMap((v) => v.VersionStages ?? [])).not.toContain('AWSPENDING');
      const steps = (await audited(pending.rotationId!)).filter((a) => a !== 'login.retire');
      // Each step ran once; only a kill after finish makes the publication run again (the same values: a no-op for consumers).
      expect(steps.filter((a) => a === 'rotation.start')).toHaveLength(1);
      expect(steps.filter((a) => a === 'login.set_password')).toHaveLength(1);
      expect(steps.filter((a) => a === 'rotation.finish')).toHaveLength(step === 'finish' ? 2 : 1);
      await waitFor('the pending Secret gone', async () =>
        kube.get(SECRET_TYPE, pendingSecretName('crash'), NS).then(
          () => false,
          () => true,
        ),
      );
    },
  );
});

describe('SecretRotation at rest', () => {
  it('reads no Secret, writes nothing and asks AWS nothing, resync after resync, each of them reconciled', async () => {
    // Every rotation so far finished and every grace period ended: nothing is due.
    await waitFor(
      'every rotation at rest',
      async () => {
        const all = (await kube.list<Conditioned>(SECRET_ROTATION_TYPE, { namespace: NS })).items;
        return all.length >= 4 && all.every((r) => condition(r, 'Ready')?.reason === 'Rotated' && r.status?.previousLogin === undefined);
      },
      30_000,
    );
    const counters = async () => {
      const text = await steward.metricsText();
      return {
        secretGets: sumMetric(text, SECRET_GETS),
        writes: sumMetric(text, API_WRITES),
        // Secrets Manager's: other tests' ObjectStores may be in the cluster, checked by the same process.
        awsCalls: sumMetric(text, /^steward_aws_calls_total\{service="secretsmanager",[^}]*\} (\d+)$/gm),
        reconciles: sumMetric(text, reconcilesOf('secretrotation')),
        writeLines: [...text.matchAll(API_WRITES)].map((m) => m[0]),
      };
    };
    await new Promise((r) => setTimeout(r, 4000)); // the last status writes land
    const statuses = async () => (await kube.list<Conditioned>(SECRET_ROTATION_TYPE, { namespace: NS })).items.map((r) => [r.metadata.name, r.status]);
    const statusBefore = await statuses();
    const before = await counters();
    await new Promise((r) => setTimeout(r, 7000)); // two resyncs and more (3 s here)
    const after = await counters();
    if (after.writes !== before.writes) {
      console.log(`at rest, writes before: ${before.writeLines.join('; ')}; after: ${after.writeLines.join('; ')}`);
      console.log(`statuses before: ${JSON.stringify(statusBefore)}\nafter: ${JSON.stringify(await statuses())}`);
    }
    expect(after.reconciles - before.reconciles).toBeGreaterThanOrEqual(2 * statusBefore.length); // two resyncs of each ran
    expect({
      secretGets: after.secretGets - before.secretGets,
      writes: after.writes - before.writes,
      awsCalls: after.awsCalls - before.awsCalls,
    }).toEqual({ secretGets: 0, writes: 0, awsCalls: 0 });
  });
});

describe('SecretRotation refuses', () => {
  it.each([
    ['a role no accessPolicy rule names', OTHER],
    ["Steward's own login", process.env.PGUSER!],
  ])('%s: PolicyDenied, and its password still logs in', async (_what, role) => {
    const name = unique('deny');
    apply(rotation(name, { role }));
    const obj = await waitForCondition(SECRET_ROTATION_TYPE, name, NS, 'Stalled', 'True', 'PolicyDenied');
    expect(condition(obj, 'Ready')?.message).toContain(role);
    await expect(kube.get(SECRET_TYPE, `${name}-credentials`, NS)).rejects.toThrow();
    if (role === OTHER) expect(await logsIn(OTHER, INITIAL_PW)).toBe(true);
    await kube.delete(SECRET_ROTATION_TYPE, name, NS);
  });

  it('a login that is a member of a superuser role, even though the policy names it', async () => {
    const role = `etl_admin_${id}`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}' IN ROLE ${process.env.PGUSER}`));
    try {
      apply(rotation('admin', { role }));
      const obj = await waitForCondition(SECRET_ROTATION_TYPE, 'admin', NS, 'Stalled', 'True', 'PolicyDenied');
      expect(condition(obj, 'Ready')?.message).toMatch(/member of/);
      expect(await logsIn(role, INITIAL_PW)).toBe(true);
      await kube.delete(SECRET_ROTATION_TYPE, 'admin', NS);
    } finally {
      // Roles are cluster-wide: a login that can act as the superuser left behind would (rightly)
      // make every later MaskedView in a superuser-owned schema refuse to build.
      await asSuperuser((c) => c.query(`DROP ROLE ${role}`));
    }
  });

  it('a second SecretRotation of a login already rotated', async () => {
    apply(rotation('etl-again', { role: ETL, secret: 'etl-again-credentials' }));
    await waitForCondition(SECRET_ROTATION_TYPE, 'etl-again', NS, 'Stalled', 'True', 'RotationConflict');
    await kube.delete(SECRET_ROTATION_TYPE, 'etl-again', NS);
  });

  it('a target Secret it does not own, which stays as it was', async () => {
    const role = `etl_owned_${id}`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${INITIAL_PW}'`));
    await putSecret(NS, 'hand-made', { username: 'someone', password: 'kept' });
    apply(rotation('owned', { role, secret: 'hand-made' }));
    await waitForCondition(SECRET_ROTATION_TYPE, 'owned', NS, 'Stalled', 'True', 'SecretNotOwned');
    const s = await kube.get<{ data: Record<string, string> }>(SECRET_TYPE, 'hand-made', NS);
    expect(Buffer.from(s.data.password!, 'base64').toString()).toBe('kept');
    expect(await logsIn(role, INITIAL_PW)).toBe(true);
    await kube.delete(SECRET_ROTATION_TYPE, 'owned', NS);
  });
});

describe('secrets stay secret', () => {
  it("no generated password is in Steward's log, an Event, a status, the audit table or PostgreSQL's log (log_statement = all)", async () => {
    expect(generated.size).toBeGreaterThan(20);
    const rotations = await kube.list<Conditioned>(SECRET_ROTATION_TYPE, { namespace: NS });
    const audit = await asSuperuser((c) => c.query('SELECT * FROM steward.audit_log'));
    const serverLog = readFileSync(join(process.env.STEWARD_STACK_DIR!, 'pg/server.log'), 'utf8');
    expect(serverLog).toMatch(/statement: /); // the log did log statements
    const places: Record<string, string> = {
      stewardLog: [...earlierLogs, steward.logs()].join('\n'),
      events: await allEventsText(),
      status: JSON.stringify(rotations.items.map((r) => r.status)),
      auditTable: JSON.stringify(audit.rows),
      serverLog,
    };
    for (const password of generated) for (const [where, text] of Object.entries(places)) expect(text.includes(password), `${where}`).toBe(false);
  });
});
