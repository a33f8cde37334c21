import { describe, expect, it } from 'vitest';
import { cycleId, judgeDecisions, nextCycleAt, outOfBand, outOfBandId, type CatalogGrant } from '../../src/governance/review.ts';

const grant = (g: Partial<CatalogGrant>): CatalogGrant => ({
  kind: 'table',
  grantee: 'mallory',
  granteeIsSuperuser: false,
  granteeComment: null,
  schema: 'curated',
  name: 'orders',
  privileges: ['SELECT'],
  ...g,
});
const explanations = {
  stewardLogin: 'steward',
  accessPrincipals: new Map([['stw_analytics_churn', 'alice']]),
  viewReaders: new Map([['stw_mvr_data_eng_sales', new Set(['analytics_reader'])]]),
  namedRoles: new Set(['alice', 'analytics_reader']),
};

describe('review cycles', () => {
  it('cron: the next match after the last start (or creation); every: from the last start, the first at creation', () => {
    const created = new Date('2027-02-10T00:00:00Z');
    expect(nextCycleAt({ cron: '0 9 1 1,4,7,10 *' }, undefined, created)).toEqual(new Date('2027-04-01T09:00:00Z'));
    expect(nextCycleAt({ cron: '0 9 1 1,4,7,10 *' }, new Date('2027-04-01T09:00:00Z'), created)).toEqual(new Date('2027-07-01T09:00:00Z'));
    expect(nextCycleAt({ every: '24h' }, undefined, created)).toEqual(created);
    expect(nextCycleAt({ every: '24h' }, created, created)).toEqual(new Date('2027-02-11T00:00:00Z'));
  });

  it('a cycle is named by its start date, and further cycles that day get -2, -3', () => {
    const t = new Date('2027-01-01T09:00:00Z');
    expect(cycleId(t, [])).toBe('2027-01-01');
    expect(cycleId(t, ['2027-01-01'])).toBe('2027-01-01-2');
    expect(cycleId(t, ['2027-01-01', '2027-01-01-2'])).toBe('2027-01-01-3');
  });
});

describe('out-of-band grants', () => {
  it("explains superusers, Steward's login and roles, an access's principal in its group role, a view's reader in its reader role", () => {
    const explained = [
      grant({ grantee: 'postgres', granteeIsSuperuser: true }),
      grant({ grantee: 'steward' }),
      grant({ grantee: 'stw_analytics_churn', granteeComment: 'managed by steward: DatasetAccess analytics/churn' }),
      grant({ kind: 'membership', grantee: 'alice', schema: null, name: 'stw_analytics_churn', privileges: ['MEMBER'] }),
      grant({ kind: 'membership', grantee: 'analytics_reader', schema: null, name: 'stw_mvr_data_eng_sales', privileges: ['MEMBER'] }),
      // A member of the team role a view names as reader: the team's business.
      grant({ kind: 'membership', grantee: 'priya', schema: null, name: 'analytics_reader', privileges: ['MEMBER'] }),
      // PostgreSQL 15's default, in every database.
      grant({ kind: 'schema', grantee: 'PUBLIC', schema: null, name: 'public', privileges: ['USAGE'] }),
    ];
    expect(outOfBand(explained, explanations)).toEqual([]);
  });

  it('finds a direct grant, PUBLIC, a membership nobody asked for, and a stw_ role without Steward comment; ids are stable', () => {
    const found = outOfBand(
      [
        grant({}),
        grant({ grantee: 'PUBLIC', kind: 'schema', schema: null, name: 'curated', privileges: ['USAGE'] }),
        grant({ kind: 'membership', grantee: 'mallory', schema: null, name: 'stw_analytics_churn', privileges: ['MEMBER'] }),
        // A member of a table owner's role holds what the owner holds.
        grant({ kind: 'membership', grantee: 'mallory', schema: null, name: 'sales_owner', privileges: ['MEMBER'] }),
        grant({ grantee: 'stw_fake', granteeComment: 'looks like ours' }),
        // More than the default on public is reported.
        grant({ kind: 'schema', grantee: 'PUBLIC', schema: null, name: 'public', privileges: ['CREATE', 'USAGE'] }),
      ],
      explanations,
    );
    expect(found.map((f) => [f.kind, f.grantee, f.object])).toEqual(
      expect.arrayContaining([
        ['table', 'mallory', 'curated.orders'],
        ['schema', 'PUBLIC', 'curated'],
        ['membership', 'mallory', 'stw_analytics_churn'],
        ['membership', 'mallory', 'sales_owner'],
        ['table', 'stw_fake', 'curated.orders'],
        ['schema', 'PUBLIC', 'public'],
      ]),
    );
    expect(found).toHaveLength(6);
    expect(found.find((f) => f.grantee === 'mallory' && f.kind === 'table')?.id).toBe(outOfBandId('table', 'mallory', 'curated.orders'));
    expect(outOfBandId('table', 'mallory', 'curated.orders')).toMatch(/^oob-[0-9a-f]{6}$/);
  });
  it("one access made by hand (the table and its schema's USAGE) is one finding; USAGE alone and CREATE stay findings", () => {
    const found = outOfBand(
      [
        grant({}),
        grant({ name: 'customers' }),
        grant({ kind: 'schema', schema: null, name: 'curated', privileges: ['CREATE', 'USAGE'] }),
        // USAGE without a table of the grantee's there: a finding of its own.
        grant({ grantee: 'eve', kind: 'schema', schema: null, name: 'curated', privileges: ['USAGE'] }),
        // USAGE on another schema than the table's: not folded.
        grant({ kind: 'schema', schema: null, name: 'raw', privileges: ['USAGE'] }),
      ],
      explanations,
    );
    expect(found.map((f) => [f.kind, f.grantee, f.object, f.privileges.join(','), f.schemaUsage ?? false])).toEqual(
      expect.arrayContaining([
        ['table', 'mallory', 'curated.orders', 'SELECT', true],
        ['table', 'mallory', 'curated.customers', 'SELECT', true],
        ['schema', 'mallory', 'curated', 'CREATE', false],
        ['schema', 'eve', 'curated', 'USAGE', false],
        ['schema', 'mallory', 'raw', 'USAGE', false],
      ]),
    );
    expect(found).toHaveLength(5);
    // The table's id does not change with the fold: a decision made before still names it.
    expect(found.find((f) => f.object === 'curated.orders')?.id).toBe(outOfBandId('table', 'mallory', 'curated.orders'));
  });
});

describe('decisions', () => {
  const known = { accesses: new Set(['analytics/churn', 'analytics/etl']), findings: new Set(['oob-123abc']) };
  it('count only for this cycle, by a reviewer, about what it found; the last for the same grant wins', () => {
    const j = judgeDecisions(
      [
        { cycle: '2026-10-01', access: 'analytics/churn', decision: 'keep', by: 'alice' },
        { cycle: '2027-01-01', access: 'analytics/churn', decision: 'keep', by: 'mallory' },
        { cycle: '2027-01-01', access: 'analytics/etl', decision: 'keep', by: 'alice' },
        { cycle: '2027-01-01', access: 'analytics/etl', decision: 'revoke', by: 'alice' },
        { cycle: '2027-01-01', access: 'other/thing', decision: 'keep', by: 'alice' },
        { cycle: '2027-01-01', finding: 'oob-123abc', decision: 'revoke', by: 'alice' },
      ],
      '2027-01-01',
      ['alice'],
      known,
    );
    expect([...j.accesses.entries()].map(([k, d]) => [k, d.decision])).toEqual([['analytics/etl', 'revoke']]);
    expect(j.findings.get('oob-123abc')?.decision).toBe('revoke');
    expect(j.ignored.map((i) => i.why)).toEqual([
      'stale: for cycle 2026-10-01, not the current 2027-01-01',
      'mallory is not one of spec.reviewers',
      'this cycle found no grant of other/thing in scope',
    ]);
  });
});
