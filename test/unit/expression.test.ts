import { beforeAll, describe, expect, it } from 'vitest';
import { ExpressionError, MaskBypassError, loadParser, parseExpression } from '../../src/drivers/postgres/expression.ts';
import { planView, refuseRowMultiplyingJoins } from '../../src/drivers/postgres/view-sql.ts';
import type { MaskedViewSpec } from '../../src/api/maskedview.ts';

beforeAll(loadParser);
const q = (a: string) => `"${a}"`;

describe('parseExpression (the real PostgreSQL parser)', () => {
  it.each([
    ['o.quantity * o.unit_price', '("o"."quantity" * "o"."unit_price")', ['o.quantity', 'o.unit_price']],
    ["lower(c.email) || '@x'", `(pg_catalog."lower"("c"."email") || E'@x')`, ['c.email']],
    ["coalesce(c.country, 'n/a')", `COALESCE("c"."country", E'n/a')`, ['c.country']],
    ['o.created_at::date', 'CAST("o"."created_at" AS pg_catalog."date")', ['o.created_at']],
    ["c.note = 'it''s'", `("c"."note" = E'it''s')`, ['c.note']],
    ["c.country NOT IN ('US', 'CA')", `("c"."country" NOT IN (E'US', E'CA'))`, ['c.country']],
    ["c.email ILIKE '%@example.com'", `("c"."email" ILIKE E'%@example.com')`, ['c.email']],
    ['o.quantity NOT BETWEEN 1 AND o.id', '("o"."quantity" NOT BETWEEN 1 AND "o"."id")', ['o.quantity', 'o.id']],
    ['c.a IS DISTINCT FROM c.b', '("c"."a" IS DISTINCT FROM "c"."b")', ['c.a', 'c.b']],
    ["NULLIF(c.country, '')", `NULLIF("c"."country", E'')`, ['c.country']],
    ['o.unit_price::numeric(10,2)', 'CAST("o"."unit_price" AS pg_catalog."numeric"(10, 2))', ['o.unit_price']],
    ["lpad(c.code, 6, '0')", `pg_catalog."lpad"("c"."code", 6, E'0')`, ['c.code']],
    ['extract(year from o.created_at)', `pg_catalog."extract"(E'year', "o"."created_at")`, ['o.created_at']],
    ["o.created_at AT TIME ZONE 'UTC'", `pg_catalog."timezone"(E'UTC', "o"."created_at")`, ['o.created_at']],
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
    expect(eq('c.id = o.customer_id')).toEqual([
      [
        { alias: 'c', column: 'id' },
        { alias: 'o', column: 'customer_id' },
      ],
    ]);
    expect(eq('(c.id = o.customer_id) AND c.shop = o.shop_id')).toHaveLength(2);
    for (const other of [
      'c.id = o.customer_id + 1',
      'c.id = 5',
      'c.id = o.customer_id OR c.id = o.id',
      'c.id <> o.customer_id',
      'NOT c.id = o.customer_id',
      'c.id = o.a AND c.x > 1',
    ]) {
      expect(eq(other), other).toBeUndefined();
    }
  });
});

describe('planView', () => {
  const spec = {
    warehouse: 'w',
    view: { schema: 'curated', name: 'v' },
    from: { table: 'raw.orders', alias: 'o' },
    joins: [{ table: 'raw.customers', alias: 'c', on: 'c.id = o.customer_id', type: 'inner' }],
    columns: [
      { name: 'email', expr: 'c.email', mask: 'email' },
      { name: 'gross_revenue', expr: 'o.quantity * o.unit_price' },
    ],
    unmaskedRoles: ['pii_reader'],
    readers: ['r'],
    owner: 'o',
  } as unknown as MaskedViewSpec;

  it('masks a joined table in its own scan, checks membership by OID once per scan, and quotes everything', () => {
    const plan = planView(spec, { keyQuery: 'SELECT NULL::bytea AS key', unmaskedRoleOids: [16384] });
    // The email mask reads one table: it is computed in that table's scan, before the join. The
    // membership check is by OID and made once per scan, in a one-row subquery joined into it
    // (with a FROM, so parallel workers may run it), never as an InitPlan (see planView).
    expect(plan.select).toContain(
      `FROM "raw"."orders" AS "o" INNER JOIN (SELECT "c".*, CASE WHEN "__steward_member"."member" THEN CAST("c"."email" AS pg_catalog.text) ELSE (pg_catalog.left(`,
    );
    expect(plan.select).toContain(
      `FROM (SELECT (pg_catalog.pg_has_role(CAST(E'16384' AS pg_catalog.oid), 'MEMBER')) AS "member" FROM pg_catalog.generate_series(1, 1) OFFSET NULL) AS "__steward_member" CROSS JOIN "raw"."customers" AS "c" OFFSET NULL) AS "c" ON ("c"."id" = "o"."customer_id")`,
    );
    expect(plan.select).not.toMatch(/\(SELECT pg_catalog\.pg_has_role/);
    // The first table's masks check per row: a join into the scan that workers divide would stop them dividing it.
    const first = planView({ ...spec, columns: [{ name: 'id', expr: 'o.id', mask: 'redact' }] } as MaskedViewSpec, {
      keyQuery: 'SELECT NULL::bytea AS key',
      unmaskedRoleOids: [16384],
    });
    expect(first.select).toContain(
      `FROM (SELECT "o".*, CASE WHEN (pg_catalog.pg_has_role(CAST(E'16384' AS pg_catalog.oid), 'MEMBER')) THEN CAST("o"."id" AS pg_catalog.text)`,
    );
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
    const guarded = (on: string, quasi: string) =>
      planView(
        {
          ...spec,
          joins: [{ ...spec.joins![0]!, on }],
          columns: [...spec.columns, { name: 'region', expr: 'c.country' }, { name: 'day', expr: 'o.created_at' }],
          kAnonymity: { quasiIdentifiers: [quasi], k: 5 },
        } as MaskedViewSpec,
        ctx,
      ).select;
    const eager = guarded('c.id = o.customer_id AND c.shop = o.shop_id', 'region');
    expect(eager).toContain(
      'FROM (SELECT "o"."customer_id", "o"."shop_id", pg_catalog.count(*) AS "__steward_rows" FROM "raw"."orders" AS "o" GROUP BY 1, 2) AS "o"',
    );
    expect(eager).toContain('pg_catalog.sum(COALESCE("o"."__steward_rows", 1)) >= 5');
    // The first table read by a quasi-identifier, or joined through anything but column equalities:
    // rows of one key may differ, so every joined row is counted.
    for (const plain of [
      guarded('c.id = o.customer_id', 'day'),
      guarded('c.id = o.customer_id + 0', 'region'),
      guarded('c.id = o.customer_id OR c.id = o.id', 'region'),
    ]) {
      expect(plain).not.toContain('__steward_rows');
      expect(plain).toContain('(pg_catalog.count(*) >= 5 OR');
    }
  });

  it('names the field of a refused expression', () => {
    const bad = { ...spec, joins: [{ ...spec.joins![0]!, on: 'c.id = (SELECT 1)' }] } as MaskedViewSpec;
    expect(() => planView(bad, { keyQuery: 'SELECT NULL::bytea AS key' })).toThrow(/^spec\.joins\[0\]\.on: subqueries are not allowed/);
  });
});

describe('a view cannot undo its own masks', () => {
  const base = {
    warehouse: 'w',
    view: { schema: 'curated', name: 'v' },
    from: { table: 'raw.orders', alias: 'o' },
    joins: [{ table: 'raw.customers', alias: 'c', on: 'c.id = o.customer_id', type: 'inner' }],
    columns: [
      { name: 'email', expr: 'c.email', mask: 'email' },
      { name: 'zip', expr: 'c.zip' },
      { name: 'amount', expr: 'o.amount' },
    ],
    kAnonymity: { quasiIdentifiers: ['zip'], k: 2 },
    readers: ['r'],
    owner: 'o',
  } as unknown as MaskedViewSpec;
  const ctx = { keyQuery: 'SELECT NULL::bytea AS key' };
  const withColumn = (column: object) => ({ ...base, columns: [...base.columns, column] }) as MaskedViewSpec;

  it('accepts the view as written, and two masks over one column', () => {
    expect(() => planView(base, ctx)).not.toThrow();
    expect(() => planView(withColumn({ name: 'email_hash', expr: 'c.email', mask: 'hash' }), { ...ctx, hmacFunction: '"public"."hmac"' })).not.toThrow();
  });
  it.each([
    [
      { name: 'leak', expr: 'c.email' },
      /^spec\.columns\[3\]\.expr: c\.email \(raw\.customers\.email\) is masked in column email, so it may appear only through its mask \(at position 1\)$/,
    ],
    [{ name: 'leak', expr: 'md5(c.email)' }, /masked in column email.*\(at position 5\)$/],
    [{ name: 'leak', expr: "c.email LIKE 'a%'" }, /\(at position 1\)$/],
    [{ name: 'leak', expr: 'CASE WHEN length(o.note || c.email) > 3 THEN 1 END' }, /c\.email .*\(at position 28\)$/],
    [{ name: 'zip2', expr: 'c.zip' }, /^spec\.columns\[3\]\.expr: c\.zip \(raw\.customers\.zip\) is a kAnonymity quasi-identifier \(column zip\)/],
  ])('refuses %j with its position', (column, message) => {
    expect(() => planView(withColumn(column), ctx)).toThrow(MaskBypassError);
    expect(() => planView(withColumn(column), ctx)).toThrow(message);
  });
  it('refuses a masked column read through a second alias of its table', () => {
    const twice = {
      ...withColumn({ name: 'leak', expr: 'c2.email' }),
      joins: [...base.joins!, { table: 'raw.customers', alias: 'c2', on: 'c2.id = o.customer_id', type: 'inner' }],
    } as MaskedViewSpec;
    expect(() => planView(twice, ctx)).toThrow(/^spec\.columns\[3\]\.expr: c2\.email \(raw\.customers\.email\) is masked in column email/);
  });
  it.each([
    ["CASE WHEN c.email LIKE 'a%' THEN 'x' ELSE 'y' END", 'hash'],
    ['reverse(c.email)', 'last4'],
    ['lower(c.email)', 'email'],
    ["NULLIF(c.email, 'alice@example.com')", 'redact'],
  ])('refuses a mask over %s: what the %s mask shows would carry what the expression computes', (expr, mask) => {
    const masked = { ...base, columns: [{ name: 'email', expr, mask }, ...base.columns.slice(1)] } as MaskedViewSpec;
    expect(() => planView(masked, { ...ctx, hmacFunction: '"public"."hmac"' })).toThrow(
      /^spec\.columns\[0\]\.expr: a mask takes one column as it is \(alias\.column\), not an expression/,
    );
  });
  const quasiOver = (expr: string) => ({ ...base, columns: [base.columns[0]!, { name: 'zip', expr }, base.columns[2]!] }) as MaskedViewSpec;
  it.each([
    ['c.zip::int', 'a cast to int4'],
    ['CAST(c.zip AS date)', 'a cast to date'],
    ["to_number(c.zip, '99999')", 'to_number()'],
    ['make_date(2026, 1, length(c.zip))', 'make_date()'],
    ['date_part(c.zip, c.born)', 'date_part() with a computed argument 1'],
    ['substr(c.zip, length(c.zip))', 'substr() with a computed argument 2'],
    ['c.zip LIKE c.country', 'LIKE with a pattern read from a column'],
    ['length(c.zip) / length(c.country)', '/ by anything but a nonzero constant'],
  ])('refuses %s in a quasi-identifier: its error is an oracle on the value', (expr, what) => {
    expect(() => planView(quasiOver(expr), ctx)).toThrow(MaskBypassError);
    expect(() => planView(quasiOver(expr), ctx)).toThrow(
      new RegExp(`^spec\\.columns\\[1\\]\\.expr: ${what.replace(/[()*/]/g, '\\$&')}.* may not stand in the quasi-identifier zip`),
    );
  });
  it('accepts in a quasi-identifier what cannot fail on the value, arithmetic included', () => {
    for (const expr of [
      'lower(trim(c.zip))',
      'substr(c.zip, 1, 3)',
      "c.zip || '-'",
      'CAST(c.zip AS varchar(3))',
      'extract(year from c.born)',
      "CASE WHEN c.zip LIKE '1%' THEN 'east' ELSE 'west' END",
      'length(c.zip) / 10',
      'c.age / 10 * 10',
    ]) {
      expect(() => planView(quasiOver(expr), ctx), expr).not.toThrow();
    }
  });
  it('refuses a join condition on a masked or guarded column', () => {
    const on = (condition: string) => ({ ...base, joins: [{ ...base.joins![0]!, on: condition }] }) as MaskedViewSpec;
    expect(() => planView(on("c.id = o.customer_id AND c.email LIKE 'u%'"), ctx)).toThrow(/^spec\.joins\[0\]\.on: c\.email .*\(at position 26\)$/);
    expect(() => planView(on('c.id = o.customer_id AND c.zip = o.zip'), ctx)).toThrow(/^spec\.joins\[0\]\.on: c\.zip .* quasi-identifier/);
  });
  it('under the guard, accepts a join on every column of a unique key and refuses one that can multiply rows', () => {
    const keys = new Map([['raw.customers', [['id'], ['tenant', 'external_id']]]]);
    const on = (condition: string) => ({ ...base, joins: [{ ...base.joins![0]!, on: condition }] }) as MaskedViewSpec;
    for (const ok of [
      'c.id = o.customer_id',
      'o.customer_id = c.id',
      'c.id = o.customer_id AND c.active',
      'c.tenant = o.tenant AND c.external_id = o.customer_ref',
    ]) {
      expect(() => refuseRowMultiplyingJoins(on(ok), keys), ok).not.toThrow();
    }
    for (const bad of ['TRUE', 'c.id = c.id', 'c.tenant = o.tenant', 'c.id = o.customer_id OR c.id = o.id', 'c.id > o.customer_id']) {
      expect(() => refuseRowMultiplyingJoins(on(bad), keys), bad).toThrow(
        /^spec\.joins\[0\]\.on: with kAnonymity, a join must match at most one row of raw\.customers: .*its unique keys are \(id\), \(tenant, external_id\)/,
      );
    }
    expect(() => refuseRowMultiplyingJoins(base, new Map())).toThrow(/it has no primary key or unique index/);
    expect(() => refuseRowMultiplyingJoins({ ...base, kAnonymity: undefined } as MaskedViewSpec, new Map())).not.toThrow();
  });
  it('groups a masked quasi-identifier by what readers see, not by the raw value', () => {
    const spec = {
      ...base,
      columns: [...base.columns, { name: 'born', expr: 'c.born', mask: 'truncate', truncate: { unit: 'year' } }],
      kAnonymity: { quasiIdentifiers: ['zip', 'born'], k: 2 },
    } as MaskedViewSpec;
    const select = planView(spec, ctx).select;
    expect(select).toContain(`COALESCE(CAST(pg_catalog.date_trunc(E'year', "c"."born") AS pg_catalog.text), '')`);
  });
  it('keeps substring() positional: a pattern is refused, anything else becomes an integer', () => {
    expect(() => parseExpression("substring(c.email from '^(.)')", ['c'])).toThrow(
      /substring\(\) takes positions \(whole numbers\), not a pattern: regular expressions are not allowed \(at position 24\)/,
    );
    expect(() => parseExpression("substring(c.email similar '%#\"a#\"%' escape '#')", ['c'])).toThrow(/regular expressions are not allowed/);
    expect(parseExpression('substr(c.email, c.n, 2)', ['c']).sql((a) => `"${a}"`)).toBe(
      'pg_catalog."substr"("c"."email", CAST("c"."n" AS pg_catalog."int4"), CAST(2 AS pg_catalog."int4"))',
    );
  });
});
