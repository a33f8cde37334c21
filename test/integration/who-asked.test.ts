// Who asked, on the real stack: kube-apiserver calls Steward's mutating admission webhook over
// loopback TLS (a CA made here, the webhook configuration's caBundle), which stamps the requesting
// user on every Steward object; a forged stamp in the manifest is overwritten; two users creating
// accesses (by impersonation, as kubectl --as) are two different actors in the audit table, with
// Steward as the executor; Steward's own metadata writes leave the stamp alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { WEBHOOK_CONFIGURATION_TYPE, loopbackCertificates, webhookConfiguration } from '../stack/webhook.ts';
import {
  Steward,
  allowUsers,
  ensureNamespace,
  kube,
  kubectl,
  putWarehouseSecrets,
  randomPassword,
  stackWarehouseYaml,
  unique,
  waitForCondition,
  withPg,
} from './harness.ts';

const id = unique('ad').slice(3).replace(/-/g, '');
const DB = `ad_${id}`;
const NS = `ad-${id}`;
const WH = `wh-ad-${id}`;
const ALICE = `alice-${id}@example.com`;
const BOB = `bob-${id}@example.com`;
const ROLES = [`ra_${id}`, `rb_${id}`];
const WEBHOOK = `steward-test-${id}`;
const LABEL = `steward.dev/admission-test`;
let steward: Steward;
let removeRbac: (() => Promise<void>) | undefined;

const access = (name: string, role: string, forged?: string) => `apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata:
  name: ${name}
  namespace: ${NS}
  labels: {${LABEL}: "${id}"}
${forged ? `  annotations: {steward.dev/requested-by: "${forged}"}\n` : ''}spec:
  principal: {role: ${role}}
  warehouse: {name: ${WH}, schema: app, tables: [events]}
  duration: 1h
  justification: admission test
`;

/** kubectl apply as another user, as `kubectl --as` does (the test's admin may impersonate). */
function applyAs(user: string, yaml: string): void {
  const r = kubectl(['apply', '--as', user, '--as-group', 'data-eng', '-f', '-'], yaml);
  if (r.code !== 0) throw new Error(`kubectl apply as ${user}: ${r.stderr}`);
}

beforeAll(async () => {
  const { dir, ca } = loopbackCertificates();
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  await withPg(
    (c) =>
      c.query(`${ROLES.map((r) => `CREATE ROLE ${r} LOGIN PASSWORD '${randomPassword()}';`).join('\n')} CREATE SCHEMA app; CREATE TABLE app.events (id int);`),
    { database: DB },
  );
  await ensureNamespace(NS);
  await putWarehouseSecrets(WH);
  // The two users may manage DatasetAccess (the API server authorizes with RBAC).
  removeRbac = await allowUsers(WEBHOOK, [ALICE, BOB], ['get', 'list', 'create', 'update', 'patch']);
  kubectl(['apply', '-f', '-'], stackWarehouseYaml({ name: WH, database: DB, policy: `    - namespaces: {matchNames: [${NS}]}\n      schemas: [app]` }));
  steward = Steward.start({ args: ['--resync', '2s', '--webhook-bind-address', '127.0.0.1:0', '--webhook-cert-dir', dir] });
  const serving = await steward.waitForLog('the webhook serving', (l) => l.msg === 'admission webhook serving');
  // Only this test's objects (the label): other test files run Steward without the webhook.
  await kube.create(
    WEBHOOK_CONFIGURATION_TYPE,
    webhookConfiguration(WEBHOOK, Number(String(serving.webhook).split(':').pop()), ca, { objectSelector: { matchLabels: { [LABEL]: id } } }),
  );
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
}, 120_000);

afterAll(async () => {
  await kube.delete(WEBHOOK_CONFIGURATION_TYPE, WEBHOOK).catch(() => undefined);
  await steward?.stop();
  for (const name of ['by-alice', 'by-bob']) {
    await kube.patch(DATASET_ACCESS_TYPE, name, NS, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
    await kube.delete(DATASET_ACCESS_TYPE, name, NS).catch(() => undefined);
  }
  await removeRbac?.();
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('admission: who asked', () => {
  it('stamps the requester over loopback TLS, overwriting a forged stamp; two users are two actors in the audit table', async () => {
    applyAs(ALICE, access('by-alice', ROLES[0]!, 'ceo@example.com'));
    // bob's is created (not applied) so the API server's answer is the object as admitted.
    const created = kubectl(['create', '--as', BOB, '--as-group', 'data-eng', '-o', 'json', '-f', '-'], access('by-bob', ROLES[1]!));
    expect(created.code, created.stderr).toBe(0);
    // Born with its finalizer, at admission: Steward never has to patch it on.
    expect(JSON.parse(created.stdout).metadata.finalizers).toEqual(['steward.dev/revoke-access']);
    for (const name of ['by-alice', 'by-bob']) await waitForCondition(DATASET_ACCESS_TYPE, name, NS, 'Ready', 'True', 'Granted');
    type Stamped = { metadata: { annotations?: Record<string, string>; finalizers?: string[] } };
    const a = await kube.get<Stamped>(DATASET_ACCESS_TYPE, 'by-alice', NS);
    const b = await kube.get<Stamped>(DATASET_ACCESS_TYPE, 'by-bob', NS);
    expect(a.metadata.annotations).toMatchObject({ 'steward.dev/requested-by': ALICE, 'steward.dev/requested-by-groups': 'data-eng' });
    expect(b.metadata.annotations?.['steward.dev/requested-by']).toBe(BOB);
    expect(a.metadata.finalizers).toEqual(['steward.dev/revoke-access']); // one, not two

    const rows = await withPg(
      async (c) =>
        (
          await c.query(
            `SELECT name, actor, details->>'executor' AS executor FROM steward.audit_log WHERE kind = 'DatasetAccess' AND action = 'grant.membership' ORDER BY name`,
          )
        ).rows,
      { database: DB },
    );
    const executor = steward.logLines().find((l) => l.msg === 'steward starting')?.actor;
    expect(rows).toEqual([
      { name: 'by-alice', actor: ALICE, executor },
      { name: 'by-bob', actor: BOB, executor },
    ]);

    // An update that only tries to rewrite the stamp, by bob, on alice's access: refused in effect.
    const r = kubectl(['annotate', '--as', BOB, '--overwrite', 'dsa', '-n', NS, 'by-alice', 'steward.dev/requested-by=bob-was-here']);
    expect(r.code, r.stderr).toBe(0);
    expect((await kube.get<Stamped>(DATASET_ACCESS_TYPE, 'by-alice', NS)).metadata.annotations?.['steward.dev/requested-by']).toBe(ALICE);
    // A change of spec by bob is bob's request.
    applyAs(BOB, access('by-alice', ROLES[0]!).replace('duration: 1h', 'duration: 2h'));
    expect((await kube.get<Stamped>(DATASET_ACCESS_TYPE, 'by-alice', NS)).metadata.annotations?.['steward.dev/requested-by']).toBe(BOB);
  });

  it('with the webhook down, failurePolicy Fail refuses the write: nothing is admitted unstamped', async () => {
    await steward.stop();
    const r = kubectl(['apply', '--as', ALICE, '-f', '-'], access('while-down', ROLES[0]!));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/failed calling webhook "stamp\.steward\.dev"/);
    await expect(kube.get(DATASET_ACCESS_TYPE, 'while-down', NS)).rejects.toThrow(/404/);
  });
});
