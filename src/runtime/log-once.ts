// One log line per cause per interval. When a dependency is down (the API server restarting, say),
// every object fails for the same reason at once: a thousand identical lines say nothing the first
// did not. The first occurrence of a cause is logged; repeats within the interval are counted, and
// the next line of that cause says how many were held back.
export class LogOncePer {
  private readonly intervalMs: number;
  private readonly causes = new Map<string, { until: number; held: number }>();

  constructor(intervalMs = 30_000) {
    this.intervalMs = intervalMs;
  }

  /**
   * Whether to log this cause now, and how many of it were held back since it was last logged. The
   * cause is taken without what names one object (causeOf): the same 503 for 1,000 objects is one.
   */
  admit(message: string, now = Date.now()): { log: boolean; held: number } {
    const cause = causeOf(message);
    const seen = this.causes.get(cause);
    if (seen && now < seen.until) {
      seen.held++;
      return { log: false, held: seen.held };
    }
    const held = seen?.held ?? 0;
    this.causes.set(cause, { until: now + this.intervalMs, held: 0 });
    // Causes that stopped recurring are forgotten, so the map stays as small as the current trouble.
    if (this.causes.size > 1000) for (const [k, v] of this.causes) if (v.until < now) this.causes.delete(k);
    return { log: true, held };
  }
}

/**
 * A failure's cause, without what makes it one object's: the request path a Kubernetes API error
 * starts with (`PATCH /apis/.../datasetaccesses/a-17/status: 503 ...`), and the error's class name
 * that String(err) puts in front.
 */
export function causeOf(message: string): string {
  return message.replace(/\b\w*Error: /g, '').replace(/\b(GET|PUT|PATCH|POST|DELETE) \/\S+: /g, '$1 <path>: ');
}
