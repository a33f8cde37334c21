import { describe, expect, it } from 'vitest';
import { addFinalizerPatch, removeFinalizerPatch } from '../../src/runtime/finalizers.ts';

const F = 'steward.dev/cleanup';

describe('finalizer patches are guarded', () => {
  it('adding to an empty list is guarded by resourceVersion', () => {
    expect(addFinalizerPatch({ metadata: { name: 'x', resourceVersion: '42' } }, F)).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/metadata/finalizers', value: [F] },
    ]);
  });
  it('adding to an existing list is guarded by the list', () => {
    expect(addFinalizerPatch({ metadata: { name: 'x', finalizers: ['other'] } }, F)).toEqual([
      { op: 'test', path: '/metadata/finalizers', value: ['other'] },
      { op: 'add', path: '/metadata/finalizers/-', value: F },
    ]);
  });
  it('removal tests the entry at the index it removes', () => {
    expect(removeFinalizerPatch({ metadata: { name: 'x', finalizers: ['other', F] } }, F)).toEqual([
      { op: 'test', path: '/metadata/finalizers/1', value: F },
      { op: 'remove', path: '/metadata/finalizers/1' },
    ]);
    expect(removeFinalizerPatch({ metadata: { name: 'x', finalizers: ['other'] } }, F)).toBeUndefined();
  });
});
