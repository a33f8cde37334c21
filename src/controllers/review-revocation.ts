// An AccessReview's revoke, as a DatasetAccess reconciler (PostgreSQL or S3) sees it: recorded in the
// access's status for the generation it revoked, or, the first time, read from the review's status.
// A changed spec is a new generation: a new request, judged anew.
import type { DatasetAccess } from '../api/datasetaccess.ts';

/** What status.revokedByReview holds. */
export type ReviewRevocation = NonNullable<NonNullable<DatasetAccess['status']>['revokedByReview']>;

/** The lookup into the reviews (controllers/accessreview.ts reviewRevocation). */
export type ReviewRevocationLookup = (dsa: DatasetAccess) => ReviewRevocation | undefined;

/** The review revocation that holds for this spec, if any. */
export function revocationOf(dsa: DatasetAccess, lookup: ReviewRevocationLookup | undefined): ReviewRevocation | undefined {
  const recorded = dsa.status?.revokedByReview;
  if (recorded && recorded.generation === dsa.metadata.generation) return recorded;
  return lookup?.(dsa);
}

/** How a revocation is said in a condition and an event. */
export function revokedBy(r: ReviewRevocation): string {
  return `AccessReview ${r.review}, cycle ${r.cycle}, by ${r.by}${r.reason ? ` (${r.reason})` : ''}`;
}
