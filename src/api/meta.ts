// The parts of a Kubernetes object every kind shares. The same shape as runtime's ObjectMetaLike
// (written twice on purpose: api/ imports nothing of runtime/), so typed objects flow through the
// generic runtime without casts.
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}

export interface Resource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/**
 * Who asked: stamped on every create and on every change of spec by Steward's admission webhook,
 * from the authenticated request (a value in the manifest is overwritten). Under GitOps it is the
 * GitOps controller's identity; REQUESTED_VIA and CHANGE_REF say more where the manifest has it.
 */
export const REQUESTED_BY_ANNOTATION = 'steward.dev/requested-by';
export const REQUESTED_BY_GROUPS_ANNOTATION = 'steward.dev/requested-by-groups';
/** The GitOps application that applied it (Argo CD's tracking id, Flux's Kustomization), read from the object. */
export const REQUESTED_VIA_ANNOTATION = 'steward.dev/requested-via';
/** A commit or pull request the manifest names (set by CI or the GitOps tool); as the manifest says, not authenticated. */
export const CHANGE_REF_ANNOTATION = 'steward.dev/change-ref';

/** Who asked for the object, when the admission webhook stamped it. */
export function requestedBy(obj: { metadata: ObjectMeta }): string | undefined {
  return obj.metadata.annotations?.[REQUESTED_BY_ANNOTATION];
}
