import { describe, expect, it } from 'vitest';
import { evaluatePolicy, viewPolicyDenial } from '../../src/governance/policy.ts';
import { refusedRole, refusedTargets, type GranteeFacts } from '../../src/governance/reserved.ts';
import { effectiveExpiry } from '../../src/governance/expiry.ts';
import {
  EMPTY_STATE,
  LockOrderError,
  desiredState,
  diffGrants,
  groupRoleName,
  isEmptyDiff,
  lockKeys,
  lockName,
  lockOrder,
  usageRoleName,
  type LockKey,
} from '../../src/governance/grants.ts';
import { diffStatements, createRoleStatements } from '../../src/drivers/postgres/grants.ts';
import type { AccessRule } from '../../src/api/warehouse.ts';
import { ownerRoleName, readerRoleName } from '../../src/controllers/maskedview.ts';

const rules: AccessRule[] = [
  { namespaces: { matchLabels: { 'steward.dev/tenant': 'analytics' } }, schemas: ['curated'], privileges: ['SELECT'], maxDuration: '2160h' },
  { namespaces: { matchNames: ['data-eng'] }, schemas: ['raw', 'curated'], privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] },
];
const tenant = { name: 'analytics', labels: { 'steward.dev/tenant': 'analytics' } };

describe('evaluatePolicy (default deny)', () => {
  it('allows what a rule covers, with its maxDuration', () => {
    expect(evaluatePolicy(rules, { namespace: tenant, schema: 'curated', privileges: ['SELECT'] })).toEqual({
      allowed: true,
      rule: 0,
      maxDurationMs: 2160 * 3_600_000,
    });
  });
  it('an uncapped rule wins over a capped one', () => {
    expect(evaluatePolicy(rules, { namespace: { name: 'data-eng', labels: tenant.labels }, schema: 'curated', privileges: ['SELECT'] })).toEqual({
      allowed: true,
      rule: 1,
    });
  });
  it.each([
    [{ namespace: { name: 'other', labels: {} }, schema: 'curated', privileges: ['SELECT'] }, /no accessPolicy rule .* covers namespace other/],
    [{ namespace: tenant, schema: 'raw', privileges: ['SELECT'] }, /may not request schema raw: its rules allow curated/],
    [{ namespace: tenant, schema: 'curated', privileges: ['SELECT', 'INSERT'] }, /may not request INSERT on schema curated: allowed are SELECT/],
  ])('denies %j', (request, message) => {
    const d = evaluatePolicy(rules, request);
    expect(d.allowed).toBe(false);
    expect(!d.allowed && d.message).toMatch(message);
  });
  it('denies everything without a policy', () => {
    expect(evaluatePolicy(undefined, { namespace: tenant, schema: 'curated', privileges: ['SELECT'] }).allowed).toBe(false);
  });
  it('needs every label of matchLabels and the name of matchNames when both are given', () => {
    const both: AccessRule[] = [{ namespaces: { matchNames: ['a'], matchLabels: { x: '1' } }, schemas: ['s'], privileges: ['SELECT'] }];
    expect(evaluatePolicy(both, { namespace: { name: 'a', labels: {} }, schema: 's', privileges: ['SELECT'] }).allowed).toBe(false);
    expect(evaluatePolicy(both, { namespace: { name: 'a', labels: { x: '1' } }, schema: 's', privileges: ['SELECT'] }).allowed).toBe(true);
  });
});

describe('effectiveExpiry', () => {
  const now = new Date('2026-06-01T00:00:00Z');
  it('expiresAt as given', () => expect(effectiveExpiry({ expiresAt: '2026-07-01T00:00:00Z', now }).at?.toISOString()).toBe('2026-07-01T00:00:00.000Z'));
  it('duration counts from the first grant', () => {
    expect(effectiveExpiry({ duration: '24h', grantedAt: '2026-05-31T12:00:00Z', now }).at?.toISOString()).toBe('2026-06-01T12:00:00.000Z');
    expect(effectiveExpiry({ duration: '24h', now }).at?.toISOString()).toBe('2026-06-02T00:00:00.000Z');
  });
  it('maxDuration caps, and says so', () => {
    expect(effectiveExpiry({ expiresAt: '2027-01-01T00:00:00Z', maxDurationMs: 86_400_000, grantedAt: '2026-06-01T00:00:00Z', now })).toEqual({
      at: new Date('2026-06-02T00:00:00Z'),
      capped: true,
    });
    expect(effectiveExpiry({ maxDurationMs: 86_400_000, now })).toEqual({ at: new Date('2026-06-02T00:00:00Z'), capped: true });
    expect(effectiveExpiry({ expiresAt: '2026-06-01T06:00:00Z', maxDurationMs: 86_400_000, now }).capped).toBe(false);
  });
  it('no expiry without expiresAt, duration or cap', () => expect(effectiveExpiry({ now })).toEqual({ at: undefined, capped: false }));
});

describe('groupRoleName', () => {
  it('is readable, deterministic and distinguishes look-alikes', () => {
    const a = groupRoleName('analytics', 'churn-analysis');
    expect(a).toMatch(/^stw_analytics_churn_analysis_[0-9a-f]{8}$/);
    expect(groupRoleName('analytics', 'churn-analysis')).toBe(a);
    expect(groupRoleName('a-b', 'c')).not.toBe(groupRoleName('a', 'b-c'));
  });
  it('keys the usage role by database and schema, within 63 bytes', () => {
    expect(usageRoleName('a', 'curated')).not.toBe(usageRoleName('b', 'curated'));
    expect(usageRoleName('a', 'curated')).toMatch(/^stw_usage_curated_[0-9a-f]{8}$/);
    expect(Buffer.byteLength(usageRoleName('d', 's'.repeat(63)))).toBeLessThanOrEqual(63);
  });
  it('fits 63 bytes for the longest names', () => {
    const n = groupRoleName('n'.repeat(63), 'x'.repeat(253));
    expect(Buffer.byteLength(n)).toBeLessThanOrEqual(63);
    expect(n).toMatch(/^stw_[a-z0-9_]+_[0-9a-f]{8}$/);
  });
  it("names a MaskedView's owner and reader roles the same way, under their own prefixes (the names Steward has always used)", () => {
    const hash = groupRoleName('analytics', 'churn-analysis').slice(-8);
    expect(ownerRoleName('analytics', 'churn-analysis')).toBe(`stw_mv_analytics_churn_analysis_${hash}`);
    expect(readerRoleName('analytics', 'churn-analysis')).toBe(`stw_mvr_analytics_churn_analysis_${hash}`);
    expect(Buffer.byteLength(readerRoleName('n'.repeat(63), 'x'.repeat(253)))).toBeLessThanOrEqual(63);
  });
});

describe('grant diff', () => {
  const desired = desiredState({ schema: 'curated', tables: ['sales'], existingTables: [], privileges: ['SELECT'], member: 'reader', usageRole: 'stw_usage' });
  it('from nothing: usage, privileges, membership', () => {
    const d = diffGrants(desired, EMPTY_STATE);
    expect(diffStatements('stw_x', d).map((s) => s.sql)).toEqual([
      'GRANT SELECT ON TABLE "curated"."sales" TO "stw_x"',
      'GRANT "stw_usage" TO "stw_x"',
      'GRANT "stw_x" TO "reader"',
    ]);
    expect(lockKeys('stw_x', d).map(lockName).sort()).toEqual(['role:stw_x', 'table:curated.sales']);
  });
  it('converged: nothing to do', () => expect(isEmptyDiff(diffGrants(desired, desired))).toBe(true));
  it('drift: extra privileges, members and memberships are taken away first', () => {
    const actual = {
      ...desired,
      tablePrivileges: [...desired.tablePrivileges, { schema: 'raw', table: 'orders', privilege: 'SELECT' }],
      members: ['reader', 'mallory'],
      memberOf: ['stw_usage', 'pii_reader'],
    };
    expect(diffStatements('stw_x', diffGrants(desired, actual)).map((s) => s.sql)).toEqual([
      'REVOKE "stw_x" FROM "mallory"',
      'REVOKE "pii_reader" FROM "stw_x"',
      'REVOKE SELECT ON TABLE "raw"."orders" FROM "stw_x"',
    ]);
  });
  it('"*" covers every table and future ones through default privileges of each owner', () => {
    const all = desiredState({
      schema: 'curated',
      tables: ['*'],
      existingTables: [
        { name: 'a', owner: 'etl' },
        { name: 'b', owner: 'dbt' },
      ],
      privileges: ['SELECT'],
      usageRole: 'stw_usage',
    });
    const sql = diffStatements('stw_x', diffGrants(all, EMPTY_STATE)).map((s) => s.sql);
    expect(sql).toContain('GRANT SELECT ON TABLE "curated"."a" TO "stw_x"');
    expect(sql).toContain('ALTER DEFAULT PRIVILEGES FOR ROLE "dbt" IN SCHEMA "curated" GRANT SELECT ON TABLES TO "stw_x"');
    expect(sql).toContain('ALTER DEFAULT PRIVILEGES FOR ROLE "etl" IN SCHEMA "curated" GRANT SELECT ON TABLES TO "stw_x"');
  });
  it('expiry removes only the membership', () => {
    const expired = desiredState({ schema: 'curated', tables: ['sales'], existingTables: [], privileges: ['SELECT'], usageRole: 'stw_usage' });
    expect(diffStatements('stw_x', diffGrants(expired, desired)).map((s) => s.sql)).toEqual(['REVOKE "stw_x" FROM "reader"']);
  });
  it('quotes what it renders and refuses a privilege it does not know', () => {
    expect(createRoleStatements('stw_x', "it's")[1]!.sql).toBe(`COMMENT ON ROLE "stw_x" IS E'it''s'`);
    const d = diffGrants(desiredState({ schema: 's', tables: ['t'], existingTables: [], privileges: ['SELECT; DROP TABLE x'], usageRole: 'u' }), EMPTY_STATE);
    expect(() => diffStatements('stw_x', d)).toThrow(/unexpected privilege/);
  });
});

describe("the accessPolicy names principals, and never grants what is Steward's or PostgreSQL's", () => {
  const named: AccessRule[] = [
    { namespaces: { matchNames: ['t'] }, schemas: ['curated', 'raw'], privileges: ['SELECT'], principals: ['analytics_*', 'pii_reader'] },
  ];
  const t = { name: 't', labels: {} };
  it('allows the names and patterns a rule lists, and only those', () => {
    expect(evaluatePolicy(named, { namespace: t, schema: 'curated', privileges: ['SELECT'], principals: ['analytics_reader', 'pii_reader'] }).allowed).toBe(
      true,
    );
    const d = evaluatePolicy(named, { namespace: t, schema: 'curated', privileges: ['SELECT'], principals: ['analytics_reader', 'etl'] });
    expect(!d.allowed && d.message).toBe('namespace t may not name role etl on schema curated: its rules allow analytics_*, pii_reader');
    // A pattern is anchored and * is the only wildcard: no regular expression gets through it.
    expect(evaluatePolicy(named, { namespace: t, schema: 'curated', privileges: ['SELECT'], principals: ['x_analytics_reader'] }).allowed).toBe(false);
    expect(
      evaluatePolicy([{ ...named[0]!, principals: ['a.b'] }], { namespace: t, schema: 'curated', privileges: ['SELECT'], principals: ['axb'] }).allowed,
    ).toBe(false);
  });
  it('a rule without principals allows any role (as before principals existed); the never-grantable list still applies', () => {
    expect(evaluatePolicy(rules, { namespace: tenant, schema: 'curated', privileges: ['SELECT'], principals: ['anyone'] }).allowed).toBe(true);
  });
  it.each(['steward', 'pg_catalog', 'pg_toast', 'information_schema'])('refuses schema %s whatever the rules say', (schema) => {
    const open: AccessRule[] = [{ namespaces: { matchNames: ['t'] }, schemas: [schema], privileges: ['SELECT', 'INSERT'] }];
    const d = evaluatePolicy(open, { namespace: t, schema, privileges: ['SELECT'] });
    expect(!d.allowed && d.message).toMatch(/is (Steward's|PostgreSQL's) own.*never grantable, whatever the accessPolicy says/);
  });
  it('a MaskedView needs SELECT on its schema and every source schema, for every role it names', () => {
    const request = { namespace: t, viewSchema: 'curated', sourceSchemas: ['raw', 'raw'], roles: ['analytics_reader', 'pii_reader'] };
    expect(viewPolicyDenial(named, request)).toBeUndefined();
    expect(viewPolicyDenial(named, { ...request, viewSchema: 'public' })).toMatch(/^the view's schema: namespace t may not request schema public/);
    expect(viewPolicyDenial(named, { ...request, sourceSchemas: ['secret'] })).toMatch(/^a source schema: namespace t may not request schema secret/);
    expect(viewPolicyDenial(named, { ...request, roles: ['etl'] })).toMatch(/may not name role etl on schema curated/);
    expect(viewPolicyDenial(undefined, request)).toMatch(/no accessPolicy rule/);
  });
});

describe('refusedRole', () => {
  const role = (o: Partial<GranteeFacts> = {}): GranteeFacts => ({
    name: 'analytics_reader',
    oid: 20000,
    superuser: false,
    bypassRls: false,
    createRole: false,
    comment: null,
    isSteward: false,
    ...o,
  });
  it.each([
    [{ isSteward: true }, "is Steward's own login"],
    [{ superuser: true }, 'is a superuser'],
    [{ name: 'pg_read_all_data', oid: 6181 }, "PostgreSQL's predefined roles"],
    [{ oid: 10 }, "PostgreSQL's predefined roles"],
    [{ name: 'stw_other_access_0123abcd' }, "one of Steward's own roles"],
    [{ comment: 'managed by steward: readers of MaskedView a/b' }, "one of Steward's own roles"],
    [{ bypassRls: true }, 'BYPASSRLS'],
    [{ createRole: true }, 'CREATEROLE'],
  ])('refuses %j', (facts, reason) => expect(refusedRole(role(facts))).toContain(reason));
  it('accepts an everyday role', () => expect(refusedRole(role())).toBeUndefined());
});

describe('refusedTargets', () => {
  const tables = [
    { name: 'orders', owner: 'data_owner' },
    { name: 'customer_sales', owner: 'stw_mv_data_eng_customer_sales_0123abcd' },
  ];
  it("allows anything on other tables, and SELECT on Steward's views", () => {
    expect(refusedTargets('curated', tables, ['orders'], ['SELECT', 'INSERT', 'TRIGGER'])).toBeUndefined();
    expect(refusedTargets('curated', tables, ['customer_sales'], ['SELECT'])).toBeUndefined();
    expect(refusedTargets('curated', tables, ['*'], ['SELECT'])).toBeUndefined();
  });
  it("refuses more than SELECT on Steward's views, named or under *", () => {
    expect(refusedTargets('curated', tables, ['customer_sales'], ['SELECT', 'TRIGGER'])).toBe(
      "curated.customer_sales is one of Steward's own MaskedViews, on which only SELECT is grantable, not TRIGGER",
    );
    expect(refusedTargets('curated', tables, ['*'], ['INSERT'])).toMatch(/curated\.customer_sales is one of Steward's own MaskedViews/);
  });
});

describe('lockOrder: one global order for every advisory lock', () => {
  const role: LockKey = { kind: 'role', role: 'stw_b' };
  const table: LockKey = { kind: 'table', schema: 'raw', table: 'orders' };
  const defacl: LockKey = { kind: 'defacl', owner: 'o', schema: 'raw' };
  const schema: LockKey = { kind: 'schema', schema: 'raw' };
  const curated: LockKey = { kind: 'schema', schema: 'curated' };
  it('takes everything but schemas first, each sorted by name, and each key once', () => {
    expect(lockOrder(new Set(), false, [schema, table, role, curated, defacl, table]).map(lockName)).toEqual([
      'defacl:o@raw',
      'role:stw_b',
      'table:raw.orders',
      'schema:curated',
      'schema:raw',
    ]);
  });
  it('skips what is held, and refuses a key that is not a schema once a schema is held', () => {
    expect(lockOrder(new Set(['table:raw.orders', 'schema:raw']), true, [table, schema, curated]).map(lockName)).toEqual(['schema:curated']);
    expect(() => lockOrder(new Set(['schema:raw']), true, [role])).toThrow(LockOrderError);
    expect(() => lockOrder(new Set(['schema:raw']), true, [role])).toThrow(/role:stw_b asked for after a shared \(schema or usage role\) lock/);
  });
  it('names keys as every Steward version has, so replicas of two versions still exclude each other', () => {
    expect([role, table, defacl, schema].map(lockName)).toEqual(['role:stw_b', 'table:raw.orders', 'defacl:o@raw', 'schema:raw']);
    expect(lockName({ kind: 'usage', role: 'stw_usage_raw_1' })).toBe('role:stw_usage_raw_1');
  });
  it("a schema's usage role is shared like the schema: taken with the schemas, after every other key", () => {
    const usage: LockKey = { kind: 'usage', role: 'stw_usage_raw_1' };
    const group: LockKey = { kind: 'role', role: 'stw_z' };
    expect(lockOrder(new Set(), false, [schema, usage, group, table]).map(lockName)).toEqual([
      'role:stw_z',
      'table:raw.orders',
      'role:stw_usage_raw_1',
      'schema:raw',
    ]);
    expect(() => lockOrder(new Set(['role:stw_usage_raw_1']), true, [group])).toThrow(LockOrderError);
  });
});
