// The reconcilers' decisions, against in-memory drivers (memory-drivers.ts): denied, expired, drift,
// principal missing, sources exposed, warehouse not ready, and what an idle resync does. No server:
// these add to test/integration, which proves the same effects as the principal's own login.
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatasetAccess } from '../../src/api/datasetaccess.ts';
import type { MaskedView } from '../../src/api/maskedview.ts';
import type { Warehouse } from '../../src/api/warehouse.ts';
import { AuditTrail } from '../../src/audit/sink.ts';
import { StaleObservation, type Outcome, type ReconcileContext } from '../../src/runtime/controller.ts';
import { KubeApiError, type KubeClient } from '../../src/runtime/kube.ts';
import { groupRoleName } from '../../src/governance/grants.ts';
import { loadParser } from '../../src/drivers/postgres/expression.ts';
import { WarehouseSecretError, type WarehouseDrivers } from '../../src/drivers/postgres/connector.ts';
import { datasetAccessCleanup, datasetAccessReconciler } from '../../src/controllers/datasetaccess.ts';
import { maskedViewReconciler } from '../../src/controllers/maskedview.ts';
import { KeptRecords, MemoryAccessDriver, MemoryViewDriver, grantee } from './memory-drivers.ts';

const NS = 'analytics';
const NOW = new Date('2026-12-01T12:00:00Z');

function warehouse(ready = true): Warehouse {
  return {
    apiVersion: 'steward.dev/v1alpha1',
    kind: 'Warehouse',
    metadata: { name: 'wh' },
    spec: {
      postgres: { host: 'db', port: 5432, database: 'shop', sslMode: 'require', credentialsSecretRef: { namespace: 'ops', name: 'creds' } },
      accessPolicy: [{ namespaces: { matchNames: [NS] }, schemas: ['curated'], privileges: ['SELECT'] }],
    },
    status: ready ? { conditions: [{ type: 'Ready', status: 'True', reason: 'Connected', message: '', lastTransitionTime: '' }] } : {},
  } as unknown as Warehouse;
}

function access(spec: Partial<DatasetAccess['spec']> = {}, status?: DatasetAccess['status']): DatasetAccess {
  return {
    apiVersion: 'steward.dev/v1alpha1',
    kind: 'DatasetAccess',
    metadata: { name: 'orders', namespace: NS, generation: 1, uid: 'u1' },
    spec: {
      principal: { role: 'alice' },
      warehouse: { name: 'wh', schema: 'curated', tables: ['orders'], privileges: ['SELECT'] },
      justification: 'report',
      ...spec,
    },
    ...(status ? { status } : {}),
  } as unknown as DatasetAccess;
}

const ctx = (): ReconcileContext => ({ requestId: 'r-1', logger: pino({ level: 'silent' }), now: NOW });

function setup(opts: { wh?: Warehouse; secretError?: boolean } = {}) {
  const access = new MemoryAccessDriver();
  const views = new MemoryViewDriver();
  const log = new KeptRecords();
  const table = new KeptRecords();
  // SecretRotation's logins are proven on the stack (test/integration/secretrotation.test.ts), not here.
  const drivers: WarehouseDrivers = {
    access,
    views,
    logins: undefined as unknown as WarehouseDrivers['logins'],
    reviews: undefined as unknown as WarehouseDrivers['reviews'], // AccessReview: on the stack too
    auditTable: table,
    scrub: (m) => m.replaceAll('s3cret', '[REDACTED]'),
  };
  let asked = 0;
  const deps = {
    warehouse: (name: string) => (name === 'wh' ? (opts.wh ?? warehouse()) : undefined),
    connections: {
      drivers: async () => {
        asked++;
        if (opts.secretError)
          throw new WarehouseSecretError('CredentialsSecretNotFound', 'secrets "creds" not found: create it with the keys username and password');
        return drivers;
      },
    },
    audit: new AuditTrail('steward@test', log, pino({ level: 'silent' })),
    namespaceLabels: () => ({}),
  };
  return { access, views, log, deps, asked: () => asked };
}

/** The status a reconcile leaves (what the runtime would write), for the next reconcile to read. */
function statusAfter(o: Outcome, generation = 1): DatasetAccess['status'] {
  const ready = o.state === 'Ready';
  return {
    ...(o.status as object),
    observedGeneration: generation,
    conditions: [
      { type: 'Ready', status: ready ? 'True' : 'False', reason: o.reason, message: o.message, lastTransitionTime: '' },
      ...(o.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: '' })),
    ],
  } as DatasetAccess['status'];
}

describe('DatasetAccess reconciler, on an in-memory driver', () => {
  it('grants: the principal becomes a member of its group role, audited, and no Event for the routine success', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const out = await datasetAccessReconciler(s.deps)(access(), ctx());
    expect(out).toMatchObject({ state: 'Ready', reason: 'Granted' });
    expect(out.events ?? []).toEqual([]);
    const role = s.access.roles.get(groupRoleName(NS, 'orders'))!;
    expect(role.state.members).toEqual(['alice']);
    expect(role.state.tablePrivileges).toEqual([{ schema: 'curated', table: 'orders', privilege: 'SELECT' }]);
    expect(s.log.records.map((r) => [r.action, r.request_id, r.namespace, r.name])).toEqual([['grant', 'r-1', NS, 'orders']]);
  });

  it('an idle resync changes nothing and says nothing', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const reconcile = datasetAccessReconciler(s.deps);
    const first = await reconcile(access(), ctx());
    const again = await reconcile(access({}, statusAfter(first)), ctx());
    expect(again).toMatchObject({ state: 'Ready', reason: 'Granted', events: [] });
    expect(s.access.changes).toHaveLength(1);
    expect(s.log.records).toHaveLength(1);
  });

  it('denied by policy: nothing granted, Stalled PolicyDenied, the denial audited once', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const reconcile = datasetAccessReconciler(s.deps);
    const dsa = access({ warehouse: { name: 'wh', schema: 'raw', tables: ['orders'], privileges: ['SELECT'] } });
    const out = await reconcile(dsa, ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PolicyDenied' });
    expect(out.message).toMatch(/no accessPolicy rule .* schema raw|schema raw/);
    expect(s.access.roles.size).toBe(0);
    expect(s.log.records.map((r) => [r.action, r.outcome])).toEqual([['policy.evaluate', 'denied']]);
    await reconcile(access({ warehouse: { name: 'wh', schema: 'raw', tables: ['orders'], privileges: ['SELECT'] } }, statusAfter(out)), ctx());
    expect(s.log.records).toHaveLength(1);
  });

  it('a rule taken away revokes what was granted: the group role is dropped', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    await datasetAccessReconciler(s.deps)(access(), ctx());
    const narrowed = warehouse();
    narrowed.spec.accessPolicy = [];
    const s2 = { ...s.deps, warehouse: () => narrowed };
    const out = await datasetAccessReconciler(s2)(access(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PolicyDenied' });
    expect(out.message).toMatch(/the access granted before was revoked/);
    expect(s.access.roles.size).toBe(0);
    expect(s.access.changes.map((p) => p.kind)).toEqual(['grant', 'revoke']);
  });

  it('a principal no rule may name (a superuser) is refused like a denial', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice', { superuser: true }));
    const out = await datasetAccessReconciler(s.deps)(access(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PolicyDenied' });
    expect(out.message).toMatch(/role alice is a superuser: it is never grantable/);
    expect(s.access.roles.size).toBe(0);
  });

  it('a principal that does not exist: PrincipalNotFound, the role made ready without a member', async () => {
    const s = setup();
    const out = await datasetAccessReconciler(s.deps)(access(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PrincipalNotFound' });
    expect(s.access.roles.get(groupRoleName(NS, 'orders'))!.state.members).toEqual([]);
  });

  it('expired: the membership is revoked at the deadline, Ended/Expired, with an Expired event and access.expire', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const reconcile = datasetAccessReconciler(s.deps);
    const before = await reconcile(access({ expiresAt: '2026-12-01T13:00:00Z' }), ctx());
    expect(before).toMatchObject({ state: 'Ready' });
    expect(before.requeueAfterMs).toBeGreaterThan(0);
    const later: ReconcileContext = { ...ctx(), now: new Date('2026-12-01T13:00:01Z') };
    const out = await reconcile(access({ expiresAt: '2026-12-01T13:00:00Z' }, statusAfter(before)), later);
    expect(out).toMatchObject({ state: 'Ended', reason: 'Expired' });
    expect(out.events?.map((e) => e.reason)).toEqual(['Expired']);
    expect(s.access.roles.get(groupRoleName(NS, 'orders'))!.state.members).toEqual([]);
    expect(s.log.records.map((r) => r.action)).toContain('access.expire');
  });

  it('drift: a grant added behind its back after it converged is revoked, DriftCorrected', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const reconcile = datasetAccessReconciler(s.deps);
    const first = await reconcile(access(), ctx());
    const role = s.access.roles.get(groupRoleName(NS, 'orders'))!;
    role.state.tablePrivileges.push({ schema: 'curated', table: 'customers', privilege: 'SELECT' });
    role.state.members.push('mallory');
    const out = await reconcile(access({}, statusAfter(first)), ctx());
    expect(out).toMatchObject({ state: 'Ready', reason: 'Granted' });
    expect(out.events?.map((e) => e.reason)).toEqual(['DriftCorrected']);
    expect(out.events?.[0]?.note).toMatch(/extra SELECT on curated.customers; extra member mallory/);
    expect(s.access.roles.get(groupRoleName(NS, 'orders'))!.state.members).toEqual(['alice']);
  });

  it('a role of that name Steward did not make is left alone: RoleConflict, nothing changed', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    s.access.roles.set(groupRoleName(NS, 'orders'), {
      comment: 'someone else',
      state: structuredClone({ tablePrivileges: [], schemaUsage: [], defaultPrivileges: [], members: ['bob'], memberOf: [] }),
      dangerousAttributes: [],
    });
    const out = await datasetAccessReconciler(s.deps)(access(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'RoleConflict' });
    expect(s.access.changes).toEqual([]);
    expect(s.access.roles.get(groupRoleName(NS, 'orders'))!.state.members).toEqual(['bob']);
  });

  it('a missing table waits (Progressing TableNotFound) and grants nothing', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    const out = await datasetAccessReconciler(s.deps)(
      access({ warehouse: { name: 'wh', schema: 'curated', tables: ['nope'], privileges: ['SELECT'] } }),
      ctx(),
    );
    expect(out).toMatchObject({ state: 'Progressing', reason: 'TableNotFound' });
    expect(s.access.changes).toEqual([]);
  });

  it('the warehouse not Ready, missing, or without its Secret: Progressing, and no driver is asked', async () => {
    const notReady = setup({ wh: warehouse(false) });
    expect(await datasetAccessReconciler(notReady.deps)(access(), ctx())).toMatchObject({ state: 'Progressing', reason: 'WarehouseNotReady' });
    expect(notReady.asked()).toBe(0);
    const missing = setup();
    const out = await datasetAccessReconciler(missing.deps)(
      access({ warehouse: { name: 'other', schema: 'curated', tables: ['orders'], privileges: ['SELECT'] } }),
      ctx(),
    );
    expect(out).toMatchObject({ state: 'Progressing', reason: 'WarehouseNotFound' });
    const noSecret = setup({ secretError: true });
    const secretOut = await datasetAccessReconciler(noSecret.deps)(access(), ctx());
    expect(secretOut).toMatchObject({ state: 'Progressing', reason: 'WarehouseNotReady' });
    expect(secretOut.message).toMatch(/create it with the keys username and password; nothing granted/);
    expect(noSecret.access.changes).toEqual([]);
  });

  it('the catalog changed between observe and apply: StaleObservation, nothing applied', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    s.access.beforeApply = () => {
      s.access.tables = [...s.access.tables, { name: 'late', owner: 'app' }];
    };
    await expect(datasetAccessReconciler(s.deps)(access(), ctx())).rejects.toBeInstanceOf(StaleObservation);
    expect(s.access.changes).toEqual([]);
  });

  it('deletion drops the group role; deletionPolicy Orphan leaves it, audited, even with the Warehouse gone', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    await datasetAccessReconciler(s.deps)(access(), ctx());
    expect(await datasetAccessCleanup(s.deps)(access(), ctx())).toMatchObject({ state: 'Ready', reason: 'Revoked' });
    expect(s.access.roles.size).toBe(0);
    const gone = { ...s.deps, warehouse: () => undefined };
    expect(await datasetAccessCleanup(gone)(access({ deletionPolicy: 'Orphan' }), ctx())).toMatchObject({ state: 'Ready', reason: 'Orphaned' });
    expect(s.log.records.at(-1)?.action).toBe('access.orphan');
    expect(await datasetAccessCleanup(gone)(access(), ctx())).toMatchObject({ state: 'Progressing', reason: 'WarehouseNotFound' });
  });

  it('an error the driver reports is scrubbed of the secret before it reaches the audit trail', async () => {
    const s = setup();
    s.access.principals.set('alice', grantee('alice'));
    s.access.beforeApply = () => {
      throw new Error('connection to db failed for password s3cret');
    };
    await expect(datasetAccessReconciler(s.deps)(access(), ctx())).rejects.toThrow(/s3cret/);
    expect(JSON.stringify(s.log.records)).not.toContain('s3cret');
    expect(s.log.records.at(-1)).toMatchObject({ action: 'reconcile', outcome: 'failure', error: expect.stringContaining('[REDACTED]') });
  });
});

function maskedView(spec: Partial<MaskedView['spec']> = {}, status?: MaskedView['status']): MaskedView {
  return {
    apiVersion: 'steward.dev/v1alpha1',
    kind: 'MaskedView',
    metadata: { name: 'customers', namespace: NS, generation: 1, uid: 'u2' },
    spec: {
      warehouse: 'wh',
      owner: 'data-team',
      view: { schema: 'curated', name: 'customers_masked' },
      from: { table: 'curated.customers', alias: 'c' },
      columns: [
        { name: 'id', expr: 'c.id' },
        { name: 'email', expr: 'c.email', mask: 'email' },
      ],
      readers: ['analyst'],
      ...spec,
    },
    ...(status ? { status } : {}),
  } as unknown as MaskedView;
}

/** Lineage goes to a ConfigMap; kept here, as the API server would keep it. */
function configMaps() {
  const kept = new Map<string, unknown>();
  const client = {
    get: async (_t: unknown, name: string) => {
      if (!kept.has(name)) throw new KubeApiError(404, 'NotFound', `configmaps "${name}" not found`);
      return kept.get(name);
    },
    create: async (_t: unknown, obj: { metadata: { name: string } }) => kept.set(obj.metadata.name, obj),
    patch: async (_t: unknown, name: string, _ns: string, body: object) => kept.set(name, { ...(kept.get(name) as object), ...body }),
    delete: async (_t: unknown, name: string) => kept.delete(name),
  };
  return { kept, client: client as unknown as KubeClient };
}

describe('MaskedView reconciler, on an in-memory driver', () => {
  beforeAll(loadParser);

  function viewSetup(opts: { wh?: Warehouse } = {}) {
    const s = setup(opts);
    s.views.roles.set('analyst', grantee('analyst'));
    const cms = configMaps();
    return { ...s, cms, reconcile: maskedViewReconciler({ ...s.deps, client: cms.client }) };
  }

  it('builds the view and gives it to its readers: Ready ViewReady, lineage published', async () => {
    const s = viewSetup();
    const out = await s.reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Ready', reason: 'ViewReady' });
    expect(out.events?.map((e) => e.reason)).toEqual(['ViewReady']);
    expect(s.views.changes).toHaveLength(1);
    expect(s.views.changes[0]!.build?.select).toMatch(/"c"\."email"/);
    expect(s.views.readers).toEqual(['analyst']);
    expect(s.cms.kept.has('customers-lineage')).toBe(true);
  });

  it('an idle resync builds nothing and says nothing', async () => {
    const s = viewSetup();
    const first = await s.reconcile(maskedView(), ctx());
    const again = await s.reconcile(maskedView({}, statusAfter(first) as MaskedView['status']), ctx());
    expect(again).toMatchObject({ state: 'Ready', reason: 'ViewReady', events: [] });
    expect(s.views.changes).toHaveLength(1);
  });

  it('sources exposed: the view is built, but its readers are removed (fail closed), SourcesLocked False', async () => {
    const s = viewSetup();
    s.views.exposure = [{ role: 'analyst', table: 'curated.customers' }];
    const out = await s.reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'SourcesExposed' });
    expect(out.conditions).toContainEqual(expect.objectContaining({ type: 'SourcesLocked', status: 'False' }));
    expect(s.views.changes[0]!.readers).toEqual([]);
    expect(s.views.readers).toEqual([]);
    expect(s.log.records.map((r) => r.action)).toContain('view.sources_exposed');
  });

  it('a reader role that does not exist: RoleNotFound, nothing built', async () => {
    const s = viewSetup();
    const out = await s.reconcile(maskedView({ readers: ['ghost'] }), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'RoleNotFound' });
    expect(out.message).toMatch(/role ghost \(readers\) does not exist/);
    expect(s.views.changes).toEqual([]);
  });

  it('denied by policy: the view is withdrawn (removed), and the withdrawal audited once', async () => {
    const s = viewSetup();
    await s.reconcile(maskedView(), ctx());
    const denied = warehouse();
    denied.spec.accessPolicy = [];
    const reconcile = maskedViewReconciler({ ...s.deps, client: s.cms.client, warehouse: () => denied });
    const out = await reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PolicyDenied' });
    expect(out.message).toMatch(/the view was withdrawn/);
    expect(s.views.removed).toBe(1);
    await reconcile(maskedView({}, statusAfter(out) as MaskedView['status']), ctx());
    expect(s.log.records.filter((r) => r.action === 'view.withdraw')).toHaveLength(1);
  });

  it('a reader no rule may name (Steward-like role) withdraws the view, whatever the policy says', async () => {
    const s = viewSetup();
    s.views.roles.set('analyst', grantee('analyst', { createRole: true }));
    const out = await s.reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'PolicyDenied' });
    expect(out.message).toMatch(/readers: role analyst can create roles/);
    expect(s.views.changes).toEqual([]);
  });

  it('a schema someone else may create in: ViewSchemaUnsafe, nothing built', async () => {
    const s = viewSetup();
    s.views.schemaProblems = ['mallory can create in schema curated'];
    const out = await s.reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'ViewSchemaUnsafe' });
    expect(s.views.changes).toEqual([]);
  });

  it("someone else's relation under the view's name: ViewConflict, left alone", async () => {
    const s = viewSetup();
    s.views.view = { exists: true, comment: 'theirs', relkind: 'v', owner: 'mallory', securityBarrier: false, definitionSha: 'x' };
    const out = await s.reconcile(maskedView(), ctx());
    expect(out).toMatchObject({ state: 'Stalled', reason: 'ViewConflict' });
    expect(s.views.changes).toEqual([]);
  });

  it('a source that does not exist waits (SourceNotFound); the warehouse not Ready waits too', async () => {
    const s = viewSetup();
    s.views.missingSources = ['curated.customers'];
    expect(await s.reconcile(maskedView(), ctx())).toMatchObject({ state: 'Progressing', reason: 'SourceNotFound' });
    const notReady = viewSetup({ wh: warehouse(false) });
    expect(await notReady.reconcile(maskedView(), ctx())).toMatchObject({ state: 'Progressing', reason: 'WarehouseNotReady' });
    expect(notReady.asked()).toBe(0);
  });

  it('a spec that would undo its own mask is withdrawn as MaskBypass before the warehouse is asked', async () => {
    const s = viewSetup();
    const out = await s.reconcile(
      maskedView({
        columns: [
          { name: 'id', expr: 'c.id' },
          { name: 'email', expr: 'c.email', mask: 'email' },
          { name: 'leak', expr: 'c.email' },
        ],
      }),
      ctx(),
    );
    expect(out).toMatchObject({ state: 'Stalled', reason: 'MaskBypass' });
    expect(s.views.changes).toEqual([]);
  });
});
