// The `steward` command: read-only tools for people and CI around the operator.
//   steward plan -f FILE...   the SQL each DatasetAccess would run; exits 1 on a policy denial
import { runPlan } from './plan.ts';

const USAGE = `usage: steward <command>
  plan -f FILE [-f FILE ...] [-n NAMESPACE]   print the SQL each DatasetAccess would run (read-only);
                                             exit 1 on a policy denial, 3 when the policy cannot be checked`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'plan':
    process.exitCode = await runPlan(args, process.stdout, process.stderr);
    break;
  default:
    process.stderr.write(`${USAGE}\n`);
    process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
}
