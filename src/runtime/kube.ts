// A thin REST client for the Kubernetes API. kubeconfig.ts supplies the address and authentication
// (certificates, tokens; exec plugins through client-node, loaded only for them); requests go
// through one keep-alive agent so the runtime controls content types (JSON / merge / JSON patch),
// watch streaming and timeouts.
import https from 'node:https';
import { loadClusterAccess, type ClusterAccess } from './kubeconfig.ts';

export interface ObjectMetaLike {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMetaLike;
}

export interface ObjectList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** Where a resource lives in the API. */
export interface ResourceType {
  group: string; // '' for the core group
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.status === 409;
export const isGone = (e: unknown): boolean => e instanceof KubeApiError && e.status === 410;

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ClientOptions {
  /** Send requests as this user (Impersonate-User), e.g. to prove an RBAC role is enough. */
  impersonateUser?: string;
  userAgent?: string;
  maxSockets?: number;
  /** Called once per request answered (status) or failed without an answer (status 0): for metrics. Watches are not counted. */
  onRequest?: (method: string, resource: string, status: number) => void;
}

/** The resource a request path names (`secrets`, `datasetaccesses`, `status` subresources folded into their resource), for metrics. */
export function resourceOfPath(path: string): string {
  const parts = new URL(path, 'https://x').pathname.split('/').filter(Boolean);
  // /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[...]
  const rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  const r = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
  return r[0] ?? '';
}

/**
 * kube-apiserver closes a keep-alive connection after 90 s idle (k8s.io/apiserver secure_serving.go).
 * A request written to a pooled socket as that close arrives fails with "socket hang up" (seen as a
 * rare test flake); closing our idle sockets first, at 60 s, leaves the race to clock skew only.
 */
const IDLE_SOCKET_MS = 60_000;
/** Methods safe to send twice; POST and PATCH are not retried (a JSON patch may append twice). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);

export class KubeClient {
  readonly server: URL;
  private readonly access: ClusterAccess;
  private readonly agent: https.Agent;
  private readonly options: ClientOptions;

  constructor(access: ClusterAccess, options: ClientOptions = {}) {
    this.access = access;
    this.server = access.server;
    this.options = options;
    this.agent = new https.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 32, timeout: IDLE_SOCKET_MS });
  }

  /** KUBECONFIG / ~/.kube/config, or the in-cluster service account. */
  static fromDefault(options: ClientOptions = {}): KubeClient {
    return new KubeClient(loadClusterAccess(), options);
  }

  close(): void {
    this.agent.destroy();
  }

  static path(type: ResourceType, namespace?: string, name?: string, subresource?: string): string {
    const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
    let p = base;
    if (type.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    p += `/${type.plural}`;
    if (name) p += `/${encodeURIComponent(name)}`;
    if (subresource) p += `/${subresource}`;
    return p;
  }

  private async requestOptions(method: string, path: string, opts: RequestOptions): Promise<https.RequestOptions> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const ro: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      agent: this.agent,
      headers: {
        Accept: opts.accept ?? 'application/json',
        'User-Agent': this.options.userAgent ?? 'steward',
      },
    };
    await this.access.applyTo(ro);
    ro.agent = this.agent; // an exec plugin's client-node may set its own; keep the pooled one
    const headers = ro.headers as Record<string, string>;
    if (this.options.impersonateUser) headers['Impersonate-User'] = this.options.impersonateUser;
    if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
    return ro;
  }

  /**
   * One request; resolves with the parsed JSON body, rejects with KubeApiError on non-2xx. An
   * idempotent request that meets a pooled connection the server has just closed is sent once more,
   * on a fresh one (see IDLE_SOCKET_MS).
   */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const ro = await this.requestOptions(method, path, opts);
    const payload = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    return this.send<T>(ro, method, path, payload, opts, true);
  }

  private send<T>(ro: https.RequestOptions, method: string, path: string, payload: string | undefined, opts: RequestOptions, firstTry: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = https.request({ ...ro, signal: opts.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          this.options.onRequest?.(method, resourceOfPath(path), status);
          if (status >= 200 && status < 300) {
            resolve((text ? JSON.parse(text) : {}) as T);
          } else {
            reject(apiError(status, text, method, path));
          }
        });
      });
      if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`${method} ${path}: timed out after ${opts.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        this.options.onRequest?.(method, resourceOfPath(path), 0);
        // A reused keep-alive socket reset before any answer: most likely the server's idle close
        // crossing this request on the wire. GET, PUT and DELETE are safe to send again even if it
        // did read it; POST and PATCH fail as they are.
        const stale = req.reusedSocket && err.code === 'ECONNRESET' && !opts.signal?.aborted;
        if (stale && firstTry && IDEMPOTENT.has(method)) resolve(this.send<T>(ro, method, path, payload, opts, false));
        else reject(err);
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /**
   * A streaming GET (watch): calls onLine for every newline-delimited JSON document. Resolves when the
   * server ends the stream, rejects on a transport error or a non-2xx answer. `idleMs` aborts a
   * stream that has gone silent (no bytes at all) for that long.
   */
  async stream(path: string, opts: RequestOptions & { idleMs?: number }, onLine: (line: string) => void): Promise<void> {
    const ro = await this.requestOptions('GET', path, opts);
    // A watch holds its connection for minutes: give it its own socket, not one of the pool's.
    ro.agent = new https.Agent({ keepAlive: false });
    return new Promise<void>((resolve, reject) => {
      const req = https.request({ ...ro, signal: opts.signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(apiError(status, Buffer.concat(chunks).toString('utf8'), 'GET', path)));
          res.on('error', reject);
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (line) onLine(line);
          }
        });
        res.on('end', () => resolve());
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('watch stream aborted')));
      });
      req.on('socket', (socket) => socket.setKeepAlive(true, 10_000));
      if (opts.idleMs) req.setTimeout(opts.idleMs, () => req.destroy(new Error(`watch silent for ${opts.idleMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  get<T>(type: ResourceType, name: string, namespace?: string): Promise<T> {
    return this.request<T>('GET', KubeClient.path(type, namespace, name));
  }

  list<T>(
    type: ResourceType,
    opts: { namespace?: string; labelSelector?: string; limit?: number; continue?: string; accept?: string } = {},
  ): Promise<ObjectList<T>> {
    return this.request<ObjectList<T>>('GET', KubeClient.path(type, opts.namespace), {
      query: { labelSelector: opts.labelSelector, limit: opts.limit, continue: opts.continue },
      accept: opts.accept,
    });
  }

  create<T>(type: ResourceType, body: KubeObject, namespace?: string): Promise<T> {
    return this.request<T>('POST', KubeClient.path(type, namespace ?? body.metadata.namespace), { body });
  }

  replace<T>(type: ResourceType, body: KubeObject): Promise<T> {
    return this.request<T>('PUT', KubeClient.path(type, body.metadata.namespace, body.metadata.name), { body });
  }

  patch<T>(type: ResourceType, name: string, namespace: string | undefined, patch: unknown, patchType: PatchType, subresource?: string): Promise<T> {
    return this.request<T>('PATCH', KubeClient.path(type, namespace, name, subresource), {
      body: patch,
      contentType: PATCH_CONTENT_TYPE[patchType],
    });
  }

  delete(type: ResourceType, name: string, namespace?: string): Promise<unknown> {
    return this.request('DELETE', KubeClient.path(type, namespace, name));
  }
}

function apiError(status: number, text: string, method: string, path: string): KubeApiError {
  let reason = 'Unknown';
  let message = text.slice(0, 2000);
  try {
    const body = JSON.parse(text) as { reason?: string; message?: string; details?: { causes?: { field?: string; message?: string }[] } };
    reason = body.reason ?? reason;
    message = body.message ?? message;
    // A 422 says only "invalid" at the top; the causes name the fields.
    const causes = body.details?.causes?.map((c) => `${c.field ?? ''}: ${c.message ?? ''}`).join('; ');
    if (causes) message = `${message} (${causes})`;
  } catch {
    // not JSON: keep the raw text
  }
  return new KubeApiError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`);
}

export function objectKey(obj: KubeObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
