import { describe, expect, it } from 'vitest';
import { LogOncePer, causeOf } from '../../src/runtime/log-once.ts';

describe('LogOncePer', () => {
  it('logs a cause once per interval and says how many repeats it held back', () => {
    const quiet = new LogOncePer(1000);
    expect(quiet.admit('ECONNREFUSED', 0)).toEqual({ log: true, held: 0 });
    for (let i = 1; i <= 999; i++) expect(quiet.admit('ECONNREFUSED', i).log).toBe(false);
    expect(quiet.admit('another cause', 500)).toEqual({ log: true, held: 0 });
    expect(quiet.admit('ECONNREFUSED', 1000)).toEqual({ log: true, held: 999 });
    expect(quiet.admit('ECONNREFUSED', 1001)).toEqual({ log: false, held: 1 });
  });
});

describe('causeOf', () => {
  it('the same API error for two objects is one cause; another status code is another', () => {
    const a =
      'could not write status: KubeApiError: PATCH /apis/steward.dev/v1alpha1/namespaces/n/datasetaccesses/a-17/status: 503 ServiceUnavailable: try again';
    const b = 'could not write status: PATCH /apis/steward.dev/v1alpha1/namespaces/n/datasetaccesses/a-18/status: 503 ServiceUnavailable: try again';
    expect(causeOf(a)).toBe(causeOf(b));
    expect(causeOf(a)).toBe('could not write status: PATCH <path>: 503 ServiceUnavailable: try again');
    expect(causeOf(b.replace('503 ServiceUnavailable', '500 InternalError'))).not.toBe(causeOf(b));
    expect(causeOf('reconcile failed: Error: connect ECONNREFUSED 127.0.0.1:6443')).toBe(causeOf('reconcile failed: connect ECONNREFUSED 127.0.0.1:6443'));
  });

  it('LogOncePer logs the same 503 for many objects once', () => {
    const quiet = new LogOncePer(1000);
    const logged = Array.from(
      { length: 50 },
      (_, i) => quiet.admit(`reconcile failed: PATCH /apis/x/namespaces/n/things/t-${i}: 503 ServiceUnavailable`, 0).log,
    );
    expect(logged.filter(Boolean)).toHaveLength(1);
  });
});
