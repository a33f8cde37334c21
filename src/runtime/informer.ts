// An informer: lists a resource, then watches it from the list's resourceVersion, keeping a cache and
// telling handlers what changed. It is built to survive what real API servers do:
// - 410 Gone (the resourceVersion is too old, e.g. after etcd compaction): list again, and report the
//   difference between the old cache and the new list as ordinary events, deletions included;
// - a watch that the server ends (timeoutSeconds): watch again from the last resourceVersion seen;
// - transport errors (API server restarted, network gone): back off with jitter, then resume;
// - a watch that goes silent (half-open TCP): no byte within idleMs aborts it and starts again.
// Bookmarks keep the resourceVersion fresh on quiet resources, so a resume rarely needs a re-list.
import type { Logger } from 'pino';
import { KubeClient, isGone, objectKey, type KubeObject, type ObjectList, type ResourceType } from './kube.ts';

export type InformerEventType = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (type: InformerEventType, obj: T, old?: T) => void;

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  /** Cache only metadata (PartialObjectMetadata): for Secrets, whose values Steward reads on demand. */
  metadataOnly?: boolean;
  /** Server-side watch timeout, jittered up to twice this. */
  watchTimeoutSeconds?: number;
  /** Abort a watch after this long without a byte. */
  idleMs?: number;
  logger: Logger;
}

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; reason?: string; message?: string };
}

const METADATA_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private resourceVersion = '';
  private abort = new AbortController();
  private stopped = false;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private loop: Promise<void> | undefined;
  /** Counts of what happened, for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, errors: 0, gone: 0 };

  private readonly client: KubeClient;
  readonly type: ResourceType;
  private readonly options: InformerOptions;

  constructor(client: KubeClient, type: ResourceType, options: InformerOptions) {
    this.client = client;
    this.type = type;
    this.options = options;
  }

  onEvent(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  start(): Promise<void> {
    if (!this.loop) this.loop = this.run();
    return this.waitForSync();
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.watch();
        failures = 0; // the server closed a healthy watch: resume at once
      } catch (err) {
        if (this.stopped) return;
        if (isGone(err) || err instanceof GoneError) {
          this.stats.gone++;
          this.options.logger.info({ resource: this.type.plural }, 'resourceVersion too old (410 Gone): listing again');
          needList = true;
          continue;
        }
        this.stats.errors++;
        failures++;
        const delay = backoffWithJitter(failures);
        // The first failure of a run is a warning; the retries that follow it (the API server is
        // still away) are debug, so an outage costs a line per informer, not one per retry.
        const log = failures === 1 ? this.options.logger.warn.bind(this.options.logger) : this.options.logger.debug.bind(this.options.logger);
        log({ resource: this.type.plural, err: errorMessage(err), retryInMs: delay, failures }, 'watch failed; retrying');
        await sleep(delay, this.abort.signal);
      }
    }
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const items: T[] = [];
    let continueToken: string | undefined;
    let rv = '';
    do {
      const page: ObjectList<T> = await this.client.list<T>(this.type, {
        namespace: this.options.namespace,
        labelSelector: this.options.labelSelector,
        limit: 500,
        continue: continueToken,
        accept: this.options.metadataOnly ? METADATA_ACCEPT : undefined,
      });
      for (const item of page.items) items.push(slim(item));
      continueToken = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? '';
    } while (continueToken);

    // Replace the cache, and tell handlers the difference: what a missed watch would have said.
    const fresh = new Map(items.map((o) => [objectKey(o), o] as const));
    for (const [key, old] of this.cache) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit('delete', old);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, old);
    }
    this.resourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watch(): Promise<void> {
    this.stats.watches++;
    const base = this.options.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.floor(base + Math.random() * base);
    const path = KubeClient.path(this.type, this.options.namespace);
    let failure: unknown;
    await this.client.stream(
      path,
      {
        query: {
          watch: true,
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector: this.options.labelSelector,
        },
        accept: this.options.metadataOnly ? METADATA_WATCH_ACCEPT : undefined,
        signal: this.abort.signal,
        idleMs: this.options.idleMs ?? (timeoutSeconds + 30) * 1000,
      },
      (line) => {
        if (failure) return;
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === 'ERROR') {
          const status = event.object;
          failure =
            status.code === 410 ? new GoneError(status.message ?? 'Gone') : new Error(`watch error: ${status.code} ${status.reason}: ${status.message}`);
          return;
        }
        this.apply(event);
      },
    );
    if (failure) throw failure;
  }

  private apply(event: WatchEvent<T>): void {
    const obj = slim(event.object);
    if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
    if (event.type === 'BOOKMARK') return;
    const key = objectKey(obj);
    const old = this.cache.get(key);
    if (event.type === 'DELETED') {
      this.cache.delete(key);
      this.emit('delete', obj);
      return;
    }
    this.cache.set(key, obj);
    this.emit(old ? 'update' : 'add', obj, old);
  }

  private emit(type: InformerEventType, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (err) {
        this.options.logger.error({ err: errorMessage(err) }, 'informer handler failed');
      }
    }
  }
}

/** A 410 that arrives inside a watch stream, as an ERROR event rather than an HTTP status. */
class GoneError extends Error {}

export function backoffWithJitter(failures: number, baseMs = 200, maxMs = 30_000): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 20));
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * What no reconciler reads, dropped before an object is cached: managedFields (server-side apply's
 * bookkeeping) and kubectl's last-applied copy of the whole manifest. Together they are most of a
 * small object's size, and the cache holds every object.
 */
export function slim<T extends KubeObject>(obj: T): T {
  const meta = obj.metadata as T['metadata'] & { managedFields?: unknown };
  if (meta) {
    delete meta.managedFields;
    if (meta.annotations && LAST_APPLIED in meta.annotations) {
      const { [LAST_APPLIED]: _dropped, ...rest } = meta.annotations;
      meta.annotations = rest;
    }
  }
  return obj;
}
