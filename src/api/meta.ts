// The parts of a Kubernetes object every kind shares: runtime's own metadata type, so typed objects
// flow through the generic runtime without casts.
import type { ObjectMetaLike } from '../runtime/kube.ts';
export type ObjectMeta = ObjectMetaLike;

export interface Resource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}
