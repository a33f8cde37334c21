// What Steward's admission webhooks do to a Steward object: who asked (governance/stamp.ts), and,
// on create, the kind's cleanup finalizer (mutate); with revoke at deletion, a DatasetAccess's
// grants revoked while the API server admits its DELETE, which is refused if they cannot be
// (validate). Other groups pass untouched.
import type { DatasetAccess } from '../api/datasetaccess.ts';
import { stampPatch, type StampInput } from '../governance/stamp.ts';
import type { AdmissionHandlers, AdmissionRequest, Verdict } from '../runtime/admission.ts';
import type { Outcome } from '../runtime/controller.ts';
import { DATASET_ACCESS_FINALIZER } from './datasetaccess.ts';
import { MASKED_VIEW_FINALIZER } from './maskedview.ts';

/** The kinds whose deletion waits for Steward's cleanup: their objects are created with the finalizer. */
const CLEANUP_FINALIZERS: Record<string, string> = { DatasetAccess: DATASET_ACCESS_FINALIZER, MaskedView: MASKED_VIEW_FINALIZER };

/** Revokes what an access holds for the user deleting it; the outcome says whether it could. */
export type RevokeAtDeletion = (access: DatasetAccess, user: string) => Promise<Outcome>;

/**
 * Steward's admission: the stamp always; with `revokeAtDeletion`, DatasetAccesses are created
 * without the finalizer, and their DELETE waits at admission for the revoke instead (the
 * ValidatingWebhookConfiguration sends Steward the DELETEs of datasetaccesses).
 */
export function stewardAdmission(revokeAtDeletion?: RevokeAtDeletion): AdmissionHandlers {
  const finalizers = revokeAtDeletion ? { MaskedView: MASKED_VIEW_FINALIZER } : CLEANUP_FINALIZERS;
  return {
    mutate: (request) => {
      if (request.kind.group !== 'steward.dev' || !request.object) return [];
      return stampPatch({
        operation: request.operation,
        kind: request.kind.kind,
        user: request.userInfo,
        object: request.object as StampInput['object'],
        oldObject: request.oldObject as StampInput['oldObject'],
        finalizer: finalizers[request.kind.kind],
      });
    },
    ...(revokeAtDeletion ? { validate: (request: AdmissionRequest) => validateDeletion(request, revokeAtDeletion) } : {}),
  };
}

async function validateDeletion(request: AdmissionRequest, revoke: RevokeAtDeletion): Promise<Verdict> {
  const access = request.oldObject as DatasetAccess | undefined;
  if (request.operation !== 'DELETE' || request.kind.group !== 'steward.dev' || request.kind.kind !== 'DatasetAccess' || !access?.metadata)
    return { allowed: true };
  // A dry run changes nothing (the configuration promises sideEffects: NoneOnDryRun).
  if (request.dryRun) return { allowed: true };
  const outcome = await revoke(access, request.userInfo.username);
  if (outcome.state === 'Ready') return { allowed: true };
  return {
    allowed: false,
    code: 503,
    message: `Steward did not delete DatasetAccess ${access.metadata.namespace}/${access.metadata.name}: ${outcome.message}. Delete it again once that is fixed.`,
  };
}
