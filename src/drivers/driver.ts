// The seam between a reconciler and an external system, in the spirit of crossplane-runtime's
// ExternalClient. A reconciler is glue: it observes once, decides from the observation with a pure
// planner (governance/), hands the plan to apply, and turns the typed result into an Outcome. The
// driver owns everything that touches the system: connections, transactions, locks, the SQL or API
// calls, the read-back that proves a change took, and the audit records written with the change.
//
// PostgreSQL implements it for DatasetAccess (drivers/postgres/access-driver.ts) and for MaskedView
// (drivers/postgres/view-driver.ts), AWS IAM for DatasetAccess on S3 (drivers/aws/iam-access-driver.ts);
// test/unit/reconcilers.test.ts implements it in memory. How a Secrets Manager secret will fit is in
// docs/architecture.md.
import type { AuditScope, ScopedInput } from '../audit/sink.ts';

/**
 * One kind of target in one external system.
 * - `observe` reads what exists for the target, read-only and in one round trip where the system
 *   allows: whether it exists, whether it is Steward's, what it holds. It changes nothing, so an
 *   idle resync that finds nothing to do costs one read.
 * - `apply` makes a plan (decided from `basis`, an observation of the same target) true, idempotently.
 *   It takes what it needs to be alone with the target (locks), looks again, and refuses with
 *   StaleObservation when the target changed since `basis` (the caller's resync plans afresh); then
 *   it acts, reads the effect back and throws if it did not take. Every change is audited through
 *   `audit`, with `notes` (decisions the caller made, such as a policy denial) in the same unit of
 *   work: committed together, or not at all.
 * - `remove` takes away everything Steward made for the target (deletion, and fail-closed
 *   withdrawal); what is not Steward's is left alone.
 * - `prime` (optional) reads many targets at once, in as few round trips as the system allows, so
 *   that the next `observe` of each is answered from that read (once, while it is fresh: see
 *   primed.ts). An idle resync of a whole Warehouse costs one read, not one per object.
 */
export interface Driver<Target, Observation, Plan, Applied> {
  observe(target: Target): Promise<Observation>;
  apply(target: Target, basis: Observation, plan: Plan, audit: AuditScope, notes?: ScopedInput[]): Promise<Applied>;
  remove(target: Target, audit: AuditScope, notes?: ScopedInput[]): Promise<Applied>;
  prime?(targets: readonly Target[]): Promise<void>;
}

/** What every change a driver makes reports: the statements or calls it made, for the audit trail and events. */
export interface Applied {
  /** What ran, in order (SQL, or an API call and its arguments): empty when nothing had to change. */
  ran: string[];
}
