import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/record.ts';
import { AuditTrail, type AuditSink } from '../../src/audit/sink.ts';

/** A sink that keeps what it is given: the trail's own interface, not a stand-in for a server. */
class Kept implements AuditSink {
  readonly records: AuditRecord[] = [];
  async write(r: AuditRecord): Promise<void> {
    this.records.push(r);
  }
}

describe('AuditTrail.scope', () => {
  it('says once who the records of a reconcile are for, and every record carries it', async () => {
    const log = new Kept();
    const table = new Kept();
    const trail = new AuditTrail('steward@test', log, pino({ level: 'silent' })).scope({
      request_id: 'r-1',
      kind: 'DatasetAccess',
      namespace: 'ns',
      name: 'a',
    });
    await trail.record({ action: 'grant.membership', resource: 'wh/role:x', outcome: 'success' }, table);
    await trail.recordMany([{ action: 'revoke.membership', resource: 'wh/role:x', outcome: 'denied', error: 'no' }], table);
    expect(table.records.map(({ ts, ...r }) => r)).toEqual([
      {
        actor: 'steward@test',
        executor: 'steward@test',
        request_id: 'r-1',
        kind: 'DatasetAccess',
        namespace: 'ns',
        name: 'a',
        action: 'grant.membership',
        resource: 'wh/role:x',
        outcome: 'success',
      },
      {
        actor: 'steward@test',
        executor: 'steward@test',
        request_id: 'r-1',
        kind: 'DatasetAccess',
        namespace: 'ns',
        name: 'a',
        action: 'revoke.membership',
        resource: 'wh/role:x',
        outcome: 'denied',
        error: 'no',
      },
    ]);
    expect(log.records).toHaveLength(2);
  });

  it('names who asked (the admission stamp) as actor, and Steward as executor', async () => {
    const table = new Kept();
    const trail = new AuditTrail('steward@test', new Kept(), pino({ level: 'silent' })).scope({
      request_id: 'r-2',
      kind: 'DatasetAccess',
      namespace: 'ns',
      name: 'a',
      actor: 'alice@example.com',
    });
    await trail.record({ action: 'grant.membership', resource: 'wh/role:x', outcome: 'success' }, table);
    expect(table.records[0]).toMatchObject({ actor: 'alice@example.com', executor: 'steward@test' });
  });
});
