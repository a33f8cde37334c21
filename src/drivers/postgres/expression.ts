// Column expressions and join conditions of a MaskedView, parsed with PostgreSQL's own parser
// (libpg-query, WASM) and rendered back to SQL from the parse tree. Nothing the user wrote is pasted
// into SQL: only node kinds on an allow-list are accepted, identifiers are re-quoted, literals
// re-escaped, and functions, operators and casts must be on their lists. Anything else is refused
// with the parser's position (a 1-based character offset into the expression).
import { quoteIdent, quoteLiteral } from './sql-text.ts';

type Parser = typeof import('libpg-query');
let parser: Parser | undefined;
let loaded: Promise<void> | undefined;
/**
 * The parser is WASM, imported and loaded on first use: a Steward with no MaskedView never pays
 * for it (importing it alone costs about 13 MB of resident memory, and its heap grows with use).
 */
export function loadParser(): Promise<void> {
  loaded ??= import('libpg-query').then(async (module) => {
    await module.loadModule();
    parser = module;
  });
  return loaded;
}

export const ALLOWED_FUNCTIONS = new Set([
  'lower',
  'upper',
  'trim',
  'btrim',
  'ltrim',
  'rtrim',
  'length',
  'char_length',
  'substr',
  'substring',
  'left',
  'right',
  'concat',
  'concat_ws',
  'split_part',
  'replace',
  'nullif',
  'abs',
  'round',
  'floor',
  'ceil',
  'ceiling',
  'greatest',
  'least',
  'date_trunc',
  'date_part',
  'to_char',
  'md5',
  // What EXTRACT(field FROM x) and x AT TIME ZONE z parse into.
  'extract',
  'timezone',
  'trunc',
  'mod',
  'sign',
  'power',
  'initcap',
  'lpad',
  'rpad',
  'reverse',
  'strpos',
  'to_date',
  'to_number',
  'make_date',
]);
export const ALLOWED_OPERATORS = new Set(['+', '-', '*', '/', '%', '||', '=', '<>', '!=', '<', '>', '<=', '>=']);
export const ALLOWED_TYPES = new Set([
  'int2',
  'int4',
  'int8',
  'integer',
  'bigint',
  'smallint',
  'numeric',
  'float4',
  'float8',
  'text',
  'varchar',
  'bpchar',
  'date',
  'time',
  'timestamp',
  'timestamptz',
  'interval',
  'bool',
  'boolean',
]);

const MAX_PAD = 1000;

/** LIKE and friends, as the parser names them. */
const LIKE_OPERATORS: Record<string, string> = { '~~': 'LIKE', '!~~': 'NOT LIKE', '~~*': 'ILIKE', '!~~*': 'NOT ILIKE' };
const BETWEEN_KINDS: Record<string, string> = {
  AEXPR_BETWEEN: 'BETWEEN',
  AEXPR_NOT_BETWEEN: 'NOT BETWEEN',
  AEXPR_BETWEEN_SYM: 'BETWEEN SYMMETRIC',
  AEXPR_NOT_BETWEEN_SYM: 'NOT BETWEEN SYMMETRIC',
};

export class ExpressionError extends Error {
  readonly position: number;
  constructor(message: string, position: number) {
    super(`${message} (at position ${position})`);
    this.position = position;
  }
}

/**
 * A spec whose expressions would show readers what its masks or its k-anonymity guard hide (an
 * unmasked copy of a masked column, a join that multiplies rows under the guard, ...). Refused like
 * any other expression, and more: the view is withdrawn, since no version of it may serve.
 */
export class MaskBypassError extends ExpressionError {}

export interface ColumnInput {
  alias: string;
  column: string;
  /** Where the column first appears in the expression (1-based), when it was parsed from it. */
  position?: number;
}

export interface ParsedExpression {
  /** SQL rendered from the parse tree, with aliases replaced by `render(alias)`. */
  sql: (aliasSql: (alias: string) => string) => string;
  /** Every alias.column the expression reads, in order of appearance, without repeats. */
  inputs: ColumnInput[];
  /**
   * When the expression is nothing but `a.x = b.y` comparisons of two columns joined by AND (the
   * usual join condition), those pairs; otherwise undefined.
   */
  equalities?: [ColumnInput, ColumnInput][];
  /** The `a.x = b.y` comparisons among the expression's top-level AND terms, whatever the other terms are. */
  conjunctEqualities: [ColumnInput, ColumnInput][];
  /**
   * What in the expression can fail on the values it reads, with an error that shows or hints at
   * them (a cast's "invalid input syntax for type integer: "alice@example.com"", a division by zero
   * taken or not). Harmless in a column shown as it is; in a guarded column it is an oracle on what
   * the guard hides (maskedview.ts refuses it there).
   */
  hazards: Hazard[];
  /** The expression is one column reference and nothing else. */
  isColumn: boolean;
}

export interface Hazard {
  what: string;
  position: number;
}

// biome-ignore lint/suspicious/noExplicitAny: libpg-query's parse tree is untyped JSON; each node kind is checked where it is read
type Node = Record<string, any>;
const PREFIX = 'SELECT ';

/**
 * Parses one expression over the given aliases. Throws ExpressionError with the position of the
 * first thing that is not allowed.
 */
export function parseExpression(text: string, aliases: readonly string[]): ParsedExpression {
  if (!parser) throw new Error('call loadParser() first');
  // Comments are legal SQL but have no place in a one-line expression: a sign of injection.
  try {
    const comment = parser!.scanSync(PREFIX + text).tokens.find((t) => t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT');
    if (comment) throw new ExpressionError('comments are not allowed', comment.start - PREFIX.length + 1);
  } catch (e) {
    if (e instanceof ExpressionError) throw e;
    // A scan error surfaces again, with its position, from the parser below.
  }
  let tree: Node;
  try {
    tree = parser!.parseSync(PREFIX + text) as Node;
  } catch (e) {
    const details = (e as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
    const pos = Math.max(1, (details?.cursorPosition ?? PREFIX.length) - PREFIX.length + 1);
    throw new ExpressionError(`not a valid SQL expression: ${(e as Error).message}`, pos);
  }
  const stmts = tree.stmts as Node[];
  if (stmts.length !== 1) {
    // Point at the semicolon itself (a real token: one inside a string literal would not split).
    const semicolon = parser!.scanSync(PREFIX + text).tokens.find((t) => t.text === ';');
    throw new ExpressionError(
      'only a single expression is allowed, not several statements',
      Math.max(1, (semicolon?.start ?? PREFIX.length) - PREFIX.length + 1),
    );
  }
  const select = stmts[0]!.stmt.SelectStmt as Node | undefined;
  const targets = select?.targetList as Node[] | undefined;
  const extra = select && Object.keys(select).filter((k) => !['targetList', 'limitOption', 'op'].includes(k));
  if (!select || !targets || targets.length !== 1 || extra!.length) {
    throw new ExpressionError('only a single expression is allowed', 1);
  }
  const target = targets[0]!.ResTarget as Node;
  if (target.name) throw new ExpressionError('an alias (AS ...) is not allowed here; name the column with `name`', 1);
  const inputs: ColumnInput[] = [];
  const hazards: Hazard[] = [];
  const render = build(target.val as Node, aliases, inputs, hazards);
  const unique = inputs.filter((c, i) => inputs.findIndex((d) => d.alias === c.alias && d.column === c.column) === i);
  const conjuncts = topLevelConjuncts(target.val as Node)
    .map(columnEqualities)
    .filter((e) => e !== undefined);
  return {
    sql: render,
    inputs: unique,
    equalities: columnEqualities(target.val as Node),
    conjunctEqualities: conjuncts.flat(),
    hazards,
    isColumn: 'ColumnRef' in (target.val as Node),
  };
}

function topLevelConjuncts(node: Node): Node[] {
  const [kind, body] = Object.entries(node)[0] as [string, Node];
  return kind === 'BoolExpr' && body.boolop === 'AND_EXPR' ? (body.args as Node[]).flatMap(topLevelConjuncts) : [node];
}

/** The column pairs of an AND of `alias.column = alias.column` comparisons; undefined for anything else. */
function columnEqualities(node: Node): [ColumnInput, ColumnInput][] | undefined {
  const [kind, body] = Object.entries(node)[0] as [string, Node];
  if (kind === 'BoolExpr' && body.boolop === 'AND_EXPR') {
    const parts = (body.args as Node[]).map(columnEqualities);
    return parts.every((p) => p) ? parts.flatMap((p) => p!) : undefined;
  }
  if (kind !== 'A_Expr' || body.kind !== 'AEXPR_OP' || names(body.name).join('.') !== '=' || !body.lexpr) return undefined;
  const column = (n: Node): ColumnInput | undefined => {
    const parts = n.ColumnRef ? names(n.ColumnRef.fields as Node[]) : [];
    return parts.length === 2 ? { alias: parts[0]!, column: parts[1]! } : undefined;
  };
  const l = column(body.lexpr as Node);
  const r = column(body.rexpr as Node);
  return l && r ? [[l, r]] : undefined;
}

type Renderer = (aliasSql: (alias: string) => string) => string;

function pos(node: Node): number {
  const loc = Object.values(node)[0]?.location;
  return typeof loc === 'number' && loc >= 0 ? loc - PREFIX.length + 1 : 1;
}

function names(list: Node[] | undefined): string[] {
  return (list ?? []).map((n) => (n.String?.sval as string | undefined) ?? '');
}

/** Types a cast to which never fails, whatever the value (varchar(n) and char(n) truncate). */
const TOTAL_CASTS = new Set(['text', 'varchar', 'bpchar']);
/** Functions whose error messages carry the values they failed on. */
const VALUE_IN_ERROR = new Set(['to_date', 'to_number', 'make_date']);
/** Functions that fail unless some arguments are fit (a unit, a zone, a format, a position), by argument index. */
const NEEDS_CONSTANT: Record<string, readonly number[]> = {
  date_part: [0],
  extract: [0],
  date_trunc: [0],
  timezone: [0],
  to_char: [1],
  split_part: [2],
  substr: [1, 2],
  substring: [1, 2],
};

function isConstant(n: Node | undefined): boolean {
  return Boolean(n?.A_Const) || Boolean(n?.TypeCast && isConstant(n.TypeCast.arg));
}

/** A nonzero number other than -1 (INT_MIN / -1 overflows): a divisor that never fails. */
function isSafeDivisor(n: Node | undefined): boolean {
  const c = n?.A_Const;
  const v = c?.ival ? Number(c.ival.ival ?? 0) : c?.fval ? Number(c.fval.fval) : NaN;
  return Number.isFinite(v) && v !== 0 && v !== -1;
}

function build(node: Node, aliases: readonly string[], inputs: ColumnInput[], hazards: Hazard[]): Renderer {
  const [kind, body] = Object.entries(node)[0] as [string, Node];
  const sub = (n: Node) => build(n, aliases, inputs, hazards);
  /** Renders n, and says whether it read any column. */
  const reads = (n: Node): [Renderer, boolean] => {
    const before = inputs.length;
    const r = sub(n);
    return [r, inputs.length > before];
  };
  switch (kind) {
    case 'ColumnRef': {
      const fields = body.fields as Node[];
      if (fields.some((f) => f.A_Star)) throw new ExpressionError('* is not allowed; name the column', pos(node));
      const parts = names(fields);
      if (parts.length !== 2) throw new ExpressionError(`write columns as alias.column (one of ${aliases.join(', ')})`, pos(node));
      const [alias, column] = parts as [string, string];
      if (!aliases.includes(alias)) throw new ExpressionError(`unknown alias ${alias}: use ${aliases.join(', ')}`, pos(node));
      inputs.push({ alias, column, position: pos(node) });
      return (a) => `${a(alias)}.${quoteIdent(column)}`;
    }
    case 'A_Const': {
      if (body.isnull) return () => 'NULL';
      if (body.ival) return () => String(Number(body.ival.ival ?? 0));
      if (body.fval) {
        const v = String(body.fval.fval);
        if (!/^[0-9.eE+-]+$/.test(v)) throw new ExpressionError('invalid number', pos(node));
        return () => v;
      }
      if (body.sval) return () => quoteLiteral(String(body.sval.sval ?? ''));
      if (body.boolval) return () => (body.boolval.boolval ? 'TRUE' : 'FALSE');
      throw new ExpressionError('unsupported constant', pos(node));
    }
    case 'A_Expr': {
      const op = names(body.name).join('.');
      switch (body.kind) {
        case 'AEXPR_OP': {
          if (!ALLOWED_OPERATORS.has(op)) throw new ExpressionError(`operator ${op} is not allowed`, pos(node));
          const [l, leftReads] = body.lexpr ? reads(body.lexpr) : [undefined, false];
          const [r, rightReads] = reads(body.rexpr);
          if ((op === '/' || op === '%') && (leftReads || rightReads)) {
            // By a nonzero constant (not -1: INT_MIN / -1 overflows) it cannot fail.
            if (!isSafeDivisor(body.rexpr)) hazards.push({ what: `${op} by anything but a nonzero constant (a division by zero)`, position: pos(node) });
          }
          return (a) => (l ? `(${l(a)} ${op} ${r(a)})` : `(${op} ${r(a)})`);
        }
        case 'AEXPR_DISTINCT':
        case 'AEXPR_NOT_DISTINCT': {
          const l = sub(body.lexpr);
          const r = sub(body.rexpr);
          const not = body.kind === 'AEXPR_NOT_DISTINCT' ? 'NOT ' : '';
          return (a) => `(${l(a)} IS ${not}DISTINCT FROM ${r(a)})`;
        }
        case 'AEXPR_NULLIF': {
          const l = sub(body.lexpr);
          const r = sub(body.rexpr);
          return (a) => `NULLIF(${l(a)}, ${r(a)})`;
        }
        case 'AEXPR_IN': {
          // x IN (a, b) parses with "=", x NOT IN (a, b) with "<>"; the right side is a plain list.
          if (op !== '=' && op !== '<>') throw new ExpressionError(`operator ${op} is not allowed with IN`, pos(node));
          const l = sub(body.lexpr);
          const items = ((body.rexpr?.List?.items ?? []) as Node[]).map(sub);
          if (items.length === 0) throw new ExpressionError('IN needs a list of values', pos(node));
          return (a) => `(${l(a)} ${op === '=' ? 'IN' : 'NOT IN'} (${items.map((x) => x(a)).join(', ')}))`;
        }
        case 'AEXPR_LIKE':
        case 'AEXPR_ILIKE': {
          const word = LIKE_OPERATORS[op];
          if (!word) throw new ExpressionError(`operator ${op} is not allowed`, pos(node));
          const l = sub(body.lexpr);
          const [r, patternReads] = reads(body.rexpr);
          // A pattern ending in its escape character is an error: only a constant pattern cannot be one.
          if (patternReads) hazards.push({ what: `${word} with a pattern read from a column`, position: pos(node) });
          return (a) => `(${l(a)} ${word} ${r(a)})`;
        }
        case 'AEXPR_BETWEEN':
        case 'AEXPR_NOT_BETWEEN':
        case 'AEXPR_BETWEEN_SYM':
        case 'AEXPR_NOT_BETWEEN_SYM': {
          const l = sub(body.lexpr);
          const [lo, hi] = ((body.rexpr?.List?.items ?? []) as Node[]).map(sub);
          if (!lo || !hi) throw new ExpressionError('BETWEEN needs two bounds', pos(node));
          const word = BETWEEN_KINDS[body.kind as string]!;
          return (a) => `(${l(a)} ${word} ${lo(a)} AND ${hi(a)})`;
        }
        default:
          // ANY/ALL over arrays, SIMILAR TO (a regular expression), OF, ...
          throw new ExpressionError(
            `${String(body.kind)
              .replace(/^AEXPR_/, '')
              .toLowerCase()} expressions are not allowed`,
            pos(node),
          );
      }
    }
    case 'BoolExpr': {
      const args = (body.args as Node[]).map(sub);
      if (body.boolop === 'NOT_EXPR') return (a) => `(NOT ${args[0]!(a)})`;
      const joiner = body.boolop === 'AND_EXPR' ? ' AND ' : ' OR ';
      return (a) => `(${args.map((x) => x(a)).join(joiner)})`;
    }
    case 'NullTest': {
      const arg = sub(body.arg);
      return (a) => `(${arg(a)} IS ${body.nulltesttype === 'IS_NOT_NULL' ? 'NOT ' : ''}NULL)`;
    }
    case 'CoalesceExpr': {
      const args = (body.args as Node[]).map(sub);
      return (a) => `COALESCE(${args.map((x) => x(a)).join(', ')})`;
    }
    case 'CaseExpr': {
      if (body.arg) throw new ExpressionError('write CASE WHEN condition THEN ... (simple CASE x WHEN is not supported)', pos(node));
      const whens = (body.args as Node[]).map((w) => ({ cond: sub(w.CaseWhen.expr), result: sub(w.CaseWhen.result) }));
      const otherwise = body.defresult ? sub(body.defresult) : undefined;
      return (a) => `(CASE ${whens.map((w) => `WHEN ${w.cond(a)} THEN ${w.result(a)}`).join(' ')}${otherwise ? ` ELSE ${otherwise(a)}` : ''} END)`;
    }
    case 'FuncCall': {
      const fn = names(body.funcname);
      const name = fn[fn.length - 1]!;
      const schemaOk = fn.length === 1 || (fn.length === 2 && fn[0] === 'pg_catalog');
      if (!schemaOk || !ALLOWED_FUNCTIONS.has(name)) throw new ExpressionError(`function ${fn.join('.')} is not allowed`, pos(node));
      if (body.agg_star || body.agg_distinct || body.over || body.agg_order || body.agg_filter || body.func_variadic) {
        throw new ExpressionError(`aggregates, window functions and special call forms are not allowed in ${name}()`, pos(node));
      }
      if (name === 'lpad' || name === 'rpad') {
        // The only functions that make a value longer than their inputs: a length from the data, or a
        // huge one, would let a view's author make every reader's query allocate up to 1 GB a row.
        const len = (body.args as Node[] | undefined)?.[1]?.A_Const;
        const n = len && 'ival' in len ? Number(len.ival.ival ?? 0) : NaN;
        if (!(n >= 0 && n <= MAX_PAD)) throw new ExpressionError(`${name}() needs a constant length from 0 to ${MAX_PAD}`, pos(node));
      }
      if (name === 'substring' || name === 'substr') {
        // substring(x, 'pattern') and substring(x similar p escape e) are regular expressions: an
        // oracle on the text (and a denial of service). Positions only: a string is refused here,
        // anything else is cast to an integer, which picks the positional form whatever its type.
        const pattern = ((body.args as Node[] | undefined) ?? []).slice(1).find((n) => n.A_Const?.sval);
        if (pattern) throw new ExpressionError(`${name}() takes positions (whole numbers), not a pattern: regular expressions are not allowed`, pos(pattern));
      }
      const positional = name === 'substring' || name === 'substr';
      const argNodes = (body.args as Node[] | undefined) ?? [];
      const rendered = argNodes.map(reads);
      const args = rendered.map(([r]) => r);
      const anyReads = rendered.some(([, r]) => r);
      if (VALUE_IN_ERROR.has(name) && anyReads) hazards.push({ what: `${name}(), whose errors show the value`, position: pos(node) });
      for (const i of NEEDS_CONSTANT[name] ?? []) {
        if (argNodes[i] && !isConstant(argNodes[i]))
          hazards.push({ what: `${name}() with a computed argument ${i + 1}, which fails on unfit values`, position: pos(argNodes[i]) });
      }
      if (name === 'mod' && !isSafeDivisor(argNodes[1]) && anyReads)
        hazards.push({ what: 'mod() by anything but a nonzero constant (a division by zero)', position: pos(node) });
      return (a) => `pg_catalog.${quoteIdent(name)}(${args.map((x, i) => (positional && i > 0 ? `CAST(${x(a)} AS pg_catalog."int4")` : x(a))).join(', ')})`;
    }
    case 'TypeCast': {
      const tn = names(body.typeName.names).filter((n) => n !== 'pg_catalog');
      const type = tn.join('.');
      if (body.typeName.arrayBounds) throw new ExpressionError('casts to arrays are not allowed', pos(node));
      if (tn.length !== 1 || !ALLOWED_TYPES.has(type)) throw new ExpressionError(`cast to ${type || 'this type'} is not allowed`, pos(node));
      // Type modifiers (numeric(10,2), varchar(20), interval fields) are whole numbers, re-rendered as such.
      const typmods = ((body.typeName.typmods ?? []) as Node[]).map((m) => {
        // (A zero integer constant parses as {ival: {}}.)
        if (!m.A_Const || !('ival' in m.A_Const)) throw new ExpressionError(`type modifiers of ${type} must be whole numbers`, pos(node));
        return String(Math.trunc(Number(m.A_Const.ival.ival ?? 0)));
      });
      // interval '1' day carries its field list as a modifier, which interval(n) would read as a precision.
      if (type === 'interval' && typmods.length) throw new ExpressionError(`write interval '1 day' (fields and precision are not supported)`, pos(node));
      const [arg, argReads] = reads(body.arg);
      if (argReads && !TOTAL_CASTS.has(type)) hazards.push({ what: `a cast to ${type}, whose errors show the value`, position: pos(node) });
      const typeSql = `pg_catalog.${quoteIdent(type === 'integer' ? 'int4' : type === 'bigint' ? 'int8' : type === 'boolean' ? 'bool' : type)}${typmods.length ? `(${typmods.join(', ')})` : ''}`;
      return (a) => `CAST(${arg(a)} AS ${typeSql})`;
    }
    case 'SubLink':
      throw new ExpressionError('subqueries are not allowed', pos(node));
    default:
      throw new ExpressionError(`${kind} is not allowed in an expression`, pos(node));
  }
}
