// Observations read ahead, in one batch, for the reconciles about to run (an idle resync of a whole
// Warehouse): each is handed out once, to the next observe of the same target, while it is fresh.
// Handing out a slightly old observation is safe for the same reason planning from an unlocked read
// is: a driver's apply locks, looks again and refuses a plan whose basis changed (StaleObservation).
import { isDeepStrictEqual } from 'node:util';

export class PrimedObservations<Target, Observation> {
  private readonly entries = new Map<string, { target: Target; observation: Observation; at: number }>();
  private readonly keyOf: (t: Target) => string;
  private readonly ttlMs: number;

  /** `keyOf` names a target (its role, its view); `ttlMs`: how long a read ahead stays worth using. */
  constructor(keyOf: (t: Target) => string, ttlMs = 60_000) {
    this.keyOf = keyOf;
    this.ttlMs = ttlMs;
  }

  /** When the driver last changed each target: a read that began before it is out of date. */
  private readonly changedAt = new Map<string, number>();

  /** `readAt`: when the read began. An observation of a target changed since is not kept. */
  put(targets: readonly Target[], observations: readonly Observation[], readAt = Date.now(), now = readAt): void {
    this.evict(now);
    for (const [i, target] of targets.entries()) {
      const key = this.keyOf(target);
      const changed = this.changedAt.get(key);
      if (changed !== undefined && changed >= readAt) continue;
      this.entries.set(key, { target, observation: observations[i]!, at: readAt });
    }
  }

  /**
   * The driver is changing this target: what was read ahead of it is no longer true (a view about to
   * be dropped would otherwise be handed out as built, and a settled plan checks nothing again).
   */
  changing(target: Target, now = Date.now()): void {
    const key = this.keyOf(target);
    this.entries.delete(key);
    this.changedAt.set(key, now);
  }

  /** The observation read ahead for exactly this target (a spec changed since is a different target), once. */
  take(target: Target, now = Date.now()): Observation | undefined {
    const key = this.keyOf(target);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (now - entry.at > this.ttlMs || !isDeepStrictEqual(entry.target, target)) return undefined;
    return entry.observation;
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(now: number): void {
    for (const [key, entry] of this.entries) if (now - entry.at > this.ttlMs) this.entries.delete(key);
    // A change older than any read still worth using can no longer make one out of date.
    for (const [key, at] of this.changedAt) if (now - at > this.ttlMs) this.changedAt.delete(key);
  }
}
