// The runtime under the failures a real cluster has: the leader process dies, the API server
// restarts, the operator is asked to stop. Each test proves that the next change is still reconciled.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import { LEASE_TYPE } from '../../src/runtime/leader.ts';
import { REPO, Steward, apply, ensureNamespace, kube, putSecret, stackCa, unique, waitFor, waitForCondition, warehouseYaml } from './harness.ts';

const NS = 'steward-system';
const stewards: Steward[] = [];
const warehouses: string[] = [];

async function newWarehouse(): Promise<string> {
  const name = unique('wh-rt');
  warehouses.push(name);
  apply(warehouseYaml({ name, caSecret: 'runtime-test-ca', credsSecret: 'runtime-test-creds' }));
  return name;
}

const CONFIGMAP = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };

interface Lease {
  spec?: { holderIdentity?: string; leaseTransitions?: number };
}

beforeAll(async () => {
  await ensureNamespace(NS);
  await putSecret(NS, 'runtime-test-ca', { 'ca.crt': stackCa() });
  await putSecret(NS, 'runtime-test-creds', { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
});

afterAll(async () => {
  await Promise.all(stewards.map((s) => s.stop('SIGKILL')));
  for (const name of warehouses) await kube.delete(WAREHOUSE_TYPE, name).catch(() => undefined);
});

describe('leader election', () => {
  it('a standby takes over the Lease when the leader is killed, and reconciles the next change', async () => {
    const lease = unique('lease');
    const args = ['--lease-duration', '3s'];
    const a = Steward.start({ lease, args });
    stewards.push(a);
    await a.waitForLog('first replica leads', (l) => l.msg === 'controllers running');
    const b = Steward.start({ lease, args });
    stewards.push(b);
    await b.waitForLog('second replica waits', (l) => l.msg === 'waiting for leadership');

    const first = await newWarehouse();
    await waitForCondition(WAREHOUSE_TYPE, first, undefined, 'Ready', 'True');
    // Only the leader works: the standby has reconciled nothing.
    expect(b.logLines().some((l) => l.msg === 'controllers running')).toBe(false);
    expect((await kube.get<Lease>(LEASE_TYPE, lease, NS)).spec?.holderIdentity).toBe(a.identity);

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    await b.waitForLog('standby becomes leader', (l) => l.msg === 'became leader', 20_000);
    const takeoverMs = Date.now() - killedAt;
    console.log(`lease takeover after SIGKILL of the leader: ${takeoverMs} ms (lease duration 3 s)`);
    const held = await kube.get<Lease>(LEASE_TYPE, lease, NS);
    expect(held.spec?.holderIdentity).toBe(b.identity);
    expect(held.spec?.leaseTransitions).toBeGreaterThanOrEqual(1);

    const second = await newWarehouse();
    await waitForCondition(WAREHOUSE_TYPE, second, undefined, 'Ready', 'True');
  });

  it('on SIGTERM the leader finishes, exits 0 and hands the Lease back so a standby takes over at once', async () => {
    const lease = unique('lease');
    const args = ['--lease-duration', '15s'];
    const a = Steward.start({ lease, args });
    stewards.push(a);
    await a.waitForLog('leader running', (l) => l.msg === 'controllers running');
    const b = Steward.start({ lease, args });
    stewards.push(b);
    await b.waitForLog('standby waiting', (l) => l.msg === 'waiting for leadership');

    const stoppedAt = Date.now();
    expect(await a.stop('SIGTERM')).toBe(0);
    expect(a.logLines().some((l) => l.msg === 'released the lease')).toBe(true);
    await b.waitForLog('standby leads', (l) => l.msg === 'became leader', 10_000);
    // Well inside the 15 s lease: the released Lease was taken without waiting for it to expire.
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    await b.stop('SIGTERM');
  });
});

describe('API server restart', () => {
  it('after kube-apiserver restarts, the next change is still reconciled by the same process', async () => {
    const s = Steward.start({ args: ['--lease-duration', '30s'] });
    stewards.push(s);
    await s.waitForLog('running', (l) => l.msg === 'controllers running');
    const before = await newWarehouse();
    await waitForCondition(WAREHOUSE_TYPE, before, undefined, 'Ready', 'True');

    // An unrelated write moves etcd's revision past what the informers last saw, so the restarted
    // API server's watch cache cannot resume them: they must get 410 Gone and list again.
    await kube.create(CONFIGMAP, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: unique('bump'), namespace: NS } });
    const r = spawnSync('bash', [join(REPO, 'test/stack/stack.sh'), 'restart-apiserver'], { encoding: 'utf8', env: process.env });
    expect(r.status, r.stderr).toBe(0);

    const after = await newWarehouse();
    await waitForCondition(WAREHOUSE_TYPE, after, undefined, 'Ready', 'True', undefined, 60_000);
    expect(s.running).toBe(true);
    // The watch broke, was retried with backoff, and the informer re-listed after 410 Gone.
    await waitFor('watch retry logged', () => s.logLines().some((l) => l.msg === 'watch failed; retrying'));
    expect(s.logLines().some((l) => l.resource === 'warehouses' && String(l.msg).includes('410 Gone'))).toBe(true);
  });
});
