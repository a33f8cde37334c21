// What a reconciler says while the object it works through (a Warehouse, an ObjectStore) is missing
// or not Ready, the same way for every kind: <Kind>NotFound, <Kind>NotReady with the dependency's own
// Ready reason and message. Both wait (Progressing): they resolve without a change to the object.
import type { KubeObject } from '../runtime/kube.ts';
import type { Outcome } from '../runtime/controller.ts';
import { findCondition, isTrue, type Condition } from '../runtime/conditions.ts';

/**
 * `dep` when it is there (and Ready, unless `mustBeReady` is false: deletion needs the dependency to
 * exist, not to be Ready), or the Outcome that waits for it. `label` names it in the message
 * ("Warehouse analytics", "an ObjectStore of bucket company-curated"); `nothing` says what did not
 * happen ("nothing granted").
 */
export function waitingFor<T extends KubeObject & { status?: { conditions?: Condition[] } }>(
  kind: 'Warehouse' | 'ObjectStore',
  label: string,
  dep: T | undefined,
  nothing: string,
  mustBeReady = true,
): { dep: T } | { outcome: Outcome } {
  if (!dep) return { outcome: { state: 'Progressing', reason: `${kind}NotFound`, message: `${label} does not exist; ${nothing}` } };
  if (!mustBeReady || isTrue(dep.status?.conditions, 'Ready')) return { dep };
  const why = findCondition(dep.status?.conditions, 'Ready');
  return {
    outcome: { state: 'Progressing', reason: `${kind}NotReady`, message: `waiting for ${label}${why ? `: ${why.reason}: ${why.message}` : ''}; ${nothing}` },
  };
}
