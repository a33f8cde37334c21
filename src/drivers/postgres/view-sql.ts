// A MaskedView's SQL and lineage, built from parse trees. Pure: no I/O. The only text that reaches
// SQL is rendered by expression.ts (allow-listed nodes) or generated here from validated identifiers
// and integers, each quoted.
import type { MaskedViewSpec } from '../../api/maskedview.ts';
import { joinCondition } from '../../api/maskedview.ts';
import { MaskBypassError, parseExpression, type ColumnInput, type ParsedExpression } from './expression.ts';
import { quoteIdent, quoteLiteral } from './sql-text.ts';

const qualified = (table: string) => table.split('.').map(quoteIdent).join('.');

export interface LineageColumn {
  name: string;
  source: string;
  inputs: string[];
  masked: boolean;
  mask?: string;
}

export interface ViewPlan {
  /** The SELECT that defines the view (no CREATE). */
  select: string;
  sourceTables: string[];
  lineage: { dataset: string; columns: LineageColumn[] };
  maskedColumns: number;
  usesHash: boolean;
}

export interface ViewContext {
  /** Schema-qualified name of pgcrypto's hmac(), e.g. "public"."hmac". */
  hmacFunction?: string;
  /**
   * A SELECT of one row with one column, `key`: this view's hash key, read from a table only the
   * view's owner can read (so the definition names the key's row, never the key).
   */
  keyQuery: string;
  /** The OIDs of spec.unmaskedRoles, in order (zeros, which match no role, when only validating). */
  unmaskedRoleOids?: readonly number[];
}

type Column = MaskedViewSpec['columns'][number];

const PHONE_SEPARATORS = [' ', '(', ')', '-', '+', '.', '/'];
/** Masks whose output is text whatever the input's type. */
const TEXT_MASKS = new Set(['email', 'phone', 'last4', 'partial', 'redact', 'hash']);

/**
 * The masked form of `x` (already-rendered SQL of the raw value). `key` is the SQL of the hash key
 * (only read by the hash mask).
 */
export function maskSql(column: Column, x: string, ctx: ViewContext, key = `(${ctx.keyQuery})`): string {
  const text = `CAST(${x} AS pg_catalog.text)`;
  switch (column.mask) {
    case 'email':
      // ab***@example.com
      return `(pg_catalog.left(${text}, 2) || '***@' || pg_catalog.split_part(${text}, '@', 2))`;
    case 'phone':
      // (***)***-1234: the last four digits, once the usual separators are gone. One replace() per
      // separator: measured at half the cost of translate() and a fifth of a regular expression.
      return `('(***)***-' || pg_catalog.right(${PHONE_SEPARATORS.reduce((acc, sep) => `pg_catalog.replace(${acc}, ${quoteLiteral(sep)}, '')`, text)}, 4))`;
    case 'last4':
      return `('****' || pg_catalog.right(${text}, 4))`;
    case 'partial': {
      const s = Math.trunc(column.partial?.keepStart ?? 0);
      const e = Math.trunc(column.partial?.keepEnd ?? 0);
      // Too short to keep both ends without showing everything: mask it all.
      return (
        `(CASE WHEN pg_catalog.length(${text}) <= ${s + e} THEN pg_catalog.repeat('*', pg_catalog.length(${text}))` +
        ` ELSE pg_catalog.left(${text}, ${s}) || pg_catalog.repeat('*', pg_catalog.length(${text}) - ${s + e}) || pg_catalog.right(${text}, ${e}) END)`
      );
    }
    case 'redact':
      return `CASE WHEN ${x} IS NULL THEN NULL ELSE '[REDACTED]' END`;
    case 'null':
    case 'nullify':
      return 'NULL';
    case 'hash':
      if (!ctx.hmacFunction) throw new Error('mask hash needs the pgcrypto extension');
      return `pg_catalog.encode(${ctx.hmacFunction}(pg_catalog.convert_to(${text}, 'UTF8'), ${key}, 'sha256'), 'hex')`;
    case 'truncate': {
      const unit = column.truncate?.unit ?? 'day';
      if (!['year', 'month', 'day'].includes(unit)) throw new Error(`bad truncate unit ${unit}`);
      return `pg_catalog.date_trunc(${quoteLiteral(unit)}, ${x})`;
    }
    default:
      return x;
  }
}

/** Builds the view's SELECT. Throws ExpressionError (with a position) for a refused expression. */
export function planView(spec: MaskedViewSpec, ctx: ViewContext): ViewPlan {
  const aliases = [spec.from.alias, ...(spec.joins ?? []).map((j) => j.alias)];
  const tableOf = new Map([[spec.from.alias, spec.from.table], ...(spec.joins ?? []).map((j) => [j.alias, j.table] as const)]);
  const aliasSql = (a: string) => quoteIdent(a);
  const parsed: { column: Column; expr: ParsedExpression; inner: string }[] = spec.columns.map((column, i) => {
    const expr = withField(`spec.columns[${i}].expr`, () => parseExpression(column.expr, aliases));
    return { column, expr, inner: `__c${i}` };
  });
  // Who sees raw values: members of unmaskedRoles, checked for the current user (what CURRENT_USER
  // names) by role OID (by name it costs four times as much). The check is made where the mask is
  // computed, in every process that computes it: once per scan of a joined table (see source()),
  // per row for the first table's masks and for masks over several tables. Once per query (a scalar
  // subquery, an InitPlan) would keep PostgreSQL 15 from computing a reader's aggregate in parallel
  // workers. A role dropped after the view was built has no members: masked for everyone.
  const roles = spec.unmaskedRoles ?? [];
  const oids = ctx.unmaskedRoleOids ?? roles.map(() => 0);
  if (oids.length !== roles.length) throw new Error('planView: one OID per unmasked role');
  const membership = roles.length
    ? `(${oids.map((oid) => `pg_catalog.pg_has_role(CAST(${quoteLiteral(String(Math.trunc(oid)))} AS pg_catalog.oid), 'MEMBER')`).join(' OR ')})`
    : 'FALSE';
  // Raw for members, masked for everyone else. A mask that yields text makes the column text for
  // everyone, members included: one column has one type (a redacted integer is '[REDACTED]', so the
  // raw one is '42'). With no unmaskedRoles this is CASE WHEN FALSE, which the planner folds away.
  const guarded = (column: Column, x: string, masked: string, member = membership) =>
    `CASE WHEN ${member} THEN ${column.mask && TEXT_MASKS.has(column.mask) ? `CAST(${x} AS pg_catalog.text)` : x} ELSE ${masked} END`;

  // A mask that reads one table only is computed in that table's own scan, before the join: PII sits
  // on dimension tables (customers), so it is masked once per customer, not once per joined order.
  // An OFFSET keeps the planner from pulling the expression back up above the join. It is OFFSET NULL
  // (no offset at all) rather than OFFSET 0 because PostgreSQL sees a literal 0 as a cast to bigint,
  // takes it for a real limit and then plans the whole view without parallel workers.
  const premasked = new Map<string, { name: string; column: Column; raw: string }[]>();
  const maskedIn = new Map<number, string>();
  parsed.forEach((p, i) => {
    const sources = new Set(p.expr.inputs.map((c) => c.alias));
    if (!p.column.mask || sources.size !== 1) return;
    const alias = [...sources][0]!;
    const name = `__steward_mask_${i}`;
    premasked.set(alias, [...(premasked.get(alias) ?? []), { name, column: p.column, raw: p.expr.sql(aliasSql) }]);
    maskedIn.set(i, `${quoteIdent(alias)}.${quoteIdent(name)}`);
  });
  // The hash key, for a joined table's hash masks, comes from its one-row table joined into that
  // table's scan: read once per scan, and no InitPlan (see above). Its row is written in the
  // transaction that creates the view; the view's owner may only read it. For the first table
  // (orders) it is read once per query, as an InitPlan: joining anything into the scan that parallel
  // workers divide stops them dividing it, and PostgreSQL 15 planned a hash mask there serially
  // either way (measured: the same time; the HMAC, about 2 µs a row, is the cost).
  const source = (table: string, alias: string, withMasks: boolean) => {
    const extra = withMasks ? premasked.get(alias) : undefined;
    if (!extra) return `${qualified(table)} AS ${quoteIdent(alias)}`;
    const isJoined = alias !== spec.from.alias;
    const joinKey = isJoined && extra.some((e) => e.column.mask === 'hash');
    const key = joinKey ? '"__steward_key"."key"' : undefined;
    // The membership check, too, is made once per scan of a joined table and joined in, rather than
    // once per masked column of each row: a pg_has_role() call costs about 600 instructions (the
    // whole email mask, 1,500). Its one row comes from a function (generate_series) because
    // PostgreSQL 15 would not let parallel workers run a subquery without FROM.
    const joinMember = isJoined && roles.length > 0;
    const member = joinMember ? '"__steward_member"."member"' : membership;
    const masks = extra.map((e) => `${guarded(e.column, e.raw, maskSql(e.column, e.raw, ctx, key), member)} AS ${quoteIdent(e.name)}`);
    const keyScan = joinKey ? `(${ctx.keyQuery} OFFSET NULL) AS "__steward_key" CROSS JOIN ` : '';
    const memberScan = joinMember
      ? `(SELECT ${membership} AS "member" FROM pg_catalog.generate_series(1, 1) OFFSET NULL) AS "__steward_member" CROSS JOIN `
      : '';
    return `(SELECT ${quoteIdent(alias)}.*, ${masks.join(', ')} FROM ${memberScan}${keyScan}${qualified(table)} AS ${quoteIdent(alias)} OFFSET NULL) AS ${quoteIdent(alias)}`;
  };
  const joinConditions = (spec.joins ?? []).map((j, i) => withField(`spec.joins[${i}].on`, () => parseExpression(joinCondition(j), aliases)));
  refuseMaskBypass(spec, parsed, joinConditions, tableOf);
  const joined = (withMasks: boolean) =>
    (spec.joins ?? [])
      .map((j, i) => {
        const type = { inner: 'INNER', left: 'LEFT', right: 'RIGHT', full: 'FULL' }[j.type ?? 'inner'];
        return ` ${type} JOIN ${source(j.table, j.alias, withMasks)} ON ${joinConditions[i]!.sql(aliasSql)}`;
      })
      .join('');
  const from = (withMasks: boolean) => source(spec.from.table, spec.from.alias, withMasks) + joined(withMasks);
  const k = spec.kAnonymity;
  const quasi = new Set(k?.quasiIdentifiers ?? []);
  const quasiParsed = parsed.filter((p) => quasi.has(p.column.name));
  // The guard counts the rows of the join. When the first table (orders) meets the others through
  // column equalities only, and no quasi-identifier reads it, its rows that share those columns
  // join alike; so it is counted per join key first (eager aggregation: the same count). That pass
  // reads the join key alone, which PostgreSQL can take from an index on it instead of the table:
  // measured at half the cost of the count over the full join. A row the join adds for an
  // unmatched table on the other side (RIGHT, FULL) has no per-key count and weighs 1.
  const fromAlias = spec.from.alias;
  const countKeys = ((): string[] | undefined => {
    if (!k || quasiParsed.some((p) => p.expr.inputs.some((c) => c.alias === fromAlias))) return undefined;
    const columns = new Set<string>();
    for (const condition of joinConditions) {
      if (!condition.inputs.some((c) => c.alias === fromAlias)) continue;
      if (!condition.equalities) return undefined;
      for (const pair of condition.equalities) for (const c of pair) if (c.alias === fromAlias) columns.add(c.column);
    }
    return columns.size ? [...columns] : undefined;
  })();
  const counted = countKeys
    ? `(SELECT ${countKeys.map((c) => `${quoteIdent(fromAlias)}.${quoteIdent(c)}`).join(', ')}, pg_catalog.count(*) AS "__steward_rows" FROM ${qualified(spec.from.table)} AS ${quoteIdent(fromAlias)}` +
      ` GROUP BY ${countKeys.map((_, i) => i + 1).join(', ')}) AS ${quoteIdent(fromAlias)}${joined(false)}`
    : from(false);
  const rows = countKeys ? `pg_catalog.sum(COALESCE(${quoteIdent(fromAlias)}."__steward_rows", 1))` : 'pg_catalog.count(*)';
  const innerColumns = [
    ...parsed.map((p) => `${p.expr.sql(aliasSql)} AS ${quoteIdent(p.inner)}`),
    ...[...maskedIn.entries()].map(([i, sql]) => `${sql} AS ${quoteIdent(`__m${i}`)}`),
  ];
  // Small-population guard: the size of each quasi-identifier combination over the whole view,
  // counted by a narrow GROUP BY over the same join and matched back on equality. A hash aggregate
  // and a hash join cost a fraction of a window function, which sorts every row with every column.
  // Each quasi-identifier is keyed as (is it NULL, its text): equality on the raw value would never
  // match a NULL, and would leave a NULL-holding combination without its count. Text is never looser
  // than the type's own equality (1.0 and 1.00 become two groups: more hiding, never less).
  // A masked quasi-identifier (a birth date truncated to its year, say) is grouped by what readers
  // see, its masked value: grouped by the raw value, a NULL would tell them that fewer than k rows
  // share the exact date, which is what the mask hides.
  const keys = (p: { column: Column }, raw: string): [string, string] => {
    const sql = p.column.mask ? maskSql(p.column, raw, ctx) : raw;
    return [`(${sql} IS NULL)`, `COALESCE(CAST(${sql} AS pg_catalog.text), '')`];
  };
  // The guard's verdict per combination: shown if it occurs at least k times, or to members of
  // unmaskedRoles (checked once per combination, not per row).
  const groupSizes = k
    ? ` LEFT JOIN (SELECT ${quasiParsed
        .map((p, j) =>
          keys(p, p.expr.sql(aliasSql))
            .map((e, m) => `${e} AS ${quoteIdent(`__q${j}_${m}`)}`)
            .join(', '),
        )
        .join(', ')}, ` +
      `(${rows} >= ${Math.trunc(k.k)} OR ${membership}) AS "__show"` +
      ` FROM ${counted} GROUP BY ${quasiParsed.flatMap((_, j) => [2 * j + 1, 2 * j + 2]).join(', ')}) AS "__k"` +
      ` ON ${quasiParsed
        .map((p, j) =>
          keys(p, `"s".${quoteIdent(p.inner)}`)
            .map((e, m) => `"__k".${quoteIdent(`__q${j}_${m}`)} = ${e}`)
            .join(' AND '),
        )
        .join(' AND ')}`
    : '';
  const outer = parsed.map((p, i) => {
    const inner = `"s".${quoteIdent(p.inner)}`;
    let value = maskedIn.has(i) ? `"s".${quoteIdent(`__m${i}`)}` : p.column.mask ? guarded(p.column, inner, maskSql(p.column, inner, ctx)) : inner;
    // A combination seen fewer than k times reads NULL for the unprivileged; so does a row the
    // count did not match (it cannot happen: both read the same join in the same snapshot).
    if (k && quasi.has(p.column.name)) value = `CASE WHEN "__k"."__show" THEN ${value} END`;
    return `${value} AS ${quoteIdent(p.column.name)}`;
  });
  const select = `SELECT ${outer.join(', ')} FROM (SELECT ${innerColumns.join(', ')} FROM ${from(true)}) AS "s"${groupSizes}`;

  const display = (a: string) => tableOf.get(a) ?? a;
  const columns: LineageColumn[] = parsed.map((p) => ({
    name: p.column.name,
    source: plain(p.expr.sql(display)),
    inputs: p.expr.inputs.map((c) => `${tableOf.get(c.alias)}.${c.column}`),
    masked: Boolean(p.column.mask) || quasi.has(p.column.name),
    ...(p.column.mask ? { mask: p.column.mask } : quasi.has(p.column.name) ? { mask: `kAnonymity(k=${k!.k})` } : {}),
  }));
  return {
    select,
    sourceTables: [...new Set([spec.from.table, ...(spec.joins ?? []).map((j) => j.table)])],
    lineage: { dataset: `${spec.view.schema}.${spec.view.name}`, columns },
    maskedColumns: columns.filter((c) => c.masked).length,
    usesHash: spec.columns.some((c) => c.mask === 'hash'),
  };
}

/**
 * A masked source column appears only through its mask, and a quasi-identifier's only in its
 * guarded columns: not in another column, not inside another expression (md5(c.email), a CASE or a
 * LIKE that answers questions about it), not in a join condition (an oracle that keeps or drops
 * rows by its value, or copies it into another table's columns). Throws MaskBypassError with the
 * field and the position.
 */
function refuseMaskBypass(
  spec: MaskedViewSpec,
  parsed: { column: Column; expr: ParsedExpression }[],
  joins: ParsedExpression[],
  tableOf: ReadonlyMap<string, string>,
): void {
  // By table, not alias: the same table joined twice under two aliases is the same data.
  const key = (c: ColumnInput) => `${tableOf.get(c.alias)}.${c.column}`;
  const quasi = new Set(spec.kAnonymity?.quasiIdentifiers ?? []);
  const maskedBy = new Map<string, string>();
  const guardedBy = new Map<string, string>();
  for (const p of parsed) {
    for (const c of p.expr.inputs) {
      if (p.column.mask && !maskedBy.has(key(c))) maskedBy.set(key(c), p.column.name);
      if (quasi.has(p.column.name) && !guardedBy.has(key(c))) guardedBy.set(key(c), p.column.name);
    }
  }
  const source = (c: ColumnInput) => `${c.alias}.${c.column} (${tableOf.get(c.alias)}.${c.column})`;
  const check = (field: string, inputs: ColumnInput[], masked: boolean, guarded: boolean) => {
    for (const c of inputs) {
      const mask = masked ? undefined : maskedBy.get(key(c));
      if (mask) throw new MaskBypassError(`${field}: ${source(c)} is masked in column ${mask}, so it may appear only through its mask`, c.position ?? 1);
      const guard = guarded ? undefined : guardedBy.get(key(c));
      if (guard)
        throw new MaskBypassError(
          `${field}: ${source(c)} is a kAnonymity quasi-identifier (column ${guard}), so it may appear only in guarded columns`,
          c.position ?? 1,
        );
    }
  };
  parsed.forEach((p, i) => {
    const field = `spec.columns[${i}].expr`;
    check(field, p.expr.inputs, Boolean(p.column.mask), quasi.has(p.column.name));
    // A mask shows part of what it is given (two characters and the domain, the last four digits, a
    // hash that is equal for equal input, whether it is NULL). Given anything but the column itself
    // (CASE WHEN c.ssn LIKE '1%' THEN 'a' ELSE 'b' END, reverse(c.ssn)), that part can carry whatever
    // the expression computes from the hidden value: so a mask takes one column, as it is.
    if (p.column.mask && !p.expr.isColumn) {
      throw new MaskBypassError(
        `${field}: a mask takes one column as it is (alias.column), not an expression: what the mask shows would carry whatever the expression computes from the hidden value`,
        1,
      );
    }
    // In a guarded column, what can fail on the value is an oracle on it: the error, or its absence,
    // tells the reader what the guard hides.
    const hazard = quasi.has(p.column.name) ? p.expr.hazards[0] : undefined;
    if (hazard) {
      throw new MaskBypassError(
        `${field}: ${hazard.what} may not stand in the quasi-identifier ${p.column.name}: an error on one row, or its absence, would tell readers what the guard hides`,
        hazard.position,
      );
    }
  });
  for (const [i, j] of joins.entries()) check(`spec.joins[${i}].on`, j.inputs, false, false);
}

/** A table's unique keys (primary key, unique indexes), each as its column names. */
export type UniqueKeys = ReadonlyMap<string, readonly (readonly string[])[]>;

/**
 * The k-anonymity guard counts the view's rows, so a join that can match a row several times (on:
 * TRUE, or on a column that is not unique) would let one row count as many and show a group of one.
 * A join is accepted when its condition's top-level AND terms compare, with `=` to another table's
 * columns, every column of a primary key or unique index of the joined table: then each row of the
 * tables before it matches at most one of its rows, and the view has one row per row of `from`
 * (plus, for RIGHT and FULL joins, one per unmatched row). Throws MaskBypassError otherwise.
 */
export function refuseRowMultiplyingJoins(spec: MaskedViewSpec, uniqueKeys: UniqueKeys): void {
  if (!spec.kAnonymity) return;
  const aliases = [spec.from.alias, ...(spec.joins ?? []).map((j) => j.alias)];
  (spec.joins ?? []).forEach((j, i) => {
    const field = `spec.joins[${i}].on`;
    const condition = withField(field, () => parseExpression(joinCondition(j), aliases));
    const matched = new Set<string>();
    for (const [l, r] of condition.conjunctEqualities) {
      if (l.alias === j.alias && r.alias !== j.alias) matched.add(l.column);
      if (r.alias === j.alias && l.alias !== j.alias) matched.add(r.column);
    }
    const keys = uniqueKeys.get(j.table) ?? [];
    if (keys.some((k) => k.length > 0 && k.every((c) => matched.has(c)))) return;
    const known = keys.length ? `its unique keys are ${keys.map((k) => `(${k.join(', ')})`).join(', ')}` : 'it has no primary key or unique index';
    throw new MaskBypassError(
      `${field}: with kAnonymity, a join must match at most one row of ${j.table}: compare every column of one of its unique keys with = to another table's columns (${known}); this join can multiply rows, and the guard would count one row many times`,
      1,
    );
  });
}

/** Rendered SQL as people read it in a lineage report: no quotes, no outer parentheses. */
function plain(sql: string): string {
  const s = sql.replace(/"/g, '');
  return s.startsWith('(') && s.endsWith(')') && balanced(s.slice(1, -1)) ? s.slice(1, -1) : s;
}

function balanced(s: string): boolean {
  let depth = 0;
  for (const ch of s) {
    if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return false;
  }
  return depth === 0;
}

function withField<T>(field: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error) e.message = `${field}: ${e.message}`;
    throw e;
  }
}
