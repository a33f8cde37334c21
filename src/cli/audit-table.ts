// `steward audit-table [--writer LOGIN]`: the SQL of the append-only audit table, for a database
// administrator to run as a role other than Steward's login. Steward then only appends (it cannot
// drop the triggers or the table of a role it is not), which is what an auditor wants of a trail.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { AUDIT_TABLE_STATEMENTS, auditWriterGrants } from '../drivers/postgres/audit-table.ts';
import { quoteIdent } from '../drivers/postgres/sql-text.ts';

export function runAuditTable(argv: string[], out: Writable, err: Writable): number {
  let writer: string | undefined;
  try {
    writer = parseArgs({ args: argv, options: { writer: { type: 'string' } } }).values.writer;
  } catch (e) {
    err.write(`steward audit-table: ${(e as Error).message}\n`);
    return 2;
  }
  out.write('-- steward.audit_log, append-only. Run once per database, as the role that is to own it.\n');
  out.write(AUDIT_TABLE_STATEMENTS.map((s) => `${s};\n`).join(''));
  if (writer) {
    out.write(`-- Steward's login appends, and can do nothing else to the table.\n${auditWriterGrants(writer).join('\n')}\n`);
    out.write(
      `-- MaskedView hash keys live beside it, in a table Steward creates (steward.mask_keys) and lets\n-- each view's owner role read.\nGRANT USAGE, CREATE ON SCHEMA steward TO ${quoteIdent(writer)} WITH GRANT OPTION;\n`,
    );
  }
  return 0;
}
