// Kubernetes Events (events.k8s.io/v1), de-duplicated: the same (object, type, reason, note) within
// the series window bumps series.count on the existing Event instead of creating another, as
// client-go's recorder does. Events are the human-readable summary; they expire, the audit table
// does not.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';
import { errorMessage } from './informer.ts';
import { LogOncePer } from './log-once.ts';

export const EVENT_TYPE: ResourceType = { group: 'events.k8s.io', version: 'v1', plural: 'events', kind: 'Event', namespaced: true };

export interface EventInput {
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
  /** What was done (events.k8s.io `action`), e.g. Grant, Revoke, Connect. */
  action: string;
}

interface Series {
  name: string;
  namespace: string;
  count: number;
  lastSeen: number;
}

const SERIES_WINDOW_MS = 10 * 60 * 1000;
const MAX_TRACKED = 4096;

export class EventRecorder {
  private readonly series = new Map<string, Series>();
  /** An API server that refuses every event is said once per interval, not once per event. */
  private readonly quiet = new LogOncePer();

  private readonly client: KubeClient;
  private readonly controller: string;
  private readonly instance: string;
  private readonly logger: Logger;
  /** Events about cluster-scoped objects go here, as Kubernetes does for Nodes. */
  private readonly clusterScopedNamespace: string;

  constructor(client: KubeClient, controller: string, instance: string, logger: Logger, clusterScopedNamespace = 'default') {
    this.client = client;
    this.controller = controller;
    this.instance = instance;
    this.logger = logger;
    this.clusterScopedNamespace = clusterScopedNamespace;
  }

  async emit(regarding: KubeObject, event: EventInput): Promise<void> {
    const namespace = regarding.metadata.namespace ?? this.clusterScopedNamespace;
    const note = event.note.length > 1024 ? `${event.note.slice(0, 1023)}…` : event.note;
    const key = `${regarding.metadata.uid}|${event.type}|${event.reason}|${note}`;
    const now = Date.now();
    try {
      const existing = this.series.get(key);
      if (existing && now - existing.lastSeen < SERIES_WINDOW_MS) {
        existing.count++;
        existing.lastSeen = now;
        try {
          await this.client.patch(
            EVENT_TYPE,
            existing.name,
            existing.namespace,
            { series: { count: existing.count, lastObservedTime: microTime(now) } },
            'merge',
          );
          return;
        } catch (err) {
          if (!isNotFound(err)) throw err;
          this.series.delete(key); // expired on the server: start a new one
        }
      }
      const name = `${regarding.metadata.name}.${randomBytes(8).toString('hex')}`;
      await this.client.create(
        EVENT_TYPE,
        {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace },
          eventTime: microTime(now),
          reportingController: this.controller,
          reportingInstance: this.instance,
          action: event.action,
          reason: event.reason,
          note,
          type: event.type,
          regarding: {
            apiVersion: regarding.apiVersion,
            kind: regarding.kind,
            name: regarding.metadata.name,
            namespace: regarding.metadata.namespace,
            uid: regarding.metadata.uid,
            resourceVersion: regarding.metadata.resourceVersion,
          },
        } as KubeObject,
        namespace,
      );
      this.track(key, { name, namespace, count: 1, lastSeen: now });
    } catch (err) {
      // An event that cannot be written must not fail the reconcile that produced it.
      const quiet = this.quiet.admit(errorMessage(err));
      if (quiet.log)
        this.logger.warn({ err: errorMessage(err), reason: event.reason, ...(quiet.held ? { repeatsHeldBack: quiet.held } : {}) }, 'could not record event');
    }
  }

  private track(key: string, s: Series): void {
    if (this.series.size >= MAX_TRACKED) {
      const oldest = this.series.keys().next().value;
      if (oldest !== undefined) this.series.delete(oldest);
    }
    this.series.set(key, s);
  }
}

/** events.k8s.io wants MicroTime: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
