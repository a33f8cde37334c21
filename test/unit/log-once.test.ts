import { describe, expect, it } from 'vitest';
import { LogOncePer } from '../../src/runtime/log-once.ts';

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
