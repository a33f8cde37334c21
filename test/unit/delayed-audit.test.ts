// DelayedAuditTable's own rules: order, the bound and its audit.lost record, the pace of retries.
// The table it writes to is a recorder of INSERTs here; the outage itself, with PostgreSQL really
// stopped and started, is test/integration/outage.test.ts.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.ts';
import { DelayedAuditTable } from '../../src/drivers/postgres/audit-table.ts';

const record = (n: number): AuditRecord => ({
  ts: `t${n}`,
  request_id: `r${n}`,
  actor: 'a',
  action: `act${n}`,
  resource: 'x',
  outcome: 'failure',
  kind: 'K',
  name: 'n',
});

/** Stands in for a pool: refuses (ECONNREFUSED) while `down`, else keeps the actions INSERTed and their delayed flag. */
function table() {
  const state = { down: true, tries: 0, rows: [] as { action: string; delayed: boolean }[] };
  const pool = {
    query: async ({ values = [] }: pg.QueryConfig) => {
      state.tries++;
      if (state.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      for (let i = 0; i < values.length; i += 11)
        state.rows.push({ action: values[i + 3] as string, delayed: JSON.parse((values[i + 10] as string) ?? '{}')?.delayed === true });
    },
  } as unknown as pg.Pool;
  return { state, pool };
}

describe('DelayedAuditTable', () => {
  it('keeps what the warehouse did not take, in order, and writes it first, marked delayed', async () => {
    const { state, pool } = table();
    const t = new DelayedAuditTable(() => pool, 'wh', 100, 0);
    await t.write(record(1));
    await t.write(record(2));
    expect(t.pending).toBe(2);
    state.down = false;
    await t.write(record(3));
    expect(state.rows).toEqual([
      { action: 'act1', delayed: true },
      { action: 'act2', delayed: true },
      { action: 'act3', delayed: false },
    ]);
    expect(t.pending).toBe(0);
  });

  it('beyond its bound drops the oldest and says how many, in an audit.lost record', async () => {
    const { state, pool } = table();
    const t = new DelayedAuditTable(() => pool, 'wh', 2, 0);
    for (let n = 1; n <= 5; n++) await t.write(record(n));
    state.down = false;
    await t.flush();
    expect(state.rows.map((r) => r.action)).toEqual(['audit.lost', 'act4', 'act5']);
  });

  it('while records wait, tries the warehouse again at most once per retry interval', async () => {
    const { state, pool } = table();
    const t = new DelayedAuditTable(() => pool, 'wh', 100, 60_000);
    for (let n = 1; n <= 10; n++) await t.write(record(n));
    expect(state.tries).toBe(1);
    expect(t.pending).toBe(10);
  });

  it('a refusal that is not an outage is the caller’s, as with the plain table', async () => {
    const t = new DelayedAuditTable(
      () => ({ query: async () => Promise.reject(Object.assign(new Error('permission denied'), { code: '42501' })) }) as unknown as pg.Pool,
      'wh',
    );
    await expect(t.write(record(1))).rejects.toThrow(/permission denied/);
    expect(t.pending).toBe(0);
  });
});
