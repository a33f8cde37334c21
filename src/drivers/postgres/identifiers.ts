// Identifiers are always quoted, never pasted: "name" with embedded quotes doubled. The CRD schema
// already restricts names to a strict pattern; this is the second line of defence, and it also
// refuses what quoting cannot make safe (NUL bytes, names PostgreSQL would silently truncate).
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

/** A string literal, for the rare DDL that takes no bind parameters. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('SQL literal contains a NUL byte');
  return `'${value.replace(/'/g, "''")}'`;
}
