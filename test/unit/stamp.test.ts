import { describe, expect, it } from 'vitest';
import { stampPatch } from '../../src/governance/stamp.ts';

const alice = { username: 'alice@example.com', groups: ['data-eng', 'system:authenticated'] };
const bob = { username: 'bob@example.com' };
const dsa = (annotations?: Record<string, string>, spec: unknown = { duration: '720h' }) => ({
  metadata: { name: 'a', ...(annotations ? { annotations } : {}) },
  spec,
});
const annotationsOf = (patch: ReturnType<typeof stampPatch>) =>
  patch.find((p) => p.path === '/metadata/annotations')?.value as Record<string, string> | undefined;

describe('admission stamp: who asked', () => {
  it('a create is stamped with the requester and its groups; a forged value in the manifest is overwritten', () => {
    const patch = stampPatch({
      operation: 'CREATE',
      kind: 'DatasetAccess',
      user: alice,
      object: dsa({ 'steward.dev/requested-by': 'ceo@example.com', team: 'x' }),
    });
    expect(annotationsOf(patch)).toEqual({ team: 'x', 'steward.dev/requested-by': 'alice@example.com', 'steward.dev/requested-by-groups': 'data-eng' });
  });

  it('an update that changes the spec is stamped anew; one that does not keeps who asked, whoever sends it', () => {
    const old = dsa({ 'steward.dev/requested-by': 'alice@example.com' });
    const changed = stampPatch({
      operation: 'UPDATE',
      kind: 'DatasetAccess',
      user: bob,
      object: dsa({ 'steward.dev/requested-by': 'alice@example.com' }, { duration: '1h' }),
      oldObject: old,
    });
    expect(annotationsOf(changed)?.['steward.dev/requested-by']).toBe('bob@example.com');
    // A finalizer or label write by Steward, or an attempt to rewrite the stamp alone: the old stamp stays.
    const forged = stampPatch({
      operation: 'UPDATE',
      kind: 'DatasetAccess',
      user: bob,
      object: dsa({ 'steward.dev/requested-by': 'mallory' }),
      oldObject: old,
    });
    expect(annotationsOf(forged)?.['steward.dev/requested-by']).toBe('alice@example.com');
    expect(
      stampPatch({ operation: 'UPDATE', kind: 'DatasetAccess', user: bob, object: dsa({ 'steward.dev/requested-by': 'alice@example.com' }), oldObject: old }),
    ).toEqual([]);
  });

  it('records the GitOps tool that applied it, and leaves change-ref as the manifest says', () => {
    const patch = stampPatch({
      operation: 'CREATE',
      kind: 'DatasetAccess',
      user: { username: 'system:serviceaccount:argocd:argocd-application-controller' },
      object: dsa({
        'argocd.argoproj.io/tracking-id': 'analytics:steward.dev/DatasetAccess:analytics/churn',
        'steward.dev/change-ref': 'github.com/acme/data/pull/42',
      }),
    });
    expect(annotationsOf(patch)).toMatchObject({
      'steward.dev/requested-by': 'system:serviceaccount:argocd:argocd-application-controller',
      'steward.dev/requested-via': 'argocd:analytics:steward.dev/DatasetAccess:analytics/churn',
      'steward.dev/change-ref': 'github.com/acme/data/pull/42',
    });
  });

  it('an AccessReview: each decision added is stamped with who added it; earlier ones keep theirs; a forged appliedBy is replaced', () => {
    const d1 = { cycle: '2027-01-01', access: 'a/x', decision: 'keep', by: 'alice' };
    const d2 = { cycle: '2027-01-01', access: 'a/y', decision: 'revoke', by: 'alice' };
    const created = stampPatch({ operation: 'CREATE', kind: 'AccessReview', user: alice, object: { metadata: {}, spec: { decisions: [d1] } } });
    expect(created.find((p) => p.path === '/spec/decisions')?.value).toEqual([{ ...d1, appliedBy: 'alice@example.com' }]);
    const updated = stampPatch({
      operation: 'UPDATE',
      kind: 'AccessReview',
      user: bob,
      // The manifest re-applied without the stamps, plus a new decision that claims to be alice's.
      object: {
        metadata: { annotations: { 'steward.dev/requested-by': 'alice@example.com' } },
        spec: { decisions: [d1, { ...d2, appliedBy: 'alice@example.com' }] },
      },
      oldObject: {
        metadata: { annotations: { 'steward.dev/requested-by': 'alice@example.com' } },
        spec: { decisions: [{ ...d1, appliedBy: 'alice@example.com' }] },
      },
    });
    expect(updated.find((p) => p.path === '/spec/decisions')?.value).toEqual([
      { ...d1, appliedBy: 'alice@example.com' },
      { ...d2, appliedBy: 'bob@example.com' },
    ]);
    expect(annotationsOf(updated)?.['steward.dev/requested-by']).toBe('bob@example.com');
  });

  it("a create gets the kind's cleanup finalizer (once); an update never adds it", () => {
    const f = 'steward.dev/revoke-access';
    expect(stampPatch({ operation: 'CREATE', kind: 'DatasetAccess', user: alice, object: dsa(), finalizer: f })).toContainEqual({
      op: 'add',
      path: '/metadata/finalizers',
      value: [f],
    });
    const withOther = { metadata: { name: 'a', finalizers: ['example.com/keep'] }, spec: {} };
    expect(stampPatch({ operation: 'CREATE', kind: 'DatasetAccess', user: alice, object: withOther, finalizer: f })).toContainEqual({
      op: 'add',
      path: '/metadata/finalizers/-',
      value: f,
    });
    const already = { metadata: { name: 'a', finalizers: [f] }, spec: {} };
    expect(
      stampPatch({ operation: 'CREATE', kind: 'DatasetAccess', user: alice, object: already, finalizer: f }).some((p) =>
        p.path.startsWith('/metadata/finalizers'),
      ),
    ).toBe(false);
    const old = dsa({ 'steward.dev/requested-by': 'alice@example.com' });
    expect(
      stampPatch({
        operation: 'UPDATE',
        kind: 'DatasetAccess',
        user: bob,
        object: dsa({ 'steward.dev/requested-by': 'alice@example.com' }),
        oldObject: old,
        finalizer: f,
      }),
    ).toEqual([]);
  });
});
