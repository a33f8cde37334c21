// What Steward's admission webhook does to a Steward object: who asked (governance/stamp.ts), and,
// on create, the kind's cleanup finalizer. Other groups pass untouched.
import { stampPatch, type StampInput } from '../governance/stamp.ts';
import type { AdmissionRequest } from '../runtime/admission.ts';
import { DATASET_ACCESS_FINALIZER } from './datasetaccess.ts';
import { MASKED_VIEW_FINALIZER } from './maskedview.ts';

/** The kinds whose deletion waits for Steward's cleanup: their objects are created with the finalizer. */
const CLEANUP_FINALIZERS: Record<string, string> = { DatasetAccess: DATASET_ACCESS_FINALIZER, MaskedView: MASKED_VIEW_FINALIZER };

export function mutateStewardObject(request: AdmissionRequest): ReturnType<typeof stampPatch> {
  if (request.kind.group !== 'steward.dev' || !request.object) return [];
  return stampPatch({
    operation: request.operation,
    kind: request.kind.kind,
    user: request.userInfo,
    object: request.object as StampInput['object'],
    oldObject: request.oldObject as StampInput['oldObject'],
    finalizer: CLEANUP_FINALIZERS[request.kind.kind],
  });
}
