// The `steward` command: read-only tools for people and CI around the operator.
//   steward plan -f FILE...   the SQL each DatasetAccess would run; exits 1 on a policy denial
//   steward lineage [-o text]  the column-level lineage of every MaskedView, as one report
//   steward audit-table        the SQL of the audit table, for an administrator to create it
//   steward review NAME        an AccessReview's current cycle, and a decisions template
//   steward report             every control with live proof, signed; report verify FILE checks one
import { runPlan } from './plan.ts';
import { runReview } from './review.ts';
import { runLineage } from './lineage.ts';
import { runAuditTable } from './audit-table.ts';
import { runReport } from './report.ts';

const USAGE = `usage: steward <command>
  plan -f FILE [-f FILE ...] [-n NAMESPACE]   print the SQL each DatasetAccess would run (read-only);
                                             exit 1 on a policy denial, 3 when the policy cannot be checked
  lineage [-o json|text]                     the column-level lineage of every MaskedView, as one report
  audit-table [--writer LOGIN]               the SQL of steward.audit_log, to create it as another role than
                                             Steward's login (and the grants LOGIN needs to append to it)
  review NAME [-n NAMESPACE] [-o text|json]  an AccessReview's current cycle: its findings, and the decisions to paste
  report [-o json|markdown|html] [--out FILE] every control of each Warehouse and ObjectStore with live proof,
                                             signed (--key-secret NS/NAME); exit 1 when a control fails
  report verify FILE [--public-key PEM]      check a report's signature and every byte of it`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'plan':
    process.exitCode = await runPlan(args, process.stdout, process.stderr);
    break;
  case 'lineage':
    process.exitCode = await runLineage(args, process.stdout, process.stderr);
    break;
  case 'review':
    process.exitCode = await runReview(args, process.stdout, process.stderr);
    break;
  case 'report':
    process.exitCode = await runReport(args, process.stdout, process.stderr);
    break;
  case 'audit-table':
    process.exitCode = runAuditTable(args, process.stdout, process.stderr);
    break;
  default:
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
}
