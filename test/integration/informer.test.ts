// The informer against a real API server behind a loopback proxy that can turn a live connection
// into a black hole (no bytes, no FIN): the half-open TCP connection a NAT or a dead node leaves.
// The informer must notice the silence, reconnect, and deliver what happened meanwhile. The same
// proxy resets a pooled connection at its next use, as the API server's idle close does when it
// crosses a request on the wire: an idempotent request is sent again, a POST is not.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromKubeconfig } from '../../src/runtime/kubeconfig.ts';
import { KubeClient, type KubeObject } from '../../src/runtime/kube.ts';
import { Informer } from '../../src/runtime/informer.ts';
import { createLogger } from '../../src/runtime/logger.ts';
import { ensureNamespace, kube, unique, waitFor } from './harness.ts';

const CONFIGMAP = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };
const NS = 'steward-system';

class BlackholeProxy {
  readonly server: net.Server;
  private readonly sockets = new Set<{ client: net.Socket; upstream: net.Socket; silenced: boolean; resetOnData: boolean }>();
  connections = 0;
  constructor(target: URL) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      const pair = { client, upstream, silenced: false, resetOnData: false };
      this.sockets.add(pair);
      this.connections++;
      client.on('data', (d) => {
        if (pair.resetOnData) client.resetAndDestroy();
        else if (!pair.silenced) upstream.write(d);
      });
      upstream.on('data', (d) => !pair.silenced && client.write(d));
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(pair);
      };
      client.on('close', close);
      upstream.on('close', close);
      client.on('error', close);
      upstream.on('error', close);
    });
  }
  listen(): Promise<number> {
    return new Promise((r) => this.server.listen(0, '127.0.0.1', () => r((this.server.address() as net.AddressInfo).port)));
  }
  /** Every open connection stops carrying bytes, but stays open. New connections work. */
  silenceAll(): number {
    for (const p of this.sockets) p.silenced = true;
    return this.sockets.size;
  }
  /** Every open connection is reset (TCP RST) when the client next writes to it. New connections work. */
  resetAllOnNextUse(): number {
    for (const p of this.sockets) p.resetOnData = true;
    return this.sockets.size;
  }
  close(): void {
    for (const p of this.sockets) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.server.close();
  }
}

let proxy: BlackholeProxy;
let client: KubeClient;

beforeAll(async () => {
  await ensureNamespace(NS);
  proxy = new BlackholeProxy(kube.server);
  const port = await proxy.listen();
  client = new KubeClient(fromKubeconfig(process.env.KUBECONFIG!, `https://127.0.0.1:${port}`));
});

afterAll(() => {
  client?.close();
  proxy?.close();
});

describe('Informer', () => {
  it('restarts a watch that went silent and delivers the changes it missed, deletions included', async () => {
    const logs: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void logs.push(line) } });
    const label = unique('silent');
    const informer = new Informer<KubeObject>(client, CONFIGMAP, { namespace: NS, labelSelector: `test=${label}`, idleMs: 1500, logger });
    const seen: string[] = [];
    informer.onEvent((type, obj) => seen.push(`${type}:${obj.metadata.name}`));
    const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS, labels: { test: label } }, data: { a: '1' } });

    await kube.create(CONFIGMAP, cm(`${label}-a`));
    await informer.start();
    expect(informer.get(`${NS}/${label}-a`)).toBeDefined();
    // A change that arrives by the watch proves the watch connection is open before we silence it.
    await kube.create(CONFIGMAP, cm(`${label}-c`));
    await waitFor('the watch to deliver c', () => informer.get(`${NS}/${label}-c`));

    expect(proxy.silenceAll()).toBeGreaterThan(0);
    const silencedAt = Date.now();
    await kube.create(CONFIGMAP, cm(`${label}-b`)); // through the direct client, not the proxy
    await kube.delete(CONFIGMAP, `${label}-a`, NS);

    await waitFor('the informer to see b after the silence', () => informer.get(`${NS}/${label}-b`), 15_000);
    await waitFor('the informer to see a deleted', () => !informer.get(`${NS}/${label}-a`), 5_000);
    const recoveredMs = Date.now() - silencedAt;
    console.log(`silent watch detected and resumed after ${recoveredMs} ms (idle limit 1500 ms)`);
    expect(recoveredMs).toBeGreaterThanOrEqual(1400);
    expect(seen).toEqual(expect.arrayContaining([`add:${label}-a`, `add:${label}-b`, `delete:${label}-a`]));
    expect(logs.join('')).toContain('watch silent for 1500 ms');
    expect(informer.stats.errors).toBeGreaterThanOrEqual(1);
    await informer.stop();
    await kube.delete(CONFIGMAP, `${label}-b`, NS);
    await kube.delete(CONFIGMAP, `${label}-c`, NS);
  });
});

describe('KubeClient on a pooled connection the server has closed', () => {
  it('sends a GET again on a fresh connection, and does not send a POST twice', async () => {
    const name = unique('reset');
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data: { a: '1' } };
    await kube.create(CONFIGMAP, cm);
    const pooled = new KubeClient(fromKubeconfig(process.env.KUBECONFIG!, `https://127.0.0.1:${(proxy.server.address() as net.AddressInfo).port}`));
    try {
      await pooled.get(CONFIGMAP, name, NS); // leaves one idle keep-alive connection in the pool
      const before = proxy.connections;
      expect(proxy.resetAllOnNextUse()).toBeGreaterThan(0);
      const again = await pooled.get<KubeObject>(CONFIGMAP, name, NS);
      expect(again.metadata.name).toBe(name);
      expect(proxy.connections).toBe(before + 1); // the reset one, then a new one

      proxy.resetAllOnNextUse();
      const second = { ...cm, metadata: { name: `${name}-b`, namespace: NS } };
      await expect(pooled.create(CONFIGMAP, second)).rejects.toThrow(/socket hang up|ECONNRESET/);
      await expect(kube.get(CONFIGMAP, `${name}-b`, NS)).rejects.toMatchObject({ status: 404 });
    } finally {
      pooled.close();
      await kube.delete(CONFIGMAP, name, NS);
    }
  });
});
