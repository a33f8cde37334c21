import { describe, expect, it } from 'vitest';
import { PrimedObservations } from '../../src/drivers/primed.ts';

type T = { role: string; schema: string };

describe('PrimedObservations (the batched resync read ahead)', () => {
  const a: T = { role: 'a', schema: 's' };
  const b: T = { role: 'b', schema: 's' };

  it('hands each observation out once, to the target it was read for', () => {
    const primed = new PrimedObservations<T, string>((t) => t.role);
    primed.put([a, b], ['obs-a', 'obs-b'], 1000);
    expect(primed.take(b, 1001)).toBe('obs-b');
    expect(primed.take(b, 1002)).toBeUndefined(); // once: the next observe reads for itself
    expect(primed.take(a, 1003)).toBe('obs-a');
    expect(primed.size).toBe(0);
  });

  it('does not serve a target whose spec changed since (same key, another schema)', () => {
    const primed = new PrimedObservations<T, string>((t) => t.role);
    primed.put([a], ['obs-a'], 1000);
    expect(primed.take({ role: 'a', schema: 'other' }, 1001)).toBeUndefined();
    expect(primed.take(a, 1002)).toBeUndefined(); // and it was dropped
  });

  it('does not serve an observation older than its time to live, and forgets old ones', () => {
    const primed = new PrimedObservations<T, string>((t) => t.role, 500);
    primed.put([a], ['obs-a'], 1000);
    expect(primed.take(a, 1501)).toBeUndefined();
    primed.put([a, b], ['obs-a', 'obs-b'], 2000);
    primed.put([], [], 2600); // a later read ahead evicts what nobody used
    expect(primed.size).toBe(0);
  });

  it('does not serve what the driver changed after the read began, even if the read lands after the change', () => {
    const primed = new PrimedObservations<T, string>((t) => t.role);
    primed.put([a], ['obs-a'], 1000);
    primed.changing(a, 1100); // e.g. the view is dropped
    expect(primed.take(a, 1101)).toBeUndefined();
    // A read ahead that began before the change and finished after it is not kept either.
    primed.put([a, b], ['old-a', 'obs-b'], 1050, 1200);
    expect(primed.take(a, 1201)).toBeUndefined();
    expect(primed.take(b, 1202)).toBe('obs-b');
    // One that began after the change is.
    primed.put([a], ['new-a'], 1300);
    expect(primed.take(a, 1301)).toBe('new-a');
  });
});
