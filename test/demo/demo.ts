// `make demo`: Steward on the local stack with deploy/examples applied. It seeds the guide's mini
// project (raw.customers, raw.orders) into an `analytics` database, points the example Warehouse at
// the local PostgreSQL, starts Steward in the background and prints what it did and where to look.
import { spawn, spawnSync } from 'node:child_process';
import { openSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { CreateRoleCommand, GetRolePolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { CreateBucketCommand, PutBucketEncryptionCommand, PutBucketPolicyCommand, PutPublicAccessBlockCommand, S3Client } from '@aws-sdk/client-s3';
import { REPO, loadStackEnv } from '../stack/env.ts';
import { Pipeline, SecretProjection, type PipelineResult } from '../stack/pipeline.ts';

loadStackEnv();
const stackDir = process.env.STEWARD_STACK_DIR ?? join(REPO, '.stack');
const env = process.env;

function kubectl(args: string[], input?: string): string {
  const r = spawnSync('kubectl', args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const quietKubectl = (args: string[], input?: string) => spawnSync('kubectl', args, { input, encoding: 'utf8' });

function say(text = ''): void {
  console.log(text);
}

async function sql(database: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({
    host: env.PGHOST,
    port: Number(env.PGPORT),
    user: env.PGUSER,
    password: env.PGPASSWORD,
    database,
    ssl: { ca: readFileSync(env.PGSSLROOTCERT!, 'utf8'), rejectUnauthorized: true },
  });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

// Steward's own login, as docs/warehouse.md tells an operator to make it: no superuser. A new
// password every run (nothing to remember), handed to Steward through the credentials Secret.
const STEWARD_LOGIN = 'steward';
const stewardPassword = randomBytes(18).toString('base64url');

async function seedWarehouse(): Promise<void> {
  const exists = await sql('postgres', "SELECT 1 FROM pg_database WHERE datname = 'analytics'");
  if (exists.rowCount === 0) await sql('postgres', 'CREATE DATABASE analytics');
  await sql(
    'analytics',
    `
    CREATE SCHEMA IF NOT EXISTS raw;
    CREATE SCHEMA IF NOT EXISTS curated;
    CREATE TABLE IF NOT EXISTS raw.customers (id int PRIMARY KEY, email text, phone text, country text);
    CREATE TABLE IF NOT EXISTS raw.orders (id int PRIMARY KEY, customer_id int REFERENCES raw.customers, quantity int, unit_price numeric(10,2), created_at timestamptz);
    INSERT INTO raw.customers VALUES
      (1, 'alice@example.com', '555-010-1234', 'US'), (2, 'bob@example.org', '555-010-5678', 'DE'), (3, 'carol@example.net', '555-010-9012', 'FR')
      ON CONFLICT DO NOTHING;
    INSERT INTO raw.orders VALUES
      (100, 1, 2, 9.50, now()), (101, 2, 1, 120.00, now()), (102, 3, 5, 3.20, now())
      ON CONFLICT DO NOTHING;
    DO $$ BEGIN
      -- curated.customer_sales is built by the MaskedView example; an older demo made a plain view.
      -- (to_regclass, not ::regclass: a cast is evaluated even when the first test is false.)
      IF to_regclass('curated.customer_sales') IS NOT NULL
         AND coalesce(obj_description(to_regclass('curated.customer_sales'), 'pg_class'), '') NOT LIKE 'managed by steward:%' THEN
        DROP VIEW curated.customer_sales;
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analytics_reader') THEN CREATE ROLE analytics_reader NOLOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'alice') THEN CREATE ROLE alice LOGIN IN ROLE analytics_reader; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pii_reader') THEN CREATE ROLE pii_reader NOLOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'priya') THEN CREATE ROLE priya LOGIN IN ROLE analytics_reader, pii_reader; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'etl_service') THEN CREATE ROLE etl_service LOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${STEWARD_LOGIN}') THEN CREATE ROLE ${STEWARD_LOGIN} LOGIN CREATEROLE; END IF;
      -- A stack an older demo ran as the superuser: hand Steward's own schema to its login.
      IF to_regnamespace('steward') IS NOT NULL THEN
        ALTER SCHEMA steward OWNER TO ${STEWARD_LOGIN};
        IF to_regclass('steward.audit_log') IS NOT NULL THEN ALTER TABLE steward.audit_log OWNER TO ${STEWARD_LOGIN}; END IF;
        IF to_regclass('steward.mask_keys') IS NOT NULL THEN ALTER TABLE steward.mask_keys OWNER TO ${STEWARD_LOGIN}; END IF;
      END IF;
    END $$;
    ALTER ROLE ${STEWARD_LOGIN} PASSWORD '${stewardPassword}';
    -- The recipe of docs/warehouse.md.
    GRANT CREATE ON DATABASE analytics TO ${STEWARD_LOGIN};
    GRANT USAGE ON SCHEMA raw TO ${STEWARD_LOGIN} WITH GRANT OPTION;
    GRANT SELECT, INSERT ON raw.customers, raw.orders TO ${STEWARD_LOGIN} WITH GRANT OPTION;
    GRANT USAGE, CREATE ON SCHEMA curated TO ${STEWARD_LOGIN} WITH GRANT OPTION;
    -- docs/secretrotation.md: end a retired login's sessions; keep ALTER ROLE ... PASSWORD out of the log.
    GRANT pg_signal_backend TO ${STEWARD_LOGIN};
    GRANT SET ON PARAMETER log_statement TO ${STEWARD_LOGIN};
  `,
  );
}

// The guide's first milestone on S3: a bucket in moto (the stack's AWS) with default encryption and
// a TLS-only policy, and the data scientist's IAM role, for deploy/examples' ObjectStore and s3 access.
const BUCKET = 'company-curated';
const DATA_SCIENTIST = 'data-scientist';
const iam = new IAMClient({ region: 'us-east-1' });
const s3 = new S3Client({ region: 'us-east-1', forcePathStyle: true });

async function seedObjectStore(): Promise<void> {
  const already = (e: unknown, name: string) => {
    if ((e as { name?: string }).name !== name) throw e;
  };
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((e) => already(e, 'BucketAlreadyOwnedByYou'));
  await s3.send(
    new PutBucketEncryptionCommand({
      Bucket: BUCKET,
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    }),
  );
  const tlsOnly = {
    Sid: 'TLSOnly',
    Effect: 'Deny',
    Principal: '*',
    Action: 's3:*',
    Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`],
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
  };
  await s3.send(new PutBucketPolicyCommand({ Bucket: BUCKET, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [tlsOnly] }) }));
  await s3.send(
    new PutPublicAccessBlockCommand({
      Bucket: BUCKET,
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
    }),
  );
  const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'sagemaker.amazonaws.com' }, Action: 'sts:AssumeRole' }] };
  await iam
    .send(new CreateRoleCommand({ RoleName: DATA_SCIENTIST, AssumeRolePolicyDocument: JSON.stringify(trust) }))
    .catch((e) => already(e, 'EntityAlreadyExistsException'));
}

function applyExamples(): void {
  kubectl(['apply', '--server-side', '--force-conflicts', '-k', join(REPO, 'crds')]);
  quietKubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '-l', 'app.kubernetes.io/part-of=steward']);
  for (const ns of ['steward-system', 'analytics', 'data-eng', 'pipelines', 'governance']) {
    quietKubectl(['create', 'namespace', ns]);
  }
  kubectl(['label', 'namespace', 'analytics', 'steward.dev/tenant=analytics', '--overwrite']);
  const secret = (name: string, data: Record<string, string>) =>
    kubectl(['apply', '-f', '-'], stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'steward-system' }, stringData: data }));
  secret('analytics-db-ca', { 'ca.crt': readFileSync(env.PGSSLROOTCERT!, 'utf8') });
  secret('analytics-db-admin', { username: STEWARD_LOGIN, password: stewardPassword });

  // The example Warehouse as written, pointed at the local server instead of analytics-db.data.svc.
  const wh = parse(readFileSync(join(REPO, 'deploy/examples/warehouse.yaml'), 'utf8'));
  wh.spec.postgres.host = 'localhost';
  wh.spec.postgres.port = Number(env.PGPORT);
  // The platform lets the pipelines namespace rotate etl_service's password (SecretRotation example).
  wh.spec.accessPolicy.push({ namespaces: { matchNames: ['pipelines'] }, schemas: ['curated'], principals: ['etl_service'] });
  kubectl(['apply', '-f', '-'], stringify(wh));
  for (const file of ['objectstore.yaml', 'datasetaccess.yaml', 'datasetaccess-s3.yaml', 'maskedview.yaml', 'secretrotation.yaml', 'accessreview.yaml']) {
    kubectl(['apply', '-f', join(REPO, 'deploy/examples', file)]);
  }
  // A request the policy refuses: the analytics namespace may read curated, not raw.
  kubectl(['apply', '-f', join(REPO, 'test/demo/datasetaccess-denied.yaml')]);
}

/** Three forced rotations of the SecretRotation example while examples/pipeline runs on its mounted Secret. */
async function rotateWhilePipelineRuns(): Promise<PipelineResult> {
  kubectl(['patch', 'sr', '-n', 'pipelines', 'etl-db', '--type', 'merge', '-p', '{"spec":{"gracePeriod":"3s"}}']);
  const read = async () => {
    const s = JSON.parse(kubectl(['get', 'secret', '-n', 'pipelines', 'etl-db-credentials', '-o', 'json']));
    return { data: s.data as Record<string, string>, resourceVersion: s.metadata.resourceVersion as string };
  };
  const mount = new SecretProjection(read);
  await mount.sync();
  mount.start(300);
  const pipeline = new Pipeline(mount.dir, 'SELECT current_user');
  const lastId = () => quietKubectl(['get', 'sr', '-n', 'pipelines', 'etl-db', '-o', 'jsonpath={.status.lastRotationId}']).stdout.trim();
  for (let i = 0; i < 3; i++) {
    const before = lastId();
    kubectl(['annotate', 'sr', '-n', 'pipelines', 'etl-db', `steward.dev/rotate-requested-at=${new Date().toISOString()}`, '--overwrite']);
    for (const deadline = Date.now() + 30_000; lastId() === before && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const result = await pipeline.stop();
  mount.stop();
  return result;
}

/** What a demo login (alice: analytics_reader; priya: also pii_reader) reads. */
async function as(user: 'alice' | 'priya', query: string): Promise<string> {
  const password = randomBytes(18).toString('base64url');
  await sql('postgres', `ALTER ROLE ${user} PASSWORD '${password}'`);
  const client = new pg.Client({
    host: env.PGHOST,
    port: Number(env.PGPORT),
    user,
    password,
    database: 'analytics',
    ssl: { ca: readFileSync(env.PGSSLROOTCERT!, 'utf8'), rejectUnauthorized: true },
  });
  await client.connect();
  try {
    const r = await client.query(query);
    return `${r.rowCount} rows, first: ${JSON.stringify(r.rows[0] ?? {})}`;
  } catch (e) {
    return `ERROR: ${(e as Error).message}`;
  } finally {
    await client.end();
  }
}

async function waitForReason(kind: string, ns: string, name: string, reason: string, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = quietKubectl(['get', kind, '-n', ns, name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].reason}']);
    if (r.stdout.trim() === reason) return true;
    await new Promise((res) => setTimeout(res, 250));
  }
  return false;
}

/** The report's signing key: an Ed25519 key in a Secret, made once. */
function ensureSigningKey(): void {
  if (quietKubectl(['get', 'secret', '-n', 'steward-system', 'steward-report-signing-key']).status === 0) return;
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  kubectl(
    ['apply', '-f', '-'],
    stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'steward-report-signing-key', namespace: 'steward-system' },
      stringData: { 'ed25519.pem': pem },
    }),
  );
}

function startSteward(): { pid: number; log: string } {
  const pidFile = join(stackDir, 'pids', 'steward');
  // A Steward from an earlier `make demo` on this stack would reconcile the same objects: stop it.
  spawnSync('bash', ['-c', `[ -f ${pidFile} ] && kill $(cat ${pidFile}) 2>/dev/null; true`]);
  mkdirSync(join(stackDir, 'pids'), { recursive: true });
  const log = join(stackDir, 'logs', 'steward-demo.log');
  const out = openSync(log, 'a');
  const child = spawn(
    process.execPath,
    [
      '--liftoff-only',
      '--max-semi-space-size=1',
      '--heap-growing-percent=50',
      join(REPO, 'src/main.ts'),
      '--leader-elect=false',
      '--metrics-bind-address',
      '127.0.0.1:8080',
    ],
    {
      cwd: REPO,
      env: { ...env, POD_NAME: 'steward-demo' },
      stdio: ['ignore', out, out],
      detached: true,
    },
  );
  child.unref();
  writeFileSync(pidFile, String(child.pid));
  return { pid: child.pid!, log };
}

async function waitForReady(kind: string, name: string, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = quietKubectl(['get', kind, name, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
    if (r.stdout.trim() === 'True') return true;
    await new Promise((res) => setTimeout(res, 250));
  }
  return false;
}

say('Steward demo: seeding the mini project (raw.customers, raw.orders) into database "analytics"...');
await seedWarehouse();
say('Creating bucket company-curated (encrypted, TLS only) and IAM role data-scientist in moto...');
await seedObjectStore();
say('Applying the CRDs and deploy/examples (the Warehouse pointed at the local PostgreSQL)...');
applyExamples();
const steward = startSteward();
say(`Steward is running in the background (pid ${steward.pid}), logging to ${steward.log}`);
const ready = await waitForReady('warehouse', 'analytics');
say();
say('$ kubectl get warehouse');
say(kubectl(['get', 'warehouse']).trimEnd());
say();
say('$ kubectl get warehouse analytics -o jsonpath=<conditions>');
for (const c of JSON.parse(kubectl(['get', 'warehouse', 'analytics', '-o', 'jsonpath={.status.conditions}']) || '[]') as {
  type: string;
  status: string;
  reason: string;
  message: string;
}[]) {
  say(`  ${c.type.padEnd(12)} ${c.status.padEnd(6)} ${c.reason}: ${c.message}`);
}
say();
if (!ready) say(`The Warehouse did not become Ready: read ${steward.log} and the conditions above.`);
say('What PostgreSQL itself says about a verify-full session (pg_stat_ssl):');
const tls = await sql('analytics', 'SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
say(`  ssl=${tls.rows[0].ssl} version=${tls.rows[0].version} cipher=${tls.rows[0].cipher}`);
say();
say('The audit trail (steward.audit_log in the analytics database, append-only; the latest, connection checks left out):');
const audit = await sql(
  'analytics',
  "SELECT ts, request_id, actor, action, resource, outcome FROM steward.audit_log WHERE action <> 'audit_table.ensure' ORDER BY id DESC LIMIT 6",
).catch(() => ({ rows: [] as Record<string, unknown>[] }));
for (const r of audit.rows) say(`  ${new Date(r.ts as string).toISOString()} ${r.request_id} ${r.actor} ${r.action} ${r.resource} ${r.outcome}`);
say();
const viewReady = await waitForReason('mv', 'data-eng', 'customer-sales', 'ViewReady');
const granted = await waitForReason('dsa', 'analytics', 'churn-analysis', 'Granted', 60_000);
await waitForReason('dsa', 'analytics', 'raw-peek', 'PolicyDenied');
say('$ kubectl get dsa -n analytics -o wide   (one access granted, one denied by the Warehouse policy)');
say(kubectl(['get', 'dsa', '-n', 'analytics', '-o', 'wide']).trimEnd());
say();
await waitForReason('dsa', 'analytics', 'model-training', 'Granted');
say('$ kubectl get os   (the bucket, and what Steward verified on it)');
say(kubectl(['get', 'os']).trimEnd());
say();
say(`The inline policy Steward wrote on IAM role ${DATA_SCIENTIST} for model-training (read analytics/, until its expiry):`);
const written = await iam.send(new GetRolePolicyCommand({ RoleName: DATA_SCIENTIST, PolicyName: 'steward.analytics.model-training' })).catch(() => undefined);
say(
  written?.PolicyDocument
    ? JSON.stringify(JSON.parse(decodeURIComponent(written.PolicyDocument)))
        .replace(/\{"Sid"/g, '\n  {"Sid"')
        .replace(/^/, '  ')
    : '  (none yet: see the DatasetAccess conditions)',
);
say();
say('$ kubectl get mv -n data-eng   (the masked view, built from the MaskedView example)');
say(kubectl(['get', 'mv', '-n', 'data-eng']).trimEnd());
say();
say('alice is a login in analytics_reader. What she reads, connecting over TLS:');
say(
  `  SELECT order_id, email, phone, gross_revenue FROM curated.customer_sales  -> ${await as('alice', 'SELECT order_id, email, phone, gross_revenue FROM curated.customer_sales ORDER BY order_id')}`,
);
say(`  SELECT * FROM raw.customers  -> ${await as('alice', 'SELECT * FROM raw.customers')}`);
say('priya is also in pii_reader. The same view shows her the raw values:');
say(
  `  SELECT order_id, email, phone, gross_revenue FROM curated.customer_sales  -> ${await as('priya', 'SELECT order_id, email, phone, gross_revenue FROM curated.customer_sales ORDER BY order_id')}`,
);
say();
say('$ bin/steward lineage -o text');
say(
  spawnSync(join(REPO, 'bin/steward'), ['lineage', '-o', 'text'], { encoding: 'utf8' })
    .stdout.trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
say();
say('$ bin/steward plan -f test/demo/datasetaccess-denied.yaml   (exits 1: gate pull requests with it)');
const plan = spawnSync(join(REPO, 'bin/steward'), ['plan', '-f', join(REPO, 'test/demo/datasetaccess-denied.yaml')], { encoding: 'utf8' });
say(
  plan.stdout
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
say(`  (exit ${plan.status})`);
say();
const rotated = await waitForReason('sr', 'pipelines', 'etl-db', 'Rotated', 60_000);
say('SecretRotation etl-db: a pipeline (examples/pipeline) queries every 100 ms as etl_service, reading the');
say('mounted Secret etl-db-credentials at every connection, while Steward rotates it three times');
say('(gracePeriod shortened to 3s for the demo; the default is 10m):');
const rotation = await rotateWhilePipelineRuns();
say(`  pipeline: ${rotation.queries} queries, ${rotation.failures} failed, as ${rotation.logins.join(' and ')}`);
say('$ kubectl get sr -n pipelines');
say(kubectl(['get', 'sr', '-n', 'pipelines']).trimEnd());
say();
say('AccessReview governance/analytics-quarterly: a cycle asked for now (the schedule is quarterly), listing');
say('every grant in its scope and the grants in the warehouse that no Steward object explains:');
kubectl(['annotate', 'ar', '-n', 'governance', 'analytics-quarterly', `steward.dev/review-requested-at=${new Date().toISOString()}`, '--overwrite']);
const reviewed = await waitForReason('ar', 'governance', 'analytics-quarterly', 'InReview', 30_000);
say('$ kubectl get ar -n governance');
say(kubectl(['get', 'ar', '-n', 'governance']).trimEnd());
say('$ bin/steward review -n governance analytics-quarterly');
const review = spawnSync(join(REPO, 'bin/steward'), ['review', '-n', 'governance', 'analytics-quarterly'], { encoding: 'utf8' });
say(
  (review.stdout + review.stderr)
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
);
say();
say('The evidence an auditor asks for: every control, checked live now, signed with the key in');
say('Secret steward-system/steward-report-signing-key (made here once; bring your own in production):');
ensureSigningKey();
const reportJson = join(stackDir, 'demo-report.json');
const reportHtml = join(stackDir, 'demo-report.html');
const reportArgs = ['report', '--steward-log', steward.log];
const report = spawnSync(join(REPO, 'bin/steward'), [...reportArgs, '-o', 'json', '--out', reportJson], { encoding: 'utf8' });
spawnSync(join(REPO, 'bin/steward'), [...reportArgs, '-o', 'html', '--out', reportHtml], { encoding: 'utf8' });
say(`$ bin/steward report --steward-log ${steward.log} -o json --out ${reportJson}`);
say(`  ${report.stderr.trimEnd()}`);
let reportOk = report.status === 0;
try {
  const items = (JSON.parse(readFileSync(reportJson, 'utf8')) as { report: { items: { verdict: string; id: string; result: string }[] } }).report.items;
  for (const i of items) say(`  ${i.verdict.toUpperCase().padEnd(13)} ${i.id}${i.verdict === 'pass' ? '' : `: ${i.result}`}`);
} catch (e) {
  reportOk = false;
  say(`  (no report: ${(e as Error).message})`);
}
const verified = spawnSync(join(REPO, 'bin/steward'), ['report', 'verify', reportJson], { encoding: 'utf8' });
say(`$ bin/steward report verify ${reportJson}`);
say(`  ${(verified.stdout + verified.stderr).trimEnd()}`);
say(`  (the same report as a page to open and print: ${reportHtml})`);
say();
say('$ kubectl get steward -A   (every Steward object)');
say(kubectl(['get', 'steward', '-A']).trimEnd());
say();
say('Where to look next:');
say('  . .stack/env.sh                       # KUBECONFIG and PG* for this stack');
say('  kubectl describe warehouse analytics  # conditions and events');
say('  kubectl get events -n default --field-selector reason=Connected');
say(`  tail -f ${steward.log}   # JSON logs, audit records included`);
say('  curl -s 127.0.0.1:8080/metrics | grep controller_runtime_reconcile_total');
say('  psql -d analytics -c "table steward.audit_log"');
say('  kubectl describe dsa -n analytics churn-analysis');
say('  kubectl get configmap -n data-eng customer-sales-lineage -o jsonpath={.data.lineage\\.json}');
say('  make stack-down                       # stops Steward and the stack');
process.exit(ready && granted && viewReady && rotated && rotation.failures === 0 && reviewed && reportOk && verified.status === 0 ? 0 : 1);
