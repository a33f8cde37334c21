// DatasetAccess on S3 through IAM, and the ObjectStore's checks of its bucket, on moto's server.
// moto stores IAM policies and ignores their conditions, so what a policy allows is proven with a
// real IAM evaluator (@cloud-copilot/iam-simulate) over the policy IAM holds, not by moto.
import {
  CreateRoleCommand,
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { CreateBucketCommand, PutBucketEncryptionCommand, PutBucketPolicyCommand, PutPublicAccessBlockCommand, S3Client } from '@aws-sdk/client-s3';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { OBJECT_STORE_TYPE } from '../../src/controllers/objectstore.ts';
import { ACCESS_REVIEW_TYPE } from '../../src/controllers/accessreview.ts';
import { accessPolicyDocument, inlinePolicyName, parsePolicy, samePolicy, type PolicyDocument } from '../../src/governance/s3-policy.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import {
  REPO,
  Steward,
  allEventsText,
  apply,
  condition,
  ensureNamespace,
  eventsAbout,
  kube,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('s3').slice(3);
const NS = `s3-${id}`;
const BUCKET = `curated-${id}`;
const ROLE = `data-scientist-${id}`;
const STORE = `store-${id}`;
/** The IAM role Steward's credentials are for, in the test that hands it assumed-role credentials. */
const STEWARD_ROLE = `steward-${id}`;
/** A role whose inline policies already fill IAM's quota. */
const FULL_ROLE = `full-${id}`;
/** Secret values handed to Steward along the way: none may appear in a log, event or status. */
const secretsSeen: string[] = [];
/** The Warehouse whose audit table keeps the ObjectStore's records (spec.auditWarehouse). */
const AUDIT_WH = `audit-${id}`;
const AUDIT_DB = `s3audit_${id}`;
const SECRET_KEY = randomPassword();
const iam = new IAMClient({ region: 'us-east-1' });
const s3 = new S3Client({ region: 'us-east-1', forcePathStyle: true });
let steward: Steward;
/** The logs of the Steward processes stopped along the way, scanned for credentials at the end. */
const earlierLogs: string[] = [];

const storeYaml = (resync = '2s') => `apiVersion: steward.dev/v1alpha1
kind: ObjectStore
metadata: {name: ${STORE}}
spec:
  s3:
    bucket: ${BUCKET}
    region: us-east-1
    credentialsSecretRef: {namespace: steward-system, name: ${STORE}-aws}
  resyncPeriod: ${resync}
  auditWarehouse: ${AUDIT_WH}
  accessPolicy:
    - namespaces: {matchLabels: {steward.dev/tenant: analytics-${id}}}
      prefixes: [analytics/]
      access: [read]
      principals: [${ROLE}, ${STEWARD_ROLE}, ${FULL_ROLE}]
      maxDuration: 2160h
`;

// api.md's example, as written (the bucket and role made unique to this run).
const accessYaml = (name: string, o: { prefix?: string; access?: string; expiry?: string } = {}) => `apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${NS}}
spec:
  principal:
    iamRole: ${ROLE}
  s3:
    bucket: ${BUCKET}
    prefix: ${o.prefix ?? 'analytics/'}
    access: ${o.access ?? 'read'}
  ${o.expiry ? `expiresAt: "${o.expiry}"` : 'duration: 720h'}
  justification: Model training on curated analytics data
`;

const policyNames = async () => (await iam.send(new ListRolePoliciesCommand({ RoleName: ROLE }))).PolicyNames ?? [];
const policyOf = async (name: string) =>
  parsePolicy((await iam.send(new GetRolePolicyCommand({ RoleName: ROLE, PolicyName: inlinePolicyName(NS, name) }))).PolicyDocument!);

/** Steward's AWS calls so far (steward_aws_calls_total), the writes and the reads. */
async function awsCalls(): Promise<{ writes: number; reads: number }> {
  const text = await steward.metricsText();
  const calls = [...text.matchAll(/^steward_aws_calls_total\{service="(?:iam|s3)",operation="([A-Za-z]+)"\} (\d+)$/gm)];
  const write = /^(Put|Delete|Create|Update|Attach|Detach|Tag|Untag)/;
  const sum = (keep: (op: string) => boolean) => calls.filter((m) => keep(m[1]!)).reduce((n, m) => n + Number(m[2]), 0);
  return { writes: sum((op) => write.test(op)), reads: sum((op) => !write.test(op)) };
}
const awsWrites = async () => (await awsCalls()).writes;

async function decide(policy: PolicyDocument, action: string, resource: string, context: Record<string, string>): Promise<string> {
  const r = await runSimulation(
    {
      identityPolicies: [{ name: 'steward', policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: { action, principal: `arn:aws:iam::123456789012:role/${ROLE}`, resource: { resource, accountId: '123456789012' }, contextVariables: context },
    },
    {},
  );
  if (r.resultType === 'error') throw new Error(JSON.stringify(r.errors));
  return r.overallResult;
}

beforeAll(async () => {
  await ensureNamespace('steward-system');
  await ensureNamespace(NS);
  await kube.patch(
    { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
    NS,
    undefined,
    {
      metadata: { labels: { 'steward.dev/tenant': `analytics-${id}` } },
    },
    'merge',
  );
  await putSecret('steward-system', `${STORE}-aws`, { accessKeyId: `AKIA${id.toUpperCase().padEnd(16, 'X')}`, secretAccessKey: SECRET_KEY });
  await withPg((c) => c.query(`CREATE DATABASE ${AUDIT_DB}`));
  await putWarehouseSecrets(AUDIT_WH);
  apply(stackWarehouseYaml({ name: AUDIT_WH, database: AUDIT_DB }));
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await iam.send(
    new CreateRoleCommand({
      RoleName: ROLE,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      }),
    }),
  );
  steward = Steward.start({ args: ['--resync', '2s'] });
});

afterAll(async () => {
  for (const name of ['churn', 'raw', 'soon', 'elsewhere', 'dup', 'itself', 'full', 'orphan'])
    await kube.delete(DATASET_ACCESS_TYPE, name, NS).catch(() => undefined);
  await waitFor('accesses gone', async () => (await kube.list(DATASET_ACCESS_TYPE, { namespace: NS })).items.length === 0, 30_000).catch(() => undefined);
  await kube.delete(OBJECT_STORE_TYPE, STORE).catch(() => undefined);
  await kube.delete(OBJECT_STORE_TYPE, `${STORE}-twin`).catch(() => undefined);
  await steward?.stop();
  await kube.delete(WAREHOUSE_TYPE, AUDIT_WH).catch(() => undefined);
  await withPg((c) => c.query(`DROP DATABASE IF EXISTS ${AUDIT_DB} WITH (FORCE)`)).catch(() => undefined);
});

describe('ObjectStore', () => {
  it('reports a bucket without default encryption, TLS-only policy or public access block, and turns True by itself once fixed', async () => {
    apply(storeYaml());
    const bare = await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'Ready', 'True', 'Connected');
    expect(condition(bare, 'EncryptionAtRest')).toMatchObject({ status: 'False', reason: 'NoDefaultEncryption' });
    expect(condition(bare, 'TLSOnly')).toMatchObject({ status: 'False', message: 'the bucket has no bucket policy' });
    expect(condition(bare, 'PublicAccessBlocked')).toMatchObject({ status: 'False' });
    expect(condition(bare, 'Ready')?.message).toContain('not protected: EncryptionAtRest, TLSOnly, PublicAccessBlocked');

    await s3.send(
      new PutBucketEncryptionCommand({
        Bucket: BUCKET,
        ServerSideEncryptionConfiguration: {
          Rules: [
            {
              ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'arn:aws:kms:us-east-1:123456789012:key/curated' },
              BucketKeyEnabled: true,
            },
          ],
        },
      }),
    );
    await s3.send(
      new PutBucketPolicyCommand({
        Bucket: BUCKET,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'TLSOnly',
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
    await s3.send(
      new PutPublicAccessBlockCommand({
        Bucket: BUCKET,
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
      }),
    );
    const fixed = await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'EncryptionAtRest', 'True', 'SSEKMS', 30_000);
    expect(condition(fixed, 'EncryptionAtRest')?.message).toContain('arn:aws:kms:us-east-1:123456789012:key/curated');
    await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'TLSOnly', 'True', 'DeniesInsecureTransport', 30_000);
    const all = await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'PublicAccessBlocked', 'True', 'Blocked', 30_000);
    expect((all as Conditioned & { status: { encryption: unknown } }).status.encryption).toEqual({
      algorithm: 'aws:kms',
      kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/curated',
      bucketKeyEnabled: true,
    });
  });
});

describe('DatasetAccess on S3', () => {
  it("api.md's example becomes Ready; the role holds exactly Steward's policy, which reads the prefix and nothing else, until the expiry", async () => {
    apply(accessYaml('churn'));
    const dsa = await waitForCondition(DATASET_ACCESS_TYPE, 'churn', NS, 'Ready', 'True', 'Granted');
    const expiresAt = (dsa as Conditioned & { status: { expiresAt: string } }).status.expiresAt;
    expect(await policyNames()).toEqual([inlinePolicyName(NS, 'churn')]);
    const held = await policyOf('churn');
    expect(samePolicy(held, accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access: 'read', expiresAt, region: 'us-east-1' }))).toBe(true);
    const before = new Date(Date.parse(expiresAt) - 1000).toISOString();
    const after = new Date(Date.parse(expiresAt) + 1000).toISOString();
    const obj = (k: string) => `arn:aws:s3:::${BUCKET}/${k}`;
    expect(await decide(held, 's3:GetObject', obj('analytics/part-0.parquet'), { 'aws:CurrentTime': before })).toBe('Allowed');
    expect(await decide(held, 's3:ListBucket', `arn:aws:s3:::${BUCKET}`, { 'aws:CurrentTime': before, 's3:prefix': 'analytics/' })).toBe('Allowed');
    expect(await decide(held, 's3:PutObject', obj('analytics/x'), { 'aws:CurrentTime': before })).toBe('ImplicitlyDenied');
    expect(await decide(held, 's3:GetObject', obj('raw/customers.csv'), { 'aws:CurrentTime': before })).toBe('ImplicitlyDenied');
    expect(await decide(held, 's3:ListBucket', `arn:aws:s3:::${BUCKET}`, { 'aws:CurrentTime': before })).toBe('ImplicitlyDenied');
    expect(await decide(held, 's3:GetObject', obj('analytics/part-0.parquet'), { 'aws:CurrentTime': after })).toBe('ImplicitlyDenied');
    // The IAM call is in the audit Warehouse's append-only table, not only in the log.
    const rows = await withPg(
      async (c) => (await c.query(`SELECT action, resource, outcome, request_id FROM steward.audit_log WHERE kind = 'DatasetAccess' AND name = 'churn'`)).rows,
      { database: AUDIT_DB },
    );
    expect(rows).toEqual([
      expect.objectContaining({ action: 'iam.policy.put', resource: `iam:role/${ROLE}/policy/${inlinePolicyName(NS, 'churn')}`, outcome: 'success' }),
    ]);
  });

  it('a request outside the accessPolicy is PolicyDenied and nothing is written to IAM', async () => {
    const writes = await awsWrites();
    apply(accessYaml('raw', { prefix: 'raw/' }));
    const denied = await waitForCondition(DATASET_ACCESS_TYPE, 'raw', NS, 'Ready', 'False', 'PolicyDenied');
    expect(condition(denied, 'Ready')?.message).toContain('may not request prefix "raw/"');
    expect(await policyNames()).not.toContain(inlinePolicyName(NS, 'raw'));
    expect(await awsWrites()).toBe(writes);
  });

  it('`steward plan` prints the decision and the policy it would write, and exits 1 on a denial', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plan-'));
    const plan = (yaml: string) => {
      writeFileSync(join(dir, 'dsa.yaml'), yaml);
      return spawnSync(join(REPO, 'bin/steward'), ['plan', '-f', join(dir, 'dsa.yaml')], { encoding: 'utf8', env: process.env });
    };
    const allowed = plan(accessYaml('planned'));
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout).toContain(`allowed by ObjectStore ${STORE} accessPolicy[0]`);
    expect(allowed.stdout).toContain(`inline policy ${inlinePolicyName(NS, 'planned')} on IAM role ${ROLE}`);
    const printed = JSON.parse(allowed.stdout.slice(allowed.stdout.indexOf('{'))) as PolicyDocument;
    const expiresAt = /expires (\S+)/.exec(allowed.stdout)![1]!;
    expect(samePolicy(printed, accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access: 'read', expiresAt, region: 'us-east-1' }))).toBe(true);
    const denied = plan(accessYaml('planned', { access: 'readWrite' }));
    expect(denied.status).toBe(1);
    expect(denied.stdout).toContain('policy: DENIED: namespace');
    expect(denied.stdout).not.toContain('"Statement"');
  });

  it("Steward's own IAM role is never grantable, whatever the accessPolicy says", async () => {
    // Steward's credentials become those of a role it assumed (as with IRSA): GetCallerIdentity says so.
    const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' }] };
    await iam.send(new CreateRoleCommand({ RoleName: STEWARD_ROLE, AssumeRolePolicyDocument: JSON.stringify(trust) }));
    const assumed = await new STSClient({ region: 'us-east-1' }).send(
      new AssumeRoleCommand({ RoleArn: `arn:aws:iam::123456789012:role/${STEWARD_ROLE}`, RoleSessionName: 'steward' }),
    );
    const c = assumed.Credentials!;
    secretsSeen.push(c.SecretAccessKey!, c.SessionToken!);
    await putSecret('steward-system', `${STORE}-aws`, { accessKeyId: c.AccessKeyId!, secretAccessKey: c.SecretAccessKey!, sessionToken: c.SessionToken! });
    const writes = await awsWrites();
    apply(accessYaml('itself').replace(`iamRole: ${ROLE}`, `iamRole: ${STEWARD_ROLE}`));
    const refused = await waitForCondition(DATASET_ACCESS_TYPE, 'itself', NS, 'Ready', 'False', 'PolicyDenied', 30_000);
    expect(condition(refused, 'Ready')?.message).toContain(`IAM role ${STEWARD_ROLE} is Steward's own identity: it is never grantable`);
    expect((await iam.send(new ListRolePoliciesCommand({ RoleName: STEWARD_ROLE }))).PolicyNames).toEqual([]);
    expect(await awsWrites()).toBe(writes);
  });

  it("an ARN of another account naming a role of the same name gets nothing: Steward's account's role is not that role", async () => {
    const writes = await awsWrites();
    apply(accessYaml('elsewhere').replace(`iamRole: ${ROLE}`, `iamRole: arn:aws:iam::999999999999:role/${ROLE}`));
    const refused = await waitForCondition(DATASET_ACCESS_TYPE, 'elsewhere', NS, 'Ready', 'False', 'PrincipalNotFound');
    expect(condition(refused, 'Ready')?.message).toContain('Steward writes policies only on roles of its own account');
    expect(await policyNames()).not.toContain(inlinePolicyName(NS, 'elsewhere'));
    expect(await awsWrites()).toBe(writes);
  });

  it('two ObjectStores naming one bucket grant nothing new until one goes (ObjectStoreConflict)', async () => {
    apply(storeYaml().replace(`name: ${STORE}}`, `name: ${STORE}-twin}`));
    await waitForCondition(OBJECT_STORE_TYPE, `${STORE}-twin`, undefined, 'Ready', 'True', 'Connected');
    apply(accessYaml('dup'));
    const conflict = await waitForCondition(DATASET_ACCESS_TYPE, 'dup', NS, 'Ready', 'False', 'ObjectStoreConflict');
    expect(condition(conflict, 'Ready')?.message).toContain(`ObjectStores ${STORE} and ${STORE}-twin both name bucket ${BUCKET}`);
    expect(await policyNames()).not.toContain(inlinePolicyName(NS, 'dup'));
    await kube.delete(OBJECT_STORE_TYPE, `${STORE}-twin`);
    await waitForCondition(DATASET_ACCESS_TYPE, 'dup', NS, 'Ready', 'True', 'Granted', 30_000);
    await kube.delete(DATASET_ACCESS_TYPE, 'dup', NS);
    await waitFor('dup gone', async () => !(await policyNames()).includes(inlinePolicyName(NS, 'dup')), 30_000);
  });

  it("restores an edited or deleted policy (drift_corrected), and leaves a policy that is not Steward's alone, reporting it", async () => {
    const name = inlinePolicyName(NS, 'churn');
    const wide = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }] };
    await iam.send(new PutRolePolicyCommand({ RoleName: ROLE, PolicyName: name, PolicyDocument: JSON.stringify(wide) }));
    const team = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/team/*` }] };
    await iam.send(new PutRolePolicyCommand({ RoleName: ROLE, PolicyName: 'team-policy', PolicyDocument: JSON.stringify(team) }));
    await waitFor('the policy restored', async () => !JSON.stringify(await policyOf('churn')).includes('"s3:*"'), 30_000);
    const audited = (l: Record<string, unknown>) => l.audit as { action?: string; name?: string } | undefined;
    await steward.waitForLog('drift_corrected audited', (l) => audited(l)?.action === 'drift_corrected' && audited(l)?.name === 'churn');
    const reported = await waitFor(
      'the foreign policy reported',
      async () => {
        const o = await kube.get<Conditioned & { status: { otherPolicies?: string[] } }>(DATASET_ACCESS_TYPE, 'churn', NS);
        return o.status.otherPolicies?.includes('team-policy') ? o : undefined;
      },
      30_000,
    );
    expect(condition(reported, 'Ready')?.message).toContain('team-policy');
    expect(parsePolicy((await iam.send(new GetRolePolicyCommand({ RoleName: ROLE, PolicyName: 'team-policy' }))).PolicyDocument!)).toEqual(team);
  });

  it('idle resyncs and a restart make 0 IAM writes', async () => {
    // Quiet first: the drift above is corrected; then ten resyncs of 2 s.
    await new Promise((r) => setTimeout(r, 3000));
    const before = await awsCalls();
    await new Promise((r) => setTimeout(r, 21_000));
    const after = await awsCalls();
    expect(after.writes).toBe(before.writes);
    // The resyncs did run: each read the role and its policies again.
    expect(after.reads).toBeGreaterThan(before.reads + 10);
    await steward.stop();
    earlierLogs.push(steward.logs());
    steward = Steward.start({ args: ['--resync', '2s'] });
    await steward.waitForLog('controllers started', (l) => l.msg === 'controller started' && l.controller === 'datasetaccess');
    await new Promise((r) => setTimeout(r, 8000));
    expect(await awsWrites()).toBe(0);
    expect((await awsCalls()).reads).toBeGreaterThan(0);
  }, 60_000);

  it("a policy that would take the role over IAM's inline quota is not written: PolicyQuotaExceeded, and the role's own policy stays", async () => {
    await iam.send(new CreateRoleCommand({ RoleName: FULL_ROLE, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
    // Someone else's inline policy of about 10,000 characters: Steward's, some 600 more, would pass 10,240.
    const theirs = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 's3:GetObject',
          Resource: Array.from({ length: 275 }, (_, i) => `arn:aws:s3:::other-bucket/p${String(i).padStart(4, '0')}/*`),
        },
      ],
    });
    expect(theirs.length).toBeGreaterThan(9_900);
    expect(theirs.length).toBeLessThan(10_240);
    await iam.send(new PutRolePolicyCommand({ RoleName: FULL_ROLE, PolicyName: 'theirs', PolicyDocument: theirs }));
    const writesBefore = await awsWrites();
    apply(accessYaml('full').replace(`iamRole: ${ROLE}`, `iamRole: ${FULL_ROLE}`));
    const obj = await waitForCondition(DATASET_ACCESS_TYPE, 'full', NS, 'Stalled', 'True', 'PolicyQuotaExceeded');
    expect(condition(obj, 'Ready')?.message).toMatch(/over IAM's quota of 10240; nothing was written/);
    expect((await iam.send(new ListRolePoliciesCommand({ RoleName: FULL_ROLE }))).PolicyNames).toEqual(['theirs']);
    const held = (await iam.send(new GetRolePolicyCommand({ RoleName: FULL_ROLE, PolicyName: 'theirs' }))).PolicyDocument!;
    expect(samePolicy(parsePolicy(held), parsePolicy(theirs))).toBe(true);
    expect(await awsWrites()).toBe(writesBefore);
    await kube.delete(DATASET_ACCESS_TYPE, 'full', NS);
  });

  it('expires on time: the policy goes within a second or two of the deadline, with Expired and an Event', async () => {
    const deadline = new Date(Math.ceil((Date.now() + 6000) / 1000) * 1000);
    apply(accessYaml('soon', { expiry: deadline.toISOString().replace('.000Z', 'Z') }));
    await waitForCondition(DATASET_ACCESS_TYPE, 'soon', NS, 'Ready', 'True', 'Granted');
    expect(await policyNames()).toContain(inlinePolicyName(NS, 'soon'));
    await waitForCondition(DATASET_ACCESS_TYPE, 'soon', NS, 'Expired', 'True', 'Expired', 20_000);
    expect(await policyNames()).not.toContain(inlinePolicyName(NS, 'soon'));
    // The lag, from the deadline to the audit record written once IAM had deleted the policy.
    const deleted = await withPg(
      async (c) =>
        (
          await c.query(`SELECT ts FROM steward.audit_log WHERE kind = 'DatasetAccess' AND namespace = $1 AND name = 'soon' AND action = 'iam.policy.delete'`, [
            NS,
          ])
        ).rows,
      { database: AUDIT_DB },
    );
    expect(deleted).toHaveLength(1);
    const lag = (deleted[0].ts as Date).getTime() - deadline.getTime();
    console.log(`s3 expiry: the policy deleted ${lag} ms after the deadline`);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(1000);
    expect((await eventsAbout('soon')).some((e) => e.type === 'Normal' && e.reason === 'Expired')).toBe(true);
  });

  it('deletionPolicy Orphan leaves the policy on the role when the access goes, audited in the table', async () => {
    apply(accessYaml('orphan').replace('  justification:', '  deletionPolicy: Orphan\n  justification:'));
    await waitForCondition(DATASET_ACCESS_TYPE, 'orphan', NS, 'Ready', 'True', 'Granted');
    const held = await policyOf('orphan');
    await kube.delete(DATASET_ACCESS_TYPE, 'orphan', NS);
    await waitFor('orphan gone', async () =>
      kube.get(DATASET_ACCESS_TYPE, 'orphan', NS).then(
        () => false,
        () => true,
      ),
    );
    expect(await policyNames()).toContain(inlinePolicyName(NS, 'orphan'));
    expect(samePolicy(await policyOf('orphan'), held)).toBe(true);
    const rows = await withPg(
      async (c) =>
        (await c.query(`SELECT action, outcome FROM steward.audit_log WHERE namespace = $1 AND name = 'orphan' AND action = 'access.orphan'`, [NS])).rows,
      { database: AUDIT_DB },
    );
    expect(rows).toEqual([{ action: 'access.orphan', outcome: 'success' }]);
    // Orphaned means no longer Steward's: removed by hand here, as its docs tell the owner to.
    await iam.send(new DeleteRolePolicyCommand({ RoleName: ROLE, PolicyName: inlinePolicyName(NS, 'orphan') }));
  });

  it("an AccessReview of the ObjectStore lists the accesses in scope and the IAM policies that are not Steward's; its revokes take effect", async () => {
    const GOV = `s3-gov-${id}`;
    await ensureNamespace(GOV);
    const ar = (decisions = '') => `apiVersion: steward.dev/v1alpha1
kind: AccessReview
metadata: {name: bucket-review, namespace: ${GOV}}
spec:
  schedule: {cron: "0 9 1 1 *"}
  scope: {objectStore: ${STORE}, namespaces: [${NS}], prefixes: [analytics/]}
  reviewers: [alice@example.com]
  dueIn: 1h
${decisions}`;
    // Default deny: until the ObjectStore names the namespace, the review sees nothing.
    apply(ar());
    const refused = await waitForCondition(ACCESS_REVIEW_TYPE, 'bucket-review', GOV, 'Stalled', 'True', 'PolicyDenied');
    expect(condition(refused, 'Ready')?.message).toMatch(new RegExp(`ObjectStore ${STORE}'s reviewPolicy does not name namespace ${GOV}`));
    await kube.patch(OBJECT_STORE_TYPE, STORE, undefined, { spec: { reviewPolicy: { namespaces: { matchNames: [GOV] } } } }, 'merge');
    const extra = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*` }] };
    await iam.send(new PutRolePolicyCommand({ RoleName: ROLE, PolicyName: 'extra-policy', PolicyDocument: JSON.stringify(extra) }));
    await kube.patch(
      ACCESS_REVIEW_TYPE,
      'bucket-review',
      GOV,
      { metadata: { annotations: { 'steward.dev/review-requested-at': new Date().toISOString() } } },
      'merge',
    );
    type Review = {
      cycle?: { id: string };
      findings?: { access: string; principal: string; dataset: string; privileges: string }[];
      outOfBand?: { id: string; grantee: string; object: string; kind: string; decision: string }[];
    };
    const review = async () => (await kube.get<{ status?: Review }>(ACCESS_REVIEW_TYPE, 'bucket-review', GOV)).status ?? {};
    const s = await waitFor('a cycle', async () => ((await review()).cycle ? review() : undefined));
    expect(s.findings!.map((f) => [f.access, f.principal, f.dataset, f.privileges])).toEqual([[`${NS}/churn`, ROLE, `s3://${BUCKET}/analytics/`, 'read']]);
    expect(s.outOfBand!.map((o) => [o.kind, o.grantee, o.object]).sort()).toEqual([
      ['iam-policy', ROLE, 'extra-policy'],
      ['iam-policy', ROLE, 'team-policy'],
    ]);
    const id_ = (name: string) => s.outOfBand!.find((o) => o.object === name)!.id;
    apply(
      ar(`  decisions:
    - {cycle: "${s.cycle!.id}", access: ${NS}/churn, decision: revoke, by: alice@example.com, reason: project over}
    - {cycle: "${s.cycle!.id}", finding: ${id_('extra-policy')}, decision: revoke, by: alice@example.com}
    - {cycle: "${s.cycle!.id}", finding: ${id_('team-policy')}, decision: keep, by: alice@example.com}
`),
    );
    const revoked = await waitForCondition(DATASET_ACCESS_TYPE, 'churn', NS, 'Ready', 'False', 'RevokedByReview');
    expect(condition(revoked, 'Ready')?.message).toMatch(/by alice@example.com \(project over\)/);
    await waitFor('extra-policy removed', async () => !(await policyNames()).includes('extra-policy'));
    const names = await policyNames();
    expect(names).not.toContain(inlinePolicyName(NS, 'churn'));
    expect(names).toContain('team-policy'); // kept
    const rows = await withPg(
      async (c) =>
        (await c.query(`SELECT action, resource FROM steward.audit_log WHERE action IN ('review.remediate', 'access.revoke_by_review') ORDER BY id`)).rows,
      { database: AUDIT_DB },
    );
    expect(rows.map((r) => r.action).sort()).toEqual(['access.revoke_by_review', 'review.remediate']);
    expect(rows.find((r) => r.action === 'review.remediate')!.resource).toBe(`iam:role/${ROLE}/policy/extra-policy`);
    await kube.delete(ACCESS_REVIEW_TYPE, 'bucket-review', GOV);
  });

  it('deletion removes the policy; no AWS credential appears in logs, events or status', async () => {
    await kube.delete(DATASET_ACCESS_TYPE, 'churn', NS);
    await waitFor(
      'churn gone',
      async () =>
        kube.get(DATASET_ACCESS_TYPE, 'churn', NS).then(
          () => false,
          () => true,
        ),
      30_000,
    );
    expect(await policyNames()).not.toContain(inlinePolicyName(NS, 'churn'));
    expect(await policyNames()).toContain('team-policy');
    const statuses = JSON.stringify([...(await kube.list(DATASET_ACCESS_TYPE, { namespace: NS })).items, await kube.get(OBJECT_STORE_TYPE, STORE)]);
    for (const text of [...earlierLogs, steward.logs(), await allEventsText(), statuses]) {
      for (const secret of [SECRET_KEY, ...secretsSeen]) expect(text).not.toContain(secret);
    }
    expect(secretsSeen).toHaveLength(2);
    expect(earlierLogs.join('').length).toBeGreaterThan(1000);
  });
});
