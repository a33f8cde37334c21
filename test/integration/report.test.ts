// `steward report` on the real stack: on a sound state every control it can evaluate passes; each
// control fails when its fact is broken by hand (an out-of-band grant on a raw table, a view's source
// readable by its reader, a deleted audit record, a bucket without encryption, a literal password
// in a Deployment, a credential older than its schedule); `report verify` accepts the report and
// rejects one changed byte; the HTML page renders in a real headless browser. No credential Steward
// manages appears in the report.
import { DeleteBucketEncryptionCommand, CreateBucketCommand, PutBucketEncryptionCommand, PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { MASKED_VIEW_TYPE } from '../../src/controllers/maskedview.ts';
import { OBJECT_STORE_TYPE } from '../../src/controllers/objectstore.ts';
import { SECRET_ROTATION_TYPE } from '../../src/controllers/secretrotation.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import type { SignedReport } from '../../src/governance/evidence.ts';
import {
  REPO,
  Steward,
  apply,
  ensureNamespace,
  kube,
  maskedViewYaml,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('rp').slice(3).replace(/-/g, '');
const DB = `rp_${id}`;
const NS = `rp-${id}`;
const APPS = `rp-apps-${id}`;
const WH = `wh-rp-${id}`;
const STORE = `store-rp-${id}`;
const BUCKET = `rp-${id}`;
const ANALYST = `analyst_${id}`;
const READER = `reader_${id}`;
const PII = `pii_${id}`;
const MALLORY = `mallory_${id}`;
const ETL = `etl_${id}`;
const KEY_SECRET = `report-key-${id}`;
const AWS_SECRET_KEY = randomPassword();
const s3 = new S3Client({ region: 'us-east-1', forcePathStyle: true });
const dir = mkdtempSync(join(tmpdir(), 'steward-report-'));
let steward: Steward;

const asSuperuser = <T>(fn: (c: import('pg').Client) => Promise<T>) => withPg(fn, { database: DB });

/** Runs `steward report` for this test's Warehouse and ObjectStore; returns the exit code and the signed report. */
function report(format = 'json'): { status: number | null; stderr: string; text: string; signed?: SignedReport; file: string } {
  const file = join(dir, `report-${Date.now()}.${format}`);
  const r = spawnSync(
    join(REPO, 'bin/steward'),
    [
      'report',
      '--warehouse',
      WH,
      '--objectstore',
      STORE,
      '--key-secret',
      `steward-system/${KEY_SECRET}`,
      '--steward-log',
      steward.logFile,
      '-o',
      format,
      '--out',
      file,
    ],
    { encoding: 'utf8', env: process.env },
  );
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return { status: r.status, stderr: r.stderr, text, file, ...(format === 'json' && text ? { signed: JSON.parse(text) as SignedReport } : {}) };
}
const verdicts = (s: SignedReport) => Object.fromEntries(s.report.items.map((i) => [i.id, i.verdict]));
const itemOf = (s: SignedReport, prefix: string) => s.report.items.find((i) => i.id.startsWith(prefix))!;

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await asSuperuser((c) =>
    c.query(`
    CREATE ROLE ${ANALYST} LOGIN PASSWORD '${randomPassword()}';
    CREATE ROLE ${READER} LOGIN PASSWORD '${randomPassword()}';
    CREATE ROLE ${PII} NOLOGIN;
    CREATE ROLE ${MALLORY} LOGIN PASSWORD '${randomPassword()}';
    CREATE ROLE ${ETL} LOGIN PASSWORD '${randomPassword()}';
    CREATE SCHEMA curated; CREATE SCHEMA raw;
    CREATE TABLE curated.sales (id int, amount int); INSERT INTO curated.sales VALUES (1, 10);
    CREATE TABLE raw.customers (id int, email text); INSERT INTO raw.customers VALUES (1, 'ada@example.com'), (2, 'bob@example.org');
  `),
  );
  for (const ns of [NS, APPS]) await ensureNamespace(ns);
  await putWarehouseSecrets(WH);
  await putSecret('steward-system', KEY_SECRET, {
    'ed25519.pem': generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  });
  await putSecret('steward-system', `${STORE}-aws`, { accessKeyId: `AKIA${id.toUpperCase().padEnd(16, 'X').slice(0, 16)}`, secretAccessKey: AWS_SECRET_KEY });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3.send(
    new PutBucketEncryptionCommand({
      Bucket: BUCKET,
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    }),
  );
  await s3.send(
    new PutBucketPolicyCommand({
      Bucket: BUCKET,
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:*',
            Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      }),
    }),
  );
  apply(
    stackWarehouseYaml({
      name: WH,
      database: DB,
      policy: `    - namespaces: {matchNames: [${NS}]}
      schemas: [curated, raw]
    - namespaces: {matchNames: [${APPS}]}
      schemas: [curated]
      principals: [${ETL}]`,
    }).replace(`metadata: {name: ${WH}}`, `metadata: {name: ${WH}, annotations: {steward.dev/owner: data-platform@example.com}}`),
  );
  apply(`apiVersion: steward.dev/v1alpha1
kind: ObjectStore
metadata: {name: ${STORE}}
spec:
  s3: {bucket: ${BUCKET}, region: us-east-1, credentialsSecretRef: {namespace: steward-system, name: ${STORE}-aws}}
`);
  steward = Steward.start({ args: ['--resync', '2s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
  apply(`apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: sales, namespace: ${NS}}
spec:
  principal: {role: ${ANALYST}}
  warehouse: {name: ${WH}, schema: curated, tables: [sales]}
  duration: 720h
  justification: report test
`);
  apply(
    maskedViewYaml({
      name: 'customers',
      namespace: NS,
      warehouse: WH,
      readers: [READER],
      unmaskedRoles: [PII],
      body: `  view: {schema: curated, name: customers_masked}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: id, expr: c.id}
    - {name: email, expr: c.email, mask: email}`,
    }),
  );
  apply(`apiVersion: steward.dev/v1alpha1
kind: SecretRotation
metadata: {name: etl, namespace: ${APPS}}
spec:
  warehouse: ${WH}
  role: ${ETL}
  strategy: single
  schedule: {every: 720h}
  targets:
    kubernetesSecret: {name: etl-credentials}
`);
  await waitForCondition(DATASET_ACCESS_TYPE, 'sales', NS, 'Ready', 'True', 'Granted');
  await waitForCondition(MASKED_VIEW_TYPE, 'customers', NS, 'Ready', 'True');
  await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'Ready', 'True');
  await waitFor('the first rotation', async () =>
    Boolean((await kube.get<{ status?: { lastRotatedAt?: string } }>(SECRET_ROTATION_TYPE, 'etl', APPS)).status?.lastRotatedAt),
  );
}, 120_000);

afterAll(async () => {
  await steward?.stop();
  for (const [type, name, ns] of [
    [DATASET_ACCESS_TYPE, 'sales', NS],
    [MASKED_VIEW_TYPE, 'customers', NS],
    [SECRET_ROTATION_TYPE, 'etl', APPS],
    [OBJECT_STORE_TYPE, STORE, undefined],
  ] as const) {
    await kube.patch(type, name, ns, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
    await kube.delete(type, name, ns).catch(() => undefined);
  }
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('steward report', () => {
  it('on a sound state, every control it can evaluate passes; it is signed, verifies, and holds no credential', async () => {
    const r = report();
    expect(r.status, `${r.stderr}\n${r.text}`).toBe(0);
    const v = verdicts(r.signed!);
    expect(v).toMatchObject({
      [`least-privilege:${WH}`]: 'pass',
      [`raw-tables-locked:${WH}/raw.customers`]: 'pass',
      [`masking:${NS}/customers`]: 'pass',
      [`lineage:${NS}/customers`]: 'pass',
      [`tls-in-transit:${WH}`]: 'pass',
      [`audit-complete:${WH}`]: 'pass',
      [`secrets-not-in-code:${WH}/${APPS}`]: 'pass',
      [`secrets-not-in-logs:${WH}`]: 'pass',
      [`credential-age:${APPS}/etl`]: 'pass',
      [`encryption-at-rest:${STORE}`]: 'pass',
      [`tls-only:${STORE}`]: 'pass',
    });
    expect(Object.values(v)).not.toContain('fail');
    // What a non-privileged reader sees of the masked column, shown; the raw value is not.
    expect(itemOf(r.signed!, 'masking:').result).toMatch(/as stw_mvr_\S+: \[\{"email":"ad\*\*\*@example\.com"\}/);
    expect(r.text).not.toContain('ada@example.com');
    // The negative proof: the reader cannot read the raw table.
    expect(itemOf(r.signed!, 'raw-tables-locked:').result).toContain(`${READER}: cannot read`);
    // Owners and cadence: the Warehouse's owner annotation; no AccessReview, so no review cadence.
    expect(itemOf(r.signed!, 'tls-in-transit:').owner).toBe('data-platform@example.com');
    expect(r.signed!.report.unowned.map((u) => u.control)).toContain('Encryption at rest');
    // No credential Steward manages or uses is in the report.
    const managed = (
      await kube.get<{ data: Record<string, string> }>(
        { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
        'etl-credentials',
        APPS,
      )
    ).data;
    const etlPassword = Buffer.from(managed.password!, 'base64').toString();
    for (const secret of [etlPassword, process.env.PGPASSWORD!, AWS_SECRET_KEY]) expect(r.text).not.toContain(secret);

    const ok = spawnSync(join(REPO, 'bin/steward'), ['report', 'verify', r.file], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/OK: signed with Ed25519 key [0-9a-f]{16}/);
    const tampered = join(dir, 'tampered.json');
    const at = r.text.indexOf('"pass"');
    writeFileSync(tampered, `${r.text.slice(0, at + 1)}P${r.text.slice(at + 2)}`);
    const bad = spawnSync(join(REPO, 'bin/steward'), ['report', 'verify', tampered], { encoding: 'utf8' });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toContain('REJECTED');
  });

  it('the HTML page renders in headless Chromium: the summary is visible, a screenshot is taken, and it verifies', () => {
    const r = report('html');
    expect(r.status, r.stderr).toBe(0);
    const chromium = ['chromium', '--headless', '--no-sandbox', '--disable-gpu', '--window-size=1280,1600'];
    const dom = spawnSync(chromium[0]!, [...chromium.slice(1), '--dump-dom', `file://${r.file}`], { encoding: 'utf8', timeout: 60_000 });
    expect(dom.status, dom.stderr).toBe(0);
    // The DOM as the browser built it: the summary paragraph, with its counts.
    expect(dom.stdout).toMatch(/<p id="summary">Summary: <strong>\d+ pass<\/strong>, <strong>0 fail<\/strong>/);
    const png = join(dir, 'report.png');
    const shot = spawnSync(chromium[0]!, [...chromium.slice(1), `--screenshot=${png}`, `file://${r.file}`], { encoding: 'utf8', timeout: 60_000 });
    expect(shot.status, shot.stderr).toBe(0);
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.readUInt32BE(16)).toBe(1280); // the page, at the window's width
    expect(statSync(png).size).toBeGreaterThan(20_000); // text and tables, not a blank page
    console.log(`report: screenshot of the HTML report at ${png}`);
    const ok = spawnSync(join(REPO, 'bin/steward'), ['report', 'verify', r.file], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    writeFileSync(`${r.file}.edited`, r.text.replace('0 fail', '0 fail ')); // one byte more, in the visible text
    expect(spawnSync(join(REPO, 'bin/steward'), ['report', 'verify', `${r.file}.edited`], { encoding: 'utf8' }).status).toBe(3);
  });
});

describe('steward plan -f with a MaskedView, against the cluster', () => {
  it("checks the Warehouse's policy too: a view for a namespace the policy does not name is DENIED (exit 1); an allowed one passes (exit 0)", () => {
    const manifest = (namespace: string) => {
      const file = join(dir, `mv-${namespace}.yaml`);
      writeFileSync(
        file,
        maskedViewYaml({
          name: 'planned',
          namespace,
          warehouse: WH,
          readers: [READER],
          body: `  view: {schema: curated, name: planned}
  from: {table: raw.customers, alias: c}
  columns:
    - {name: email, expr: c.email, mask: email}`,
        }),
      );
      return file;
    };
    const run = (file: string) => spawnSync(join(REPO, 'bin/steward'), ['plan', '-f', file], { encoding: 'utf8', env: process.env });
    const denied = run(manifest(APPS));
    expect(denied.status, denied.stdout + denied.stderr).toBe(1);
    expect(denied.stdout).toMatch(new RegExp(`policy: DENIED: .*namespace ${APPS}`));
    const allowed = run(manifest(NS));
    expect(allowed.status, allowed.stdout + allowed.stderr).toBe(0);
    expect(allowed.stdout).toContain(`policy: allowed by Warehouse ${WH}`);
    expect(allowed.stdout).toContain('"masked": true');
  });
});

describe('each control fails when its fact is broken by hand', () => {
  it('an out-of-band grant on a raw table: least privilege, raw tables locked and audit completeness fail', async () => {
    await asSuperuser((c) => c.query(`GRANT USAGE ON SCHEMA raw TO ${MALLORY}; GRANT SELECT ON raw.customers TO ${MALLORY}`));
    try {
      const r = report();
      expect(r.status).toBe(1);
      const v = verdicts(r.signed!);
      expect(v[`least-privilege:${WH}`]).toBe('fail');
      expect(v[`raw-tables-locked:${WH}/raw.customers`]).toBe('fail');
      expect(v[`audit-complete:${WH}`]).toBe('fail');
      expect(itemOf(r.signed!, 'raw-tables-locked:').result).toContain(`readable by ${MALLORY}`);
      expect(itemOf(r.signed!, 'audit-complete:').result).toContain(`on raw.customers to ${MALLORY}: in the catalog, no audit record`);
    } finally {
      await asSuperuser((c) => c.query(`REVOKE ALL ON raw.customers FROM ${MALLORY}; REVOKE ALL ON SCHEMA raw FROM ${MALLORY}`));
    }
  });

  it("a MaskedView's source readable by its reader: raw tables locked fails, naming the reader", async () => {
    await asSuperuser((c) => c.query(`GRANT USAGE ON SCHEMA raw TO ${READER}; GRANT SELECT ON raw.customers TO ${READER}`));
    try {
      const r = report();
      expect(verdicts(r.signed!)[`raw-tables-locked:${WH}/raw.customers`]).toBe('fail');
      expect(itemOf(r.signed!, 'raw-tables-locked:').result).toContain(`${READER}: CAN read`);
    } finally {
      await asSuperuser((c) => c.query(`REVOKE ALL ON raw.customers FROM ${READER}; REVOKE ALL ON SCHEMA raw FROM ${READER}`));
    }
    expect(verdicts(report().signed!)[`raw-tables-locked:${WH}/raw.customers`]).toBe('pass');
  });

  it('a deleted audit record: the grant it recorded has none, and audit completeness fails', async () => {
    // A superuser can get past the append-only triggers; the report notices what is missing.
    await asSuperuser((c) =>
      c.query(
        `SET session_replication_role = replica; DELETE FROM steward.audit_log WHERE kind = 'DatasetAccess' AND namespace = '${NS}' AND name = 'sales' AND action = 'grant.privileges'; RESET session_replication_role`,
      ),
    );
    const r = report();
    expect(verdicts(r.signed!)[`audit-complete:${WH}`]).toBe('fail');
    expect(itemOf(r.signed!, 'audit-complete:').result).toContain(`DatasetAccess ${NS}/sales: no grant.privileges record`);
  });

  it('a bucket without encryption: encryption at rest fails', async () => {
    await s3.send(new DeleteBucketEncryptionCommand({ Bucket: BUCKET }));
    const r = report();
    expect(verdicts(r.signed!)[`encryption-at-rest:${STORE}`]).toBe('fail');
    expect(itemOf(r.signed!, 'encryption-at-rest:').result).toBe('no default encryption');
  });

  it('a literal password in a Deployment next to a managed Secret: secrets not in code fails, without printing it', async () => {
    const managed = (
      await kube.get<{ data: Record<string, string> }>(
        { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
        'etl-credentials',
        APPS,
      )
    ).data;
    const password = Buffer.from(managed.password!, 'base64').toString();
    apply(`apiVersion: apps/v1
kind: Deployment
metadata: {name: etl, namespace: ${APPS}}
spec:
  selector: {matchLabels: {app: etl}}
  template:
    metadata: {labels: {app: etl}}
    spec:
      containers:
        - name: etl
          image: example.com/etl:1
          env:
            - {name: PGPASSWORD, value: "${password}"}
`);
    const r = report();
    expect(verdicts(r.signed!)[`secrets-not-in-code:${WH}/${APPS}`]).toBe('fail');
    expect(itemOf(r.signed!, 'secrets-not-in-code:').result).toContain(`Deployment ${APPS}/etl container etl env PGPASSWORD: a Steward-managed credential`);
    expect(r.text).not.toContain(password);
  });

  it('a credential older than its rotation schedule (Steward down, the schedule shortened): credential age fails', async () => {
    await steward.stop();
    await kube.patch(SECRET_ROTATION_TYPE, 'etl', APPS, { spec: { schedule: { every: '4s' } } }, 'merge');
    await new Promise((r) => setTimeout(r, 6000));
    const r = report();
    expect(verdicts(r.signed!)[`credential-age:${APPS}/etl`], itemOf(r.signed!, 'credential-age:').result).toBe('fail');
    expect(itemOf(r.signed!, 'credential-age:').result).toMatch(/which has passed: the credential is older than its schedule; 1 rotation\(s\) recorded/);
  });
});
