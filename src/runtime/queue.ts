// The work queue between informers and reconcilers, with client-go's semantics:
// - a key waiting in the queue is there once, however often it is added (de-duplication);
// - a key being processed is never handed out again until done() — an add meanwhile is remembered
//   and the key comes back once, after done(), so one object is never reconciled twice at once;
// - failures back off per key, exponentially (5 ms doubling to ~16 min), until forget();
// - addAfter() holds a key until a moment (expiry, schedules) with millisecond precision: one timer
//   for the earliest moment, not one per key, so 10,000 pending expiries cost one timer;
// - a deadline marked urgent (an expiry) jumps the line when due: a backlog of retries or a resync
//   of thousands of objects must not make an access outlive its deadline.

export interface QueueMetrics {
  depth(n: number): void;
  added(): void;
  retried(): void;
  waited(seconds: number): void;
}

export interface QueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  metrics?: QueueMetrics;
  now?: () => number;
}

/** A binary min-heap of (time, key). Entries superseded by an earlier time are skipped lazily. */
class TimerHeap {
  private items: { at: number; key: string }[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): { at: number; key: string } | undefined {
    return this.items[0];
  }
  push(at: number, key: string): void {
    const items = this.items;
    items.push({ at, key });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.at <= items[i]!.at) break;
      [items[parent], items[i]] = [items[i]!, items[parent]!];
      i = parent;
    }
  }
  pop(): { at: number; key: string } | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && items[l]!.at < items[m]!.at) m = l;
        if (r < items.length && items[r]!.at < items[m]!.at) m = r;
        if (m === i) break;
        [items[m], items[i]] = [items[i]!, items[m]!];
        i = m;
      }
    }
    return top;
  }
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private head = 0;
  /** Due urgent keys, handed out before the ordinary queue. */
  private readonly urgent: string[] = [];
  private readonly urgentTimers = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Who waits for a key being processed to be done (whenIdle). */
  private readonly idleWaiters = new Map<string, (() => void)[]>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly waitingUntil = new Map<string, number>();
  private readonly timers = new TimerHeap();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly metrics: QueueMetrics | undefined;
  private readonly now: () => number;

  constructor(options: QueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 1000 * 1000;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
  }

  /** Keys ready to be handed out. */
  get length(): number {
    return this.queue.length - this.head + this.urgent.length;
  }

  /** Keys waiting for a timer. */
  get waiting(): number {
    return this.waitingUntil.size;
  }

  add(key: string, urgent = false): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.added();
    this.dirty.add(key);
    this.addedAt.set(key, this.now());
    if (this.processing.has(key)) return; // handed out again after done()
    const getter = this.getters.shift();
    if (getter) {
      this.handOut(key);
      getter(key);
    } else (urgent ? this.urgent : this.queue).push(key);
    // Reported either way, so the gauge exists (at 0) for a queue whose workers take every key at once.
    this.metrics?.depth(this.length);
  }

  /**
   * Adds the key after delayMs. An earlier pending moment for the same key wins. An urgent key is
   * handed out ahead of the ordinary queue once due.
   */
  addAfter(key: string, delayMs: number, urgent = false): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key, urgent);
      return;
    }
    const at = this.now() + delayMs;
    const existing = this.waitingUntil.get(key);
    if (existing !== undefined && existing <= at) return;
    if (urgent) this.urgentTimers.add(key);
    else this.urgentTimers.delete(key);
    this.waitingUntil.set(key, at);
    this.timers.push(at, key);
    this.armTimer();
  }

  /** Adds the key after its next backoff delay: base * 2^failures, capped. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** n);
    this.metrics?.retried();
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count: the next error starts the backoff again from the base. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Waits for the next key; undefined once the queue is shut down and drained. */
  get(): Promise<string | undefined> {
    if (this.urgent.length > 0) {
      const key = this.urgent.shift()!;
      this.metrics?.depth(this.length);
      this.handOut(key);
      return Promise.resolve(key);
    }
    if (this.length > 0) {
      const key = this.queue[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.metrics?.depth(this.length);
      this.handOut(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Resolves once the key is not being processed (at once if it is not). */
  whenIdle(key: string): Promise<void> {
    if (!this.processing.has(key)) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.set(key, [...(this.idleWaiters.get(key) ?? []), resolve]));
  }

  done(key: string): void {
    this.processing.delete(key);
    const waiters = this.idleWaiters.get(key);
    if (waiters) {
      this.idleWaiters.delete(key);
      for (const resolve of waiters) resolve();
    }
    if (this.dirty.has(key) && !this.shuttingDown) {
      const getter = this.getters.shift();
      if (getter) {
        this.handOut(key);
        getter(key);
      } else {
        this.queue.push(key);
        this.metrics?.depth(this.length);
      }
    }
  }

  /** Stops handing out keys: waiting get() calls resolve with undefined; timers are dropped. */
  shutdown(): void {
    this.shuttingDown = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const getter of this.getters.splice(0)) getter(undefined);
  }

  private handOut(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    if (added !== undefined) {
      this.metrics?.waited((this.now() - added) / 1000);
      this.addedAt.delete(key);
    }
  }

  private armTimer(): void {
    const next = this.timers.peek();
    if (!next || next.at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next.at;
    this.timer = setTimeout(() => this.fireTimers(), Math.max(0, next.at - this.now()));
    // Timers must not keep a process alive that is otherwise done (e.g. on shutdown).
    this.timer.unref();
  }

  private fireTimers(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.now();
    for (let next = this.timers.peek(); next && next.at <= now; next = this.timers.peek()) {
      this.timers.pop();
      if (this.waitingUntil.get(next.key) !== next.at) continue; // superseded by an earlier moment
      this.waitingUntil.delete(next.key);
      const urgent = this.urgentTimers.delete(next.key);
      this.add(next.key, urgent);
    }
    this.armTimer();
  }
}
