// /healthz (the process is alive), /readyz (caches synced, or standing by as a healthy non-leader)
// and /metrics (Prometheus text format).
import http from 'node:http';
import type { Metrics } from './metrics.ts';

export interface HealthChecks {
  live: () => boolean;
  ready: () => boolean;
}

export function startHttpServer(address: string, metrics: Metrics, checks: HealthChecks): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = (ok: boolean) => {
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    };
    if (path === '/healthz') return answer(checks.live());
    if (path === '/readyz') return answer(checks.ready());
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404);
    res.end();
  });
  const { host, port } = parseAddress(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** ":8080", "127.0.0.1:0", "0.0.0.0:9090". */
export function parseAddress(address: string): { host: string | undefined; port: number } {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i) : undefined;
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid listen address ${JSON.stringify(address)}`);
  return { host, port };
}
