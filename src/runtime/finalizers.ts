// Finalizers are added and removed with JSON patches guarded by `test`, so a concurrent writer
// (another controller, a user's kubectl edit) makes the patch fail with a conflict instead of
// silently dropping someone else's finalizer. A failed guard is retried like any other error.
import { KubeApiError, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

export function addFinalizerPatch(obj: KubeObject, finalizer: string): object[] {
  const current = obj.metadata.finalizers;
  if (!current || current.length === 0) {
    // No list to guard on: guard on the object's version instead.
    return [
      { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
      { op: 'add', path: '/metadata/finalizers', value: [finalizer] },
    ];
  }
  return [
    { op: 'test', path: '/metadata/finalizers', value: current },
    { op: 'add', path: '/metadata/finalizers/-', value: finalizer },
  ];
}

export function removeFinalizerPatch(obj: KubeObject, finalizer: string): object[] | undefined {
  const index = obj.metadata.finalizers?.indexOf(finalizer) ?? -1;
  if (index < 0) return undefined;
  return [
    { op: 'test', path: `/metadata/finalizers/${index}`, value: finalizer },
    { op: 'remove', path: `/metadata/finalizers/${index}` },
  ];
}

export async function addFinalizer<T extends KubeObject>(client: KubeClient, type: ResourceType, obj: T, finalizer: string): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  return client.patch<T>(type, obj.metadata.name, obj.metadata.namespace, addFinalizerPatch(obj, finalizer), 'json').catch(guardToConflict);
}

/** A failed `test` answers 422 Invalid; it means our copy was stale, i.e. a conflict. */
function guardToConflict(err: unknown): never {
  if (err instanceof KubeApiError && err.status === 422) throw new KubeApiError(409, 'Conflict', `${err.message} (a guarded patch found the object changed)`);
  throw err;
}

export async function removeFinalizer<T extends KubeObject>(client: KubeClient, type: ResourceType, obj: T, finalizer: string): Promise<void> {
  const patch = removeFinalizerPatch(obj, finalizer);
  if (patch) await client.patch(type, obj.metadata.name, obj.metadata.namespace, patch, 'json').catch(guardToConflict);
}
