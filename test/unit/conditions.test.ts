import { describe, expect, it } from 'vitest';
import { setCondition, setConditions } from '../../src/runtime/conditions.ts';
import { caughtUp, desiredStatus, summaryConditions } from '../../src/runtime/controller.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T01:00:00Z');

describe('conditions', () => {
  it('keeps lastTransitionTime while the status stays, and moves it when the status changes', () => {
    let list = setCondition([], { type: 'Ready', status: 'False', reason: 'A', message: 'a' }, 1, t0);
    expect(list[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    list = setCondition(list, { type: 'Ready', status: 'False', reason: 'B', message: 'b' }, 2, t1);
    expect(list[0]).toMatchObject({ reason: 'B', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 2 });
    list = setCondition(list, { type: 'Ready', status: 'True', reason: 'C', message: 'c' }, 2, t1);
    expect(list[0]!.lastTransitionTime).toBe('2026-01-01T01:00:00Z');
  });

  it('keeps one condition per type and the order of existing ones', () => {
    const list = setConditions(
      [],
      [
        { type: 'Ready', status: 'True', reason: 'R', message: '' },
        { type: 'TLSVerified', status: 'True', reason: 'T', message: '' },
        { type: 'Ready', status: 'False', reason: 'R2', message: '' },
      ],
      1,
      t0,
    );
    expect(list.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=False', 'TLSVerified=True']);
  });
});

describe('status from an outcome (kstatus)', () => {
  it('Ready: Ready=True, Reconciling=False, Stalled=False', () => {
    const c = summaryConditions({ state: 'Ready', reason: 'Connected', message: 'ok' });
    expect(c.map((x) => `${x.type}=${x.status}`)).toEqual(['Ready=True', 'Reconciling=False', 'Stalled=False']);
  });
  it('Progressing: Reconciling=True carries the reason', () => {
    const c = summaryConditions({ state: 'Progressing', reason: 'Unreachable', message: 'm' });
    expect(c.map((x) => `${x.type}=${x.status}:${x.reason}`)).toEqual(['Ready=False:Unreachable', 'Reconciling=True:Unreachable', 'Stalled=False:NotStalled']);
  });
  it('Stalled: Stalled=True, Reconciling=False', () => {
    const c = summaryConditions({ state: 'Stalled', reason: 'AuthenticationFailed', message: 'm' });
    expect(c.map((x) => `${x.type}=${x.status}`)).toEqual(['Ready=False', 'Reconciling=False', 'Stalled=True']);
  });
  it('Ended: Ready=False and Stalled=True, so kstatus says Failed rather than InProgress forever', () => {
    const c = summaryConditions({ state: 'Ended', reason: 'Expired', message: 'm' });
    expect(c.map((x) => `${x.type}=${x.status}`)).toEqual(['Ready=False', 'Reconciling=False', 'Stalled=True']);
  });
  it('writes observedGeneration and merges domain fields; null removes one', () => {
    const s = desiredStatus(
      { tls: { version: 'TLSv1.2' }, old: 1 },
      { state: 'Ready', reason: 'R', message: '', status: { tls: { version: 'TLSv1.3' }, old: null } },
      7,
      t0,
    );
    expect(s.observedGeneration).toBe(7);
    expect(s.tls).toEqual({ version: 'TLSv1.3' });
    expect(s.old).toBeNull();
    expect((s.conditions as { observedGeneration: number }[]).every((c) => c.observedGeneration === 7)).toBe(true);
  });
});

describe('caughtUp: whether the cache holds our own status write', () => {
  it('the same resourceVersion, or a later etcd revision, is caught up; an earlier one or none is not', () => {
    expect(caughtUp('105', '105')).toBe(true);
    expect(caughtUp('105', '120')).toBe(true);
    expect(caughtUp('105', '99')).toBe(false);
    expect(caughtUp('105', undefined)).toBe(false);
    // Beyond 2^53: compared as integers, not as floats.
    expect(caughtUp('9007199254740993', '9007199254740992')).toBe(false);
  });

  it('opaque resourceVersions count only when equal', () => {
    expect(caughtUp('abc', 'abc')).toBe(true);
    expect(caughtUp('abc', 'abd')).toBe(false);
    expect(caughtUp('105', 'x200')).toBe(false);
  });
});
