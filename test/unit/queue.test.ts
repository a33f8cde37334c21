import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/runtime/queue.ts';

describe('WorkQueue', () => {
  it('hands out a key once however often it was added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
  });

  it('never hands out a key that is being processed; an add meanwhile comes back once after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0); // not handed out while processing
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done('a');
    await Promise.resolve();
    expect(second).toBe('a');
    q.done('a');
    expect(q.length).toBe(0);
  });

  it('whenIdle resolves at once for a key not being processed, else once it is done', async () => {
    const q = new WorkQueue();
    let idle = false;
    await q.whenIdle('a');
    q.add('a');
    await q.get();
    void q.whenIdle('a').then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(idle).toBe(false);
    q.done('a');
    await Promise.resolve();
    expect(idle).toBe(true);
  });

  it('backs off per key exponentially and forget() starts again from the base', () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 1000 });
    expect([1, 2, 3, 4].map(() => q.addRateLimited('a'))).toEqual([5, 10, 20, 40]);
    expect(q.addRateLimited('b')).toBe(5);
    for (let i = 0; i < 20; i++) q.addRateLimited('a');
    expect(q.addRateLimited('a')).toBe(1000);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(5);
    q.shutdown();
  });

  it('releases delayed keys in time order, keeping the earliest moment per key', async () => {
    const q = new WorkQueue();
    const start = Date.now();
    q.addAfter('late', 80);
    q.addAfter('early', 20);
    q.addAfter('early', 500); // later than the pending moment: ignored
    expect(q.waiting).toBe(2);
    expect(await q.get()).toBe('early');
    const earlyAt = Date.now() - start;
    expect(await q.get()).toBe('late');
    const lateAt = Date.now() - start;
    expect(earlyAt).toBeGreaterThanOrEqual(19);
    expect(lateAt).toBeGreaterThanOrEqual(79);
    expect(lateAt).toBeGreaterThan(earlyAt);
  });

  it('moves a delayed key earlier when asked for an earlier moment', async () => {
    const q = new WorkQueue();
    q.addAfter('a', 10_000);
    q.addAfter('a', 5);
    const key = await Promise.race([q.get(), new Promise((r) => setTimeout(() => r('timeout'), 1000))]);
    expect(key).toBe('a');
    q.shutdown();
  });

  it('holds many delayed keys on one timer and releases each no earlier than asked', async () => {
    const q = new WorkQueue();
    const start = Date.now();
    const due = new Map<string, number>();
    for (let i = 0; i < 500; i++) {
      const delay = 5 + ((i * 7919) % 100);
      due.set(`k${i}`, delay);
      q.addAfter(`k${i}`, delay);
    }
    for (let i = 0; i < 500; i++) {
      const key = (await q.get())!;
      const elapsed = Date.now() - start;
      expect(elapsed).toBeGreaterThanOrEqual(due.get(key)! - 1);
      q.done(key);
    }
    expect(q.waiting).toBe(0);
  });

  it('hands out a due urgent key before a backlog of ordinary ones', async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 100; i++) q.add(`backlog-${i}`);
    q.addAfter('expiry', 10, true);
    q.addAfter('resync', 5);
    await new Promise((r) => setTimeout(r, 30));
    expect(await q.get()).toBe('expiry');
    expect(await q.get()).toBe('backlog-0');
    expect(q.length).toBe(100); // 99 backlog + the resync, in order
    q.shutdown();
  });

  it('resolves waiting getters with undefined on shutdown and accepts no more keys', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutdown();
    expect(await pending).toBeUndefined();
    q.add('x');
    expect(await q.get()).toBeUndefined();
  });
});
