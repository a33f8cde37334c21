import { beforeAll, describe, expect, it } from 'vitest';
import { ExpressionError, loadParser, parseExpression } from '../../src/governance/expression.ts';
import { planView } from '../../src/governance/maskedview.ts';
import type { MaskedViewSpec } from '../../src/api/maskedview.ts';

beforeAll(loadParser);
const q = (a: string) => `"${a}"`;

describe('parseExpression (the real PostgreSQL parser)', () => {
  it.each([
    ['o.quantity * o.unit_price', '("o"."quantity" * "o"."unit_price")', ['o.quantity', 'o.unit_price']],
    ["lower(c.email) || '@x'", `(pg_catalog."lower"("c"."email") || '@x')`, ['c.email']],
    ["coalesce(c.country, 'n/a')", `COALESCE("c"."country", 'n/a')`, ['c.country']],
    ['o.created_at::date', 'CAST("o"."created_at" AS pg_catalog."date")', ['o.created_at']],
    ["c.note = 'it''s'", `("c"."note" = 'it''s')`, ['c.note']],
    ["c.country NOT IN ('US', 'CA')", `("c"."country" NOT IN ('US', 'CA'))`, ['c.country']],
    ["c.email ILIKE '%@example.com'", `("c"."email" ILIKE '%@example.com')`, ['c.email']],
    ['o.quantity NOT BETWEEN 1 AND o.id', '("o"."quantity" NOT BETWEEN 1 AND "o"."id")', ['o.quantity', 'o.id']],
    ['c.a IS DISTINCT FROM c.b', '("c"."a" IS DISTINCT FROM "c"."b")', ['c.a', 'c.b']],
    ["NULLIF(c.country, '')", `NULLIF("c"."country", '')`, ['c.country']],
    ['o.unit_price::numeric(10,2)', 'CAST("o"."unit_price" AS pg_catalog."numeric"(10, 2))', ['o.unit_price']],
    ["lpad(c.code, 6, '0')", `pg_catalog."lpad"("c"."code", 6, '0')`, ['c.code']],
    ['extract(year from o.created_at)', `pg_catalog."extract"('year', "o"."created_at")`, ['o.created_at']],
    ["o.created_at AT TIME ZONE 'UTC'", `pg_catalog."timezone"('UTC', "o"."created_at")`, ['o.created_at']],
  ])('renders %s from the parse tree', (text, sql, inputs) => {
    const p = parseExpression(text, ['o', 'c']);
    expect(p.sql(q)).toBe(sql);
    expect(p.inputs.map((i) => `${i.alias}.${i.column}`)).toEqual(inputs);
  });

  it.each([
    ['(SELECT 1)', /subqueries are not allowed \(at position 1\)/],
    ['o.id IN (SELECT id FROM raw.customers)', /subqueries are not allowed \(at position 6\)/],
    ['o.id; DROP TABLE raw.orders', /single expression is allowed, not several statements \(at position 5\)/],
    ['o.id -- comment', /comments are not allowed \(at position 6\)/],
    ['o.id /* c */ + 1', /comments are not allowed \(at position 6\)/],
    ["pg_read_file('/etc/passwd')", /function pg_read_file is not allowed \(at position 1\)/],
    ['pg_catalog.pg_sleep(1)', /function pg_catalog.pg_sleep is not allowed/],
    ['x.id', /unknown alias x/],
    ["c.email SIMILAR TO '%x%'", /similar expressions are not allowed \(at position 9\)/],
    ['o.id = ANY(ARRAY[1, 2])', /op_any expressions are not allowed/],
    ["o.id::numeric(10, 'x')", /type modifiers of numeric must be whole numbers/],
    ["interval '1' day", /write interval '1 day'/],
    ['o.id::text[]', /casts to arrays are not allowed/],
    ["lpad(c.code, 1000000000, 'x')", /lpad\(\) needs a constant length from 0 to 1000/],
    ["rpad(c.code, o.quantity, 'x')", /rpad\(\) needs a constant length from 0 to 1000/],
    ['id', /write columns as alias.column/],
    ['o.id +', /not a valid SQL expression: syntax error at end of input \(at position 7\)/],
    ['count(o.id)', /function count is not allowed/],
    ['o.id::regclass', /cast to regclass is not allowed/],
  ])('refuses %s with a position', (text, message) => {
    expect(() => parseExpression(text, ['o', 'c'])).toThrow(ExpressionError);
    expect(() => parseExpression(text, ['o', 'c'])).toThrow(message);
  });
});

describe('equalities (which join conditions are column equalities)', () => {
  const eq = (text: string) => parseExpression(text, ['o', 'c']).equalities;
  it('lists the column pairs of an AND of column equalities, and nothing for anything else', () => {
    expect(eq('c.id = o.customer_id')).toEqual([[{ alias: 'c', column: 'id' }, { alias: 'o', column: 'customer_id' }]]);
    expect(eq('(c.id = o.customer_id) AND c.shop = o.shop_id')).toHaveLength(2);
    for (const other of ['c.id = o.customer_id + 1', 'c.id = 5', 'c.id = o.customer_id OR c.id = o.id', 'c.id <> o.customer_id', 'NOT c.id = o.customer_id', 'c.id = o.a AND c.x > 1']) {
      expect(eq(other), other).toBeUndefined();
    }
  });
});

describe('planView', () => {
  const spec = {
    warehouse: 'w', view: { schema: 'curated', name: 'v' }, from: { table: 'raw.orders', alias: 'o' },
    joins: [{ table: 'raw.customers', alias: 'c', on: 'c.id = o.customer_id', type: 'inner' }],
    columns: [{ name: 'email', expr: 'c.email', mask: 'email' }, { name: 'gross_revenue', expr: 'o.quantity * o.unit_price' }],
    unmaskedRoles: ['pii_reader'], readers: ['r'], owner: 'o',
  } as unknown as MaskedViewSpec;

  it('masks a joined table in its own scan, checks membership by OID once per scan, and quotes everything', () => {
    const plan = planView(spec, { keyQuery: 'SELECT NULL::bytea AS key', unmaskedRoleOids: [16384] });
    // The email mask reads one table: it is computed in that table's scan, before the join. The
    // membership check is by OID and made once per scan, in a one-row subquery joined into it
    // (with a FROM, so parallel workers may run it), never as an InitPlan (see planView).
    expect(plan.select).toContain(`FROM "raw"."orders" AS "o" INNER JOIN (SELECT "c".*, CASE WHEN "__steward_member"."member" THEN CAST("c"."email" AS pg_catalog.text) ELSE (pg_catalog.left(`);
    expect(plan.select).toContain(`FROM (SELECT (pg_catalog.pg_has_role(CAST('16384' AS pg_catalog.oid), 'MEMBER')) AS "member" FROM pg_catalog.generate_series(1, 1) OFFSET NULL) AS "__steward_member" CROSS JOIN "raw"."customers" AS "c" OFFSET NULL) AS "c" ON ("c"."id" = "o"."customer_id")`);
    expect(plan.select).not.toMatch(/\(SELECT pg_catalog\.pg_has_role/);
    // The first table's masks check per row: a join into the scan that workers divide would stop them dividing it.
    const first = planView({ ...spec, columns: [{ name: 'id', expr: 'o.id', mask: 'redact' }] } as MaskedViewSpec, { keyQuery: 'SELECT NULL::bytea AS key', unmaskedRoleOids: [16384] });
    expect(first.select).toContain(`FROM (SELECT "o".*, CASE WHEN (pg_catalog.pg_has_role(CAST('16384' AS pg_catalog.oid), 'MEMBER')) THEN CAST("o"."id" AS pg_catalog.text)`);
    expect(first.select).not.toContain('__steward_member');
    expect(() => planView(spec, { keyQuery: 'SELECT NULL::bytea AS key', unmaskedRoleOids: [] })).toThrow(/one OID per unmasked role/);
    expect(plan.lineage.columns).toEqual([
      { name: 'email', source: 'raw.customers.email', inputs: ['raw.customers.email'], masked: true, mask: 'email' },
      { name: 'gross_revenue', source: 'raw.orders.quantity * raw.orders.unit_price', inputs: ['raw.orders.quantity', 'raw.orders.unit_price'], masked: false },
    ]);
    expect(plan.sourceTables).toEqual(['raw.orders', 'raw.customers']);
  });

  it('counts the first table per join key for the guard only when that count is the same', () => {
    const ctx = { keyQuery: 'SELECT NULL::bytea AS key', unmaskedRoleOids: [1] };
    const guarded = (on: string, quasi: string) => planView({
      ...spec, joins: [{ ...spec.joins![0]!, on }],
      columns: [...spec.columns, { name: 'region', expr: 'c.country' }, { name: 'day', expr: 'o.created_at' }],
      kAnonymity: { quasiIdentifiers: [quasi], k: 5 },
    } as MaskedViewSpec, ctx).select;
    const eager = guarded('c.id = o.customer_id AND c.shop = o.shop_id', 'region');
    expect(eager).toContain('FROM (SELECT "o"."customer_id", "o"."shop_id", pg_catalog.count(*) AS "__steward_rows" FROM "raw"."orders" AS "o" GROUP BY 1, 2) AS "o"');
    expect(eager).toContain('pg_catalog.sum(COALESCE("o"."__steward_rows", 1)) >= 5');
    // The first table read by a quasi-identifier, or joined through anything but column equalities:
    // rows of one key may differ, so every joined row is counted.
    for (const plain of [guarded('c.id = o.customer_id', 'day'), guarded('c.id = o.customer_id + 0', 'region'), guarded('c.id = o.customer_id OR c.id = o.id', 'region')]) {
      expect(plain).not.toContain('__steward_rows');
      expect(plain).toContain('(pg_catalog.count(*) >= 5 OR');
    }
  });

  it('names the field of a refused expression', () => {
    const bad = { ...spec, joins: [{ ...spec.joins![0]!, on: 'c.id = (SELECT 1)' }] } as MaskedViewSpec;
    expect(() => planView(bad, { keyQuery: 'SELECT NULL::bytea AS key' })).toThrow(/^spec\.joins\[0\]\.on: subqueries are not allowed/);
  });
});
