// Revoke at admission (--revoke-at-admission), on the real stack: kube-apiserver sends the DELETE of
// a DatasetAccess to Steward's validating webhook over loopback TLS, and Steward revokes before it
// answers. Proved as the principal's login: the moment `kubectl delete` returns, it can no longer
// read. Tried to break: a dry run, a warehouse that does not answer (the DELETE is refused, the
// grant and the object stay, no password in the refusal), accesses deleted while they are being
// granted, a DELETE the webhook never saw (the watch cleans up), a replica that does not lead
// answering the webhook, and an access that still carries the finalizer from before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateRoleCommand, IAMClient, ListRolePoliciesCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import https from 'node:https';
import { parse } from 'yaml';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { OBJECT_STORE_TYPE } from '../../src/controllers/objectstore.ts';
import { inlinePolicyName } from '../../src/governance/s3-policy.ts';
import { groupRoleName } from '../../src/governance/grants.ts';
import type { KubeObject } from '../../src/runtime/kube.ts';
import {
  VALIDATING_WEBHOOK_CONFIGURATION_TYPE,
  WEBHOOK_CONFIGURATION_TYPE,
  loopbackCertificates,
  revokeWebhookConfiguration,
  webhookConfiguration,
} from '../stack/webhook.ts';
import {
  type Conditioned,
  Steward,
  ensureNamespace,
  kube,
  kubectl,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  allowUsers,
  putWarehouseSecrets,
  stackWarehouseYaml,
  withPg,
} from './harness.ts';

const id = unique('rv').slice(3).replace(/-/g, '');
const DB = `rv_${id}`;
const NS = `rv-${id}`;
const WH = `wh-rv-${id}`;
const READER = `reader_${id}`;
const READER_PW = randomPassword();
const ALICE = `alice-${id}@example.com`;
const LEASE = unique('lease-rv');
const MUTATING = `steward-stamp-${id}`;
const VALIDATING = `steward-revoke-${id}`;
const LABEL = 'steward.dev/revoke-test';
const SELECT = 'SELECT count(*) FROM app.events';
let leader: Steward;
let revokeRbac: (() => Promise<void>) | undefined;
let standby: Steward | undefined;
let ca: string;
let leaderPort: number;

const access = (name: string, opts: { deletionPolicy?: string; finalizer?: boolean } = {}) => `apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata:
  name: ${name}
  namespace: ${NS}
  labels: {${LABEL}: "${id}"}
${opts.finalizer ? '  finalizers: [steward.dev/revoke-access]\n' : ''}spec:
  principal: {role: ${READER}}
  warehouse: {name: ${WH}, schema: app, tables: [events]}
  justification: revoke at admission test
${opts.deletionPolicy ? `  deletionPolicy: ${opts.deletionPolicy}\n` : ''}`;

/** The test's Warehouse; at `port` 1 it does not answer. */
const warehouse = (port?: number) =>
  stackWarehouseYaml({ name: WH, database: DB, port, policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [app]` });

/** Applied by the stack's admin: the accesses are deleted as ALICE, so an audit record naming her was written at her DELETE's admission. */
function apply(yaml: string): void {
  const r = kubectl(['apply', '-f', '-'], yaml);
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
}

/** What the principal's own login gets for SELECT: true, or PostgreSQL's error message. */
async function readerCan(): Promise<true | string> {
  return withPg(
    (c) =>
      c.query(SELECT).then(
        () => true as const,
        (e: Error) => e.message,
      ),
    { database: DB, user: READER, password: READER_PW },
  );
}

const roleExists = (name: string) =>
  withPg(async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [groupRoleName(NS, name)])).rowCount === 1, { database: DB });

const exists = (name: string) =>
  kube.get(DATASET_ACCESS_TYPE, name, NS).then(
    () => true,
    () => false,
  );

const auditRows = (name: string) =>
  withPg(
    async (c) =>
      (
        await c.query<{ action: string; actor: string; outcome: string; error: string | null }>(
          'SELECT action, actor, outcome, error FROM steward.audit_log WHERE kind = $1 AND name = $2 ORDER BY id',
          ['DatasetAccess', name],
        )
      ).rows,
    { database: DB },
  );

const webhookPort = async (s: Steward) =>
  Number(
    String((await s.waitForLog('the webhook serving', (l) => l.msg === 'admission webhook serving')).webhook)
      .split(':')
      .pop(),
  );

/** Points the API server's DELETEs of this test's accesses at `port` (or at nothing). */
async function routeDeletes(port: number | undefined): Promise<void> {
  await kube.delete(VALIDATING_WEBHOOK_CONFIGURATION_TYPE, VALIDATING).catch(() => undefined);
  if (port !== undefined)
    await kube.create(
      VALIDATING_WEBHOOK_CONFIGURATION_TYPE,
      revokeWebhookConfiguration(VALIDATING, port, ca, { objectSelector: { matchLabels: { [LABEL]: id } } }),
    );
  // The API server takes a moment to use a new configuration.
  await new Promise((r) => setTimeout(r, 1500));
}

async function granted(name: string): Promise<Conditioned> {
  return waitForCondition(DATASET_ACCESS_TYPE, name, NS, 'Ready', 'True', 'Granted');
}

beforeAll(async () => {
  const certificates = loopbackCertificates();
  ca = certificates.ca;
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await withPg(
    (c) =>
      c.query(`CREATE ROLE ${READER} LOGIN PASSWORD '${READER_PW}'; CREATE SCHEMA app; CREATE TABLE app.events (id int); INSERT INTO app.events VALUES (1);`),
    { database: DB },
  );
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  revokeRbac = await allowUsers(VALIDATING, [ALICE], ['get', 'list', 'create', 'update', 'patch', 'delete']);
  kubectl(['apply', '-f', '-'], warehouse());
  const args = ['--resync', '5s', '--webhook-bind-address', '127.0.0.1:0', '--webhook-cert-dir', certificates.dir, '--revoke-at-admission', 'true'];
  leader = Steward.start({ lease: LEASE, args });
  await leader.waitForLog('leadership', (l) => l.msg === 'controllers running', 60_000);
  // A second replica on the same Lease: it does not lead, and serves the webhook all the same.
  standby = Steward.start({ lease: LEASE, args });
  await standby.waitForLog('the standby waiting', (l) => l.msg === 'waiting for leadership');
  await kube.create(
    WEBHOOK_CONFIGURATION_TYPE,
    webhookConfiguration(MUTATING, await webhookPort(leader), ca, { objectSelector: { matchLabels: { [LABEL]: id } } }),
  );
  leaderPort = await webhookPort(leader);
  await routeDeletes(leaderPort);
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
}, 120_000);

afterAll(async () => {
  await kube.delete(VALIDATING_WEBHOOK_CONFIGURATION_TYPE, VALIDATING).catch(() => undefined);
  await kube.delete(WEBHOOK_CONFIGURATION_TYPE, MUTATING).catch(() => undefined);
  await standby?.stop();
  await leader?.stop();
  const left = await kube.list<KubeObject>(DATASET_ACCESS_TYPE, { namespace: NS }).catch(() => ({ items: [] as KubeObject[] }));
  for (const a of left.items) {
    await kube.patch(DATASET_ACCESS_TYPE, a.metadata.name, NS, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
    await kube.delete(DATASET_ACCESS_TYPE, a.metadata.name, NS).catch(() => undefined);
  }
  await revokeRbac?.();
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('revoke at admission', () => {
  it('an access is made without a finalizer; the moment kubectl delete returns, its principal cannot read, audited as who deleted it', async () => {
    apply(access('gone'));
    const obj = await granted('gone');
    expect(obj.metadata.finalizers ?? []).toEqual([]);
    expect(await readerCan()).toBe(true);

    const r = kubectl(['delete', '--as', ALICE, '--wait=false', 'datasetaccess', 'gone', '-n', NS]);
    expect(r.code, r.stderr).toBe(0);
    // No waiting: the revoke was done before the API server admitted the DELETE.
    expect(await readerCan()).toMatch(/permission denied/);
    expect(await roleExists('gone')).toBe(false);
    expect(await exists('gone')).toBe(false);
    const rows = await auditRows('gone');
    const drop = rows.find((row) => row.action === 'role.drop');
    expect(drop).toMatchObject({ actor: ALICE, outcome: 'success' });
  });

  it('a dry run revokes nothing', async () => {
    apply(access('dry'));
    await granted('dry');
    const r = kubectl(['delete', '--as', ALICE, '--dry-run=server', 'datasetaccess', 'dry', '-n', NS]);
    expect(r.code, r.stderr).toBe(0);
    expect(await exists('dry')).toBe(true);
    expect(await roleExists('dry')).toBe(true);
    expect(await readerCan()).toBe(true);
    await kube.delete(DATASET_ACCESS_TYPE, 'dry', NS);
    expect(await roleExists('dry')).toBe(false);
  });

  it('deletionPolicy Orphan: the access goes, its grant stays', async () => {
    apply(access('kept', { deletionPolicy: 'Orphan' }));
    await granted('kept');
    await kube.delete(DATASET_ACCESS_TYPE, 'kept', NS);
    expect(await exists('kept')).toBe(false);
    expect(await roleExists('kept')).toBe(true);
    expect(await readerCan()).toBe(true);
    await withPg((c) => c.query(`DROP OWNED BY "${groupRoleName(NS, 'kept')}"; DROP ROLE "${groupRoleName(NS, 'kept')}"`), { database: DB });
  });

  it('while the warehouse does not answer, the DELETE is refused with the reason and no password; the access and its grant stay; it goes once it answers', async () => {
    apply(access('stuck'));
    await granted('stuck');
    kubectl(['apply', '-f', '-'], warehouse(1));
    await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'False', 'Unreachable');
    const r = kubectl(['delete', '--as', ALICE, '--wait=false', 'datasetaccess', 'stuck', '-n', NS]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/admission webhook "revoke\.steward\.dev" denied the request: Steward did not delete DatasetAccess .*\/stuck: cannot revoke/);
    expect(r.stderr).not.toContain(process.env.PGPASSWORD!);
    expect(await exists('stuck')).toBe(true);
    expect(await roleExists('stuck')).toBe(true);
    expect(await readerCan()).toBe(true); // still granted, and still said to be: nothing was lost silently
    kubectl(['apply', '-f', '-'], warehouse());
    await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
    const again = kubectl(['delete', '--as', ALICE, '--wait=false', 'datasetaccess', 'stuck', '-n', NS]);
    expect(again.code, again.stderr).toBe(0);
    expect(await roleExists('stuck')).toBe(false);
    expect(await readerCan()).toMatch(/permission denied/);
    // The refusal is in the audit trail too: the revoke that could not be done, and who asked.
    expect((await auditRows('stuck')).some((row) => row.action === 'role.drop' && row.outcome === 'failure' && row.actor === ALICE)).toBe(true);
  });

  it('accesses deleted while they are being granted hold nothing from the moment the DELETE returns', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `race-${i}`);
    // Whether each one's group role existed the moment its DELETE returned.
    const heldAfterDelete = await Promise.all(
      names.map(async (name, i) => {
        await kube.create(DATASET_ACCESS_TYPE, parse(access(name)) as KubeObject);
        // Some at once, some a little later: while the reconcile is granting.
        await new Promise((r) => setTimeout(r, (i % 4) * 40));
        await kube.delete(DATASET_ACCESS_TYPE, name, NS);
        return roleExists(name);
      }),
    );
    for (const name of names) expect(await exists(name)).toBe(false);
    // A reconcile granting as the DELETE came finishes before the revoke, and none starts after it.
    expect(heldAfterDelete).toEqual(names.map(() => false));
    await waitFor('no group role left', async () => !(await Promise.all(names.map(roleExists))).some(Boolean), 20_000);
    expect(await readerCan()).toMatch(/permission denied/);
    // And they stay gone: nothing grants them again at the next resyncs.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await Promise.all(names.map(roleExists))).some(Boolean)).toBe(false);
  });

  it('a DELETE the webhook never saw: the watch says it is gone and Steward revokes from its last state', async () => {
    apply(access('unseen'));
    await granted('unseen');
    await routeDeletes(undefined);
    try {
      await kube.delete(DATASET_ACCESS_TYPE, 'unseen', NS);
      await waitFor('the unseen access revoked', async () => !(await roleExists('unseen')), 10_000);
      expect(await readerCan()).toMatch(/permission denied/);
      await leader.waitForLog('the cleanup logged', (l) => l.msg === 'cleaned up after deletion' && l.name === 'unseen');
    } finally {
      await routeDeletes(leaderPort);
    }
  });

  it('a replica that does not lead revokes at admission too, as who deleted', async () => {
    apply(access('by-standby'));
    await granted('by-standby');
    await routeDeletes(await webhookPort(standby!));
    try {
      const r = kubectl(['delete', '--as', ALICE, '--wait=false', 'datasetaccess', 'by-standby', '-n', NS]);
      expect(r.code, r.stderr).toBe(0);
      expect(await roleExists('by-standby')).toBe(false);
      expect(await readerCan()).toMatch(/permission denied/);
      expect((await auditRows('by-standby')).find((row) => row.action === 'role.drop')).toMatchObject({ actor: ALICE, outcome: 'success' });
      expect(standby!.logs()).toContain('by-standby');
    } finally {
      await routeDeletes(leaderPort);
    }
  });

  it('an access that carries the finalizer from before is revoked through it', async () => {
    apply(access('old', { finalizer: true }));
    const obj = await granted('old');
    expect(obj.metadata.finalizers).toEqual(['steward.dev/revoke-access']);
    await kube.delete(DATASET_ACCESS_TYPE, 'old', NS);
    await waitFor('old to be gone', async () => !(await exists('old')), 20_000);
    expect(await roleExists('old')).toBe(false);
    expect(await readerCan()).toMatch(/permission denied/);
  });

  it('an S3 access: the moment kubectl delete returns, its IAM policy is gone, audited as who deleted it', async () => {
    const iam = new IAMClient({ region: 'us-east-1' });
    const role = `scientist-${id}`;
    const bucket = `revoke-${id}`;
    await new S3Client({ region: 'us-east-1', forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }));
    await iam.send(
      new CreateRoleCommand({
        RoleName: role,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
    await putSecret('steward-system', `store-${id}-aws`, { accessKeyId: `AKIA${id.toUpperCase().padEnd(16, 'X')}`, secretAccessKey: randomPassword() });
    kubectl(
      ['apply', '-f', '-'],
      `apiVersion: steward.dev/v1alpha1
kind: ObjectStore
metadata: {name: store-${id}}
spec:
  s3: {bucket: ${bucket}, region: us-east-1, credentialsSecretRef: {namespace: steward-system, name: store-${id}-aws}}
  auditWarehouse: ${WH}
  accessPolicy:
    - namespaces: {matchNames: [${NS}]}
      prefixes: [analytics/]
      access: [read]
      principals: [${role}]
`,
    );
    apply(`apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: s3-read, namespace: ${NS}, labels: {${LABEL}: "${id}"}}
spec:
  principal: {iamRole: ${role}}
  s3: {bucket: ${bucket}, prefix: analytics/, access: read}
  justification: revoke at admission test
`);
    try {
      await granted('s3-read');
      const policies = async () => (await iam.send(new ListRolePoliciesCommand({ RoleName: role }))).PolicyNames ?? [];
      expect(await policies()).toContain(inlinePolicyName(NS, 's3-read'));
      const r = kubectl(['delete', '--as', ALICE, '--wait=false', 'datasetaccess', 's3-read', '-n', NS]);
      expect(r.code, r.stderr).toBe(0);
      expect(await policies()).not.toContain(inlinePolicyName(NS, 's3-read'));
      expect((await auditRows('s3-read')).find((row) => row.action === 'iam.policy.delete')).toMatchObject({ actor: ALICE, outcome: 'success' });
    } finally {
      await kube.delete(OBJECT_STORE_TYPE, `store-${id}`).catch(() => undefined);
    }
  });

  it('a forged AdmissionReview sent straight to the webhook cannot revoke an access it does not know the uid of', async () => {
    apply(access('target'));
    const obj = await granted('target');
    const forge = (uid: string) =>
      new Promise<{ allowed: boolean }>((resolve, reject) => {
        const body = JSON.stringify({
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: {
            uid: 'forged',
            kind: { group: 'steward.dev', version: 'v1alpha1', kind: 'DatasetAccess' },
            operation: 'DELETE',
            userInfo: { username: 'mallory' },
            namespace: NS,
            name: 'target',
            oldObject: { ...obj, metadata: { ...obj.metadata, uid, finalizers: [] } },
          },
        });
        const req = https.request(
          { host: '127.0.0.1', port: leaderPort, path: '/validate', method: 'POST', ca, headers: { 'Content-Type': 'application/json' } },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c));
            res.on('end', () => resolve(JSON.parse(text).response));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    expect((await forge('00000000-0000-0000-0000-000000000000')).allowed).toBe(true); // nothing to refuse: there is no such access
    expect(await roleExists('target')).toBe(true);
    expect(await readerCan()).toBe(true);
    expect((await auditRows('target')).some((row) => row.actor === 'mallory')).toBe(false);
    await kube.delete(DATASET_ACCESS_TYPE, 'target', NS);
    expect(await roleExists('target')).toBe(false);
  });

  it('no password in either replica’s log', () => {
    for (const s of [leader, standby!]) {
      expect(s.logs()).not.toContain(process.env.PGPASSWORD!);
      expect(s.logs()).not.toContain(READER_PW);
    }
  });
});
