// The controller loop, generic over kinds: informer -> queue -> reconcile(obj) -> Outcome, after which
// the runtime (never the reconciler) writes status conditions, emits events and schedules the next
// run. A reconciler says what it found and what should happen next; it never sleeps, loops or
// retries by itself.
//
// Status follows kstatus: Ready is the summary; Reconciling=True while work that resolves itself is
// under way (or being retried after an error); Stalled=True when a human must act. observedGeneration
// is written on every status write, and nothing is written when nothing changed, so an idle
// resync costs no API call.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { type KubeClient, isConflict, isNotFound, objectKey, splitKey, type KubeObject, type ResourceType } from './kube.ts';
import { Informer } from './informer.ts';
import { WorkQueue } from './queue.ts';
import { setConditions, type Condition, type ConditionInput } from './conditions.ts';
import { addFinalizer, hasFinalizer, removeFinalizer } from './finalizers.ts';
import type { EventInput, EventRecorder } from './events.ts';
import type { Metrics } from './metrics.ts';
import { LogOncePer } from './log-once.ts';

export type OutcomeState = 'Ready' | 'Progressing' | 'Stalled' | 'Ended';

export interface Outcome {
  /**
   * Ready: done. Progressing: waiting on something that resolves itself. Stalled: a human must act.
   * Ended: the object's purpose is over (an access that expired): Ready=False and Stalled=True, so
   * kstatus reports Failed and wait loops end (a human should extend or remove it); no backoff retries.
   */
  state: OutcomeState;
  reason: string;
  message: string;
  /** Domain status fields to merge into .status; a null value removes the field. */
  status?: Record<string, unknown>;
  /** Domain conditions besides Ready/Reconciling/Stalled (e.g. TLSVerified, Expired). */
  conditions?: ConditionInput[];
  events?: EventInput[];
  /** Run again after this long (timers: expiry, schedules). Without it: the resync period. */
  requeueAfterMs?: number;
}

/** Stalled, with a Warning event that says the same: a human must act, and is told so in both places. */
export function stalled(reason: string, message: string, action: string, status?: Record<string, unknown>): Outcome {
  return { state: 'Stalled', reason, message, ...(status ? { status } : {}), events: [{ type: 'Warning', reason, note: message, action }] };
}

/**
 * Thrown by a reconciler whose view of an external system went stale mid-way (another writer got
 * there first). Like an API conflict, it is retried soon and quietly: it is not an error to report.
 */
export class StaleObservation extends Error {}

/** How many objects one read ahead covers: 10,000 accesses are read in four queries. */
const READ_AHEAD_CHUNK = 2_500;
/**
 * How long an object cleaned up (before its finalizer's removal, or at its DELETE's admission) is
 * taken to be on its way out and kept from being reconciled: its deletion takes milliseconds once
 * let through (a webhook may take 30 s at most); should it fail, the object is reconciled again then.
 */
const CLEANED_HOLD_MS = 30_000;
/** How long a reconcile waits for the watch to bring our own status write (it takes milliseconds). */
const OWN_WRITE_WAIT_MS = 2_000;

export interface ReconcileContext {
  requestId: string;
  logger: Logger;
  now: Date;
  /** Who asked for this run, when a request says so (the user of an admission request); otherwise the object's own stamp counts. */
  actor?: string;
}

export interface SecondaryWatch {
  informer: Informer<KubeObject>;
  /** Keys of the primary objects that depend on the changed object. */
  map: (obj: KubeObject) => string[];
}

export interface ControllerOptions<T extends KubeObject> {
  name: string;
  type: ResourceType;
  client: KubeClient;
  logger: Logger;
  metrics: Metrics;
  events: EventRecorder;
  reconcile: (obj: T, ctx: ReconcileContext) => Promise<Outcome>;
  /** With a finalizer, cleanup runs before deletion completes; a non-Ready outcome keeps the object. */
  finalizer?: string;
  cleanup?: (obj: T, ctx: ReconcileContext) => Promise<Outcome>;
  /**
   * How cleanup is run before an object goes. 'finalizer' (the default): the finalizer is added to
   * every object and held until cleanup succeeds. 'admission': a validating webhook runs cleanup
   * while the API server admits the DELETE (cleanupAtAdmission), so objects carry no finalizer; one
   * that still does (made before) goes the finalizer's way. Either way, an object that goes without
   * its cleanup run here (its finalizer removed by hand, the webhook missed, or run by another
   * replica while a reconcile here was granting) is cleaned up from its last state as soon as the
   * watch says it is gone.
   */
  deletionGuard?: 'finalizer' | 'admission';
  /** Called once an object is gone from the cluster (release in-memory resources). */
  forget?: (key: string) => void;
  watches?: SecondaryWatch[];
  concurrency?: number;
  resyncMs?: number;
  /** Longest backoff for objects that are not Ready; they keep being retried at least this often. */
  maxRetryDelayMs?: number;
  namespace?: string;
  /** Reconcile only objects with these labels (sharding, benchmarks). */
  labelSelector?: string;
  /**
   * At start-up, the order in which the cached objects are first reconciled: e.g. accesses whose
   * deadline passed while Steward was down go first, before any other work.
   */
  startupOrder?: (objects: T[], now: Date) => T[];
  /**
   * With it, objects are resynced together rather than each on its own timer: every resync period
   * (and at start-up) readAhead gets every cached object, reads what their reconciles will observe in
   * a few batched reads (Driver.prime), and then every object is queued. An idle resync of 10,000
   * accesses then costs a few queries per Warehouse instead of 10,000 transactions. A failed read
   * ahead only costs speed: each reconcile then observes for itself.
   */
  readAhead?: (objects: T[]) => Promise<void>;
}

export class Controller<T extends KubeObject> {
  readonly informer: Informer<T>;
  readonly queue: WorkQueue;
  private readonly workers: Promise<void>[] = [];
  private readonly opts: ControllerOptions<T>;
  private readonly resyncMs: number;
  private readonly maxRetryDelayMs: number;
  private running = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** The same failure of many objects is logged once per cause per interval. */
  private readonly quiet = new LogOncePer();
  /**
   * Our last status write per key, until the watch brings it: a reconcile run on the version before
   * it would act on a status that is no longer true (start again what it just finished).
   */
  private readonly ownWrites = new Map<string, { resourceVersion: string; at: number }>();
  /** Keys cleaned up (at admission, or before the finalizer's removal), held from reconciles until the watch says they are gone or the hold ends. */
  private readonly deleting = new Map<string, number>();
  /** Objects gone without their cleanup run here: their last state, cleaned up from the queue. */
  private readonly gone = new Map<string, T>();

  constructor(opts: ControllerOptions<T>) {
    this.opts = opts;
    this.resyncMs = opts.resyncMs ?? 5 * 60_000;
    this.maxRetryDelayMs = opts.maxRetryDelayMs ?? this.resyncMs;
    this.queue = new WorkQueue({ metrics: opts.metrics.queue(opts.name) });
    this.informer = new Informer<T>(opts.client, opts.type, { logger: opts.logger, namespace: opts.namespace, labelSelector: opts.labelSelector });
    this.informer.onEvent((type, obj, old) => {
      const key = objectKey(obj);
      const own = this.ownWrites.get(key);
      if (own && (type === 'delete' || caughtUp(own.resourceVersion, obj.metadata.resourceVersion))) this.ownWrites.delete(key);
      if (!this.running) return; // the initial list is enqueued by start(), in startupOrder
      if (type === 'delete' && opts.cleanup && !hasFinalizer(obj, opts.finalizer ?? '')) {
        // Cleaned up here (at admission, or before our finalizer was removed), and this is that
        // deletion: nothing is left to do. Otherwise (the finalizer removed by hand, the webhook
        // missed) its cleanup is owed.
        const held = this.deleting.get(key);
        this.deleting.delete(key);
        if (held === undefined || Date.now() >= held) this.gone.set(key, obj);
      }
      if (type === 'update' && old && !needsReconcile(old, obj)) return;
      this.queue.add(objectKey(obj));
    });
    for (const watch of opts.watches ?? []) {
      watch.informer.onEvent((_type, obj) => {
        if (!this.running) return;
        for (const key of watch.map(obj)) this.queue.add(key);
      });
    }
  }

  /** Starts the informers and the workers; resolves once the caches are synced. */
  async start(): Promise<void> {
    await Promise.all([this.informer.start(), ...(this.opts.watches ?? []).map((w) => w.informer.start())]);
    const cached = this.informer.list();
    const ordered = this.opts.startupOrder ? this.opts.startupOrder(cached, new Date()) : cached;
    this.running = true;
    const n = this.opts.concurrency ?? 4;
    for (let i = 0; i < n; i++) this.workers.push(this.work());
    await this.enqueueAll(ordered);
    if (this.opts.readAhead) this.scheduleResync();
    this.opts.logger.info({ controller: this.opts.name, workers: n }, 'controller started');
  }

  /**
   * Queues every object, in order. With a read ahead, in chunks: each chunk is read, then queued,
   * so the workers start on the first (the overdue expiries startupOrder put there) while the next
   * is read, and what is read ahead and not yet used stays bounded.
   */
  private async enqueueAll(objects: T[]): Promise<void> {
    if (!this.opts.readAhead) {
      for (const obj of objects) this.queue.add(objectKey(obj));
      return;
    }
    for (let i = 0; i < objects.length && this.running; i += READ_AHEAD_CHUNK) {
      const chunk = objects.slice(i, i + READ_AHEAD_CHUNK);
      await this.readAhead(chunk);
      for (const obj of chunk) this.queue.add(objectKey(obj));
    }
  }

  /** Reads ahead for these objects' reconciles (ControllerOptions.readAhead); a failure is logged once per cause, never thrown. */
  private async readAhead(objects: T[]): Promise<void> {
    const end = this.opts.metrics.readAheadTime.startTimer({ controller: this.opts.name });
    try {
      await this.opts.readAhead!(objects);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const quiet = this.quiet.admit(`read ahead failed: ${message}`);
      if (quiet.log) this.opts.logger.warn({ controller: this.opts.name, err: message }, 'read ahead failed; each object observes for itself');
    } finally {
      end();
    }
  }

  /** The batched resync: every object, after one read ahead, each period (jittered so replicas and kinds spread). */
  private scheduleResync(): void {
    const delay = Math.round(this.resyncMs * (0.9 + Math.random() * 0.2));
    this.resyncTimer = setTimeout(async () => {
      if (!this.running) return;
      await this.enqueueAll(this.informer.list());
      if (this.running) this.scheduleResync();
    }, delay);
    this.resyncTimer.unref();
  }

  /** Stops handing out work and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.resyncTimer);
    this.queue.shutdown();
    await Promise.all(this.workers);
    await Promise.all([this.informer.stop(), ...(this.opts.watches ?? []).map((w) => w.informer.stop())]);
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.get(); key !== undefined; key = await this.queue.get()) {
      const metrics = this.opts.metrics;
      metrics.activeWorkers.inc({ controller: this.opts.name });
      const end = metrics.reconcileTime.startTimer({ controller: this.opts.name });
      try {
        await this.process(key);
      } finally {
        end();
        metrics.activeWorkers.dec({ controller: this.opts.name });
        this.queue.done(key);
      }
    }
  }

  /**
   * Runs cleanup for an object whose DELETE is being admitted (deletionGuard 'admission'): after any
   * reconcile of it in flight, with none started until the watch says it is gone, or, should the
   * DELETE fail after admission, until CLEANED_HOLD_MS is over (then it is reconciled as usual again).
   * Cleanup's outcome is returned for the webhook to answer with; a failed cleanup releases the hold.
   */
  async cleanupAtAdmission(obj: T, ctx: ReconcileContext): Promise<Outcome> {
    const key = objectKey(obj);
    this.deleting.set(key, Date.now() + CLEANED_HOLD_MS);
    let outcome: Outcome | undefined;
    try {
      await this.queue.whenIdle(key);
      outcome = await this.opts.cleanup!(obj, ctx);
      return outcome;
    } finally {
      if (outcome?.state === 'Ready') this.queue.addAfter(key, CLEANED_HOLD_MS);
      else {
        this.deleting.delete(key);
        this.queue.add(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const { name: controller, metrics } = this.opts;
    const obj = this.informer.get(key);
    if (!obj) {
      const last = this.gone.get(key);
      if (last) return this.cleanUpGone(key, last);
      this.queue.forget(key);
      this.opts.forget?.(key);
      return;
    }
    // Made again under the same name: its own reconcile converges what the one before held.
    this.gone.delete(key);
    const held = this.deleting.get(key);
    if (held !== undefined) {
      if (Date.now() < held) return this.queue.addAfter(key, held - Date.now());
      this.deleting.delete(key);
    }
    // The cache is older than our own last status write: again shortly, once the watch has it (or,
    // should its event never come as such, after a relist, once OWN_WRITE_WAIT_MS is over).
    const own = this.ownWrites.get(key);
    if (own && !caughtUp(own.resourceVersion, obj.metadata.resourceVersion) && Date.now() - own.at < OWN_WRITE_WAIT_MS) {
      this.queue.addAfter(key, 20);
      return;
    }
    this.ownWrites.delete(key);
    const ctx = this.context(key);
    try {
      const outcome = await this.runOnce(obj, ctx);
      if (!outcome) {
        this.queue.forget(key);
        metrics.reconcileTotal.inc({ controller, result: 'success' });
        return;
      }
      await this.writeResult(obj, outcome, ctx);
      if (outcome.state === 'Ready' || outcome.state === 'Ended') {
        this.queue.forget(key);
        const resync = Math.round(this.resyncMs * (0.9 + Math.random() * 0.2));
        // A deadline the reconciler asked for (an expiry) is urgent; a resync is not, and with a
        // read ahead it is the batched one (scheduleResync), not a timer per object.
        const deadline = outcome.requeueAfterMs !== undefined && outcome.requeueAfterMs < resync;
        if (deadline) this.queue.addAfter(key, outcome.requeueAfterMs!, true);
        else if (!this.opts.readAhead) this.queue.addAfter(key, resync);
        metrics.reconcileTotal.inc({ controller, result: outcome.requeueAfterMs !== undefined ? 'requeue_after' : 'success' });
      } else {
        this.retryLater(key, outcome.requeueAfterMs);
        metrics.reconcileTotal.inc({ controller, result: 'requeue' });
      }
    } catch (err) {
      metrics.reconcileErrors.inc({ controller });
      metrics.reconcileTotal.inc({ controller, result: 'error' });
      const message = err instanceof Error ? err.message : String(err);
      // A conflict means our view was stale: the watch brings the new version; retry soon, quietly.
      if (isConflict(err) || isNotFound(err) || err instanceof StaleObservation) {
        ctx.logger.debug({ err: message }, 'stale object; retrying');
      } else {
        const quiet = this.quiet.admit(`reconcile failed: ${message}`);
        if (quiet.log) ctx.logger.error({ err: message, ...(quiet.held ? { repeatsHeldBack: quiet.held } : {}) }, 'reconcile failed');
        const outcome: Outcome = {
          state: 'Progressing',
          reason: 'ReconcileError',
          message: `${message} (retrying with backoff)`,
          events: [{ type: 'Warning', reason: 'ReconcileError', note: message, action: 'Reconcile' }],
        };
        await this.writeResult(obj, outcome, ctx).catch((e: unknown) => {
          const quiet = this.quiet.admit(`could not write status: ${String(e)}`);
          if (quiet.log) ctx.logger.warn({ err: String(e), ...(quiet.held ? { repeatsHeldBack: quiet.held } : {}) }, 'could not write status');
        });
      }
      this.retryLater(key);
    }
  }

  /** A new run's context for the object at `key`: its request id, a logger that says which object, now; and who asked, when a request says. */
  context(key: string, actor?: string): ReconcileContext {
    const requestId = randomUUID();
    const { namespace, name } = splitKey(key);
    return {
      requestId,
      logger: this.opts.logger.child({ request_id: requestId, controller: this.opts.name, namespace, name }),
      now: new Date(),
      ...(actor ? { actor } : {}),
    };
  }

  /** The cleanup an object gone without it still owes (its finalizer removed by hand, say), from its last state. */
  private async cleanUpGone(key: string, last: T): Promise<void> {
    const ctx = this.context(key);
    const { logger } = ctx;
    const failed = (message: string) => {
      const quiet = this.quiet.admit(`cleanup after deletion failed: ${message}`);
      if (quiet.log) logger.error({ err: message, ...(quiet.held ? { repeatsHeldBack: quiet.held } : {}) }, 'cleanup after deletion failed; retrying');
      this.retryLater(key);
    };
    try {
      const outcome = await this.opts.cleanup!(last, ctx);
      if (outcome.state !== 'Ready') return failed(outcome.message);
      logger.info({ reason: outcome.reason }, 'cleaned up after deletion');
      this.gone.delete(key);
      this.queue.forget(key);
      this.opts.forget?.(key);
    } catch (err) {
      failed(err instanceof Error ? err.message : String(err));
    }
  }

  private retryLater(key: string, atMostMs?: number): void {
    // addRateLimited schedules with the key's backoff; a sooner timer asked by the reconciler wins.
    const delay = this.queue.addRateLimited(key);
    if (delay > this.maxRetryDelayMs) this.queue.addAfter(key, this.maxRetryDelayMs);
    if (atMostMs !== undefined && atMostMs < delay) this.queue.addAfter(key, atMostMs);
  }

  /** Runs cleanup or reconcile; undefined when there is nothing left to report (object released). */
  private async runOnce(obj: T, ctx: ReconcileContext): Promise<Outcome | undefined> {
    const { finalizer, cleanup, client, type } = this.opts;
    if (obj.metadata.deletionTimestamp) {
      if (!finalizer || !cleanup || !hasFinalizer(obj, finalizer)) return undefined;
      const outcome = await cleanup(obj, ctx);
      if (outcome.state !== 'Ready') return outcome;
      for (const event of outcome.events ?? []) await this.opts.events.emit(obj, event);
      // Cleaned up: the deletion the removal lets through owes nothing (marked first: the watch may bring it before the answer).
      const key = objectKey(obj);
      this.deleting.set(key, Date.now() + CLEANED_HOLD_MS);
      await removeFinalizer(client, type, obj, finalizer).catch((err: unknown) => {
        this.deleting.delete(key);
        throw err;
      });
      return undefined;
    }
    if (finalizer && this.opts.deletionGuard !== 'admission' && !hasFinalizer(obj, finalizer)) {
      const updated = await addFinalizer(client, type, obj, finalizer);
      obj.metadata.resourceVersion = updated.metadata.resourceVersion;
      obj.metadata.finalizers = updated.metadata.finalizers;
    }
    return this.opts.reconcile(obj, ctx);
  }

  private async writeResult(obj: T, outcome: Outcome, ctx: ReconcileContext): Promise<void> {
    const current = ((obj as unknown as { status?: Record<string, unknown> }).status ?? {}) as Record<string, unknown>;
    const desired = desiredStatus(current, outcome, obj.metadata.generation, ctx.now);
    const unchanged = isDeepStrictEqual(withoutNulls(current), withoutNulls(desired));
    // Events are the human summary: written alongside, never holding up the status (emit logs its
    // own failures). A refusal or a wait that is the same as last time, status and all, is not news:
    // re-emitting it at every resync would be an API write per stalled object per resync. What a
    // Ready outcome reports (drift corrected) is something that happened now, and always goes out.
    if (!unchanged || outcome.state === 'Ready') for (const event of outcome.events ?? []) void this.opts.events.emit(obj, event);
    if (unchanged) return;
    const written = await this.opts.client.patch<KubeObject>(this.opts.type, obj.metadata.name, obj.metadata.namespace, { status: desired }, 'merge', 'status');
    const resourceVersion = written?.metadata?.resourceVersion;
    const key = objectKey(obj);
    // The watch may have brought it already, before the response did.
    if (resourceVersion && !caughtUp(resourceVersion, this.informer.get(key)?.metadata.resourceVersion))
      this.ownWrites.set(key, { resourceVersion, at: Date.now() });
  }
}

/** Status after an outcome: domain fields merged, Ready/Reconciling/Stalled derived from the state. */
export function desiredStatus(current: Record<string, unknown>, outcome: Outcome, generation: number | undefined, now: Date): Record<string, unknown> {
  const conditions = setConditions(
    (current.conditions as Condition[] | undefined) ?? [],
    [...summaryConditions(outcome), ...(outcome.conditions ?? [])],
    generation,
    now,
  );
  const merged: Record<string, unknown> = { ...current, ...(outcome.status ?? {}), conditions };
  if (generation !== undefined) merged.observedGeneration = generation;
  return merged;
}

export function summaryConditions(outcome: Outcome): ConditionInput[] {
  const { state, reason, message } = outcome;
  return [
    { type: 'Ready', status: state === 'Ready' ? 'True' : 'False', reason, message },
    state === 'Progressing'
      ? { type: 'Reconciling', status: 'True', reason, message }
      : { type: 'Reconciling', status: 'False', reason: 'Done', message: 'No work in progress' },
    state === 'Stalled' || state === 'Ended'
      ? { type: 'Stalled', status: 'True', reason, message }
      : { type: 'Stalled', status: 'False', reason: 'NotStalled', message: 'Nothing needs a human' },
  ];
}

/**
 * Only these changes can change the outcome. Status-only updates (our own writes) and finalizer
 * changes (our own, on the first reconcile) do not.
 */
/**
 * Whether the cache holds our write or a later version. resourceVersions are opaque to clients,
 * except that the same one is the same version; the API server's are etcd revisions, integers that
 * only grow, and are read so when they look like one (otherwise only equality counts, and a wait
 * ends at OWN_WRITE_WAIT_MS).
 */
export function caughtUp(written: string, seen: string | undefined): boolean {
  if (seen === undefined) return false;
  if (seen === written) return true;
  return /^\d+$/.test(seen) && /^\d+$/.test(written) && BigInt(seen) > BigInt(written);
}

function needsReconcile(old: KubeObject, obj: KubeObject): boolean {
  const a = old.metadata;
  const b = obj.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    !isDeepStrictEqual(a.labels, b.labels) ||
    !isDeepStrictEqual(a.annotations, b.annotations)
  );
}

function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}
