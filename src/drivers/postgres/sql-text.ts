// The one place Steward turns names and values into SQL text. Pure: every module that renders SQL
// (the view builder here in governance/, the drivers) calls these, so the rules hold everywhere.
//
// Identifiers are always quoted, never pasted: "name" with embedded quotes doubled. The CRD schema
// already restricts names to a strict pattern; this is the second line of defence, and it also
// refuses what quoting cannot make safe (NUL bytes, names PostgreSQL would silently truncate).
//
// Literals are escape strings, E'...', with backslashes doubled and quotes doubled. An ordinary
// '...' literal means different things under standard_conforming_strings = off (a backslash
// escapes, so 'abc\' leaves the literal open and what follows runs as SQL) and on (a backslash is a
// character). An E'...' literal reads the same under either setting, and never holds \' (which
// backslash_quote may refuse), so its meaning does not depend on the session. Steward also pins
// those settings in its own sessions (connection.ts) and sends one statement at a time.
const MAX_IDENTIFIER_BYTES = 63;

export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\0')) throw new Error('SQL identifier contains a NUL byte');
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new Error(`SQL identifier longer than ${MAX_IDENTIFIER_BYTES} bytes would be truncated by PostgreSQL: ${JSON.stringify(name.slice(0, 80))}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/** schema.table, each part quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A text literal that means the same whatever standard_conforming_strings and backslash_quote say. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('SQL literal contains a NUL byte');
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
