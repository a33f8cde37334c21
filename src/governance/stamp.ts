// What the admission webhook writes on a Steward object: who asked, from the authenticated
// request. Pure: given the admission request's user, operation and the old and new objects, the
// JSON patch to return. A create, or an update that changes the spec, is stamped with the
// requester; an update that leaves the spec alone (a label, a finalizer, Steward's own metadata
// writes) keeps the old stamp, so neither Steward nor a forged annotation can rewrite who asked.
// For an AccessReview, each decision added is stamped with who added it (appliedBy).
import { REQUESTED_BY_ANNOTATION, REQUESTED_BY_GROUPS_ANNOTATION, REQUESTED_VIA_ANNOTATION } from '../api/meta.ts';

export interface AdmissionUser {
  username: string;
  groups?: string[];
}

export interface StampInput {
  operation: 'CREATE' | 'UPDATE' | string;
  kind: string;
  user: AdmissionUser;
  object: StampedObject;
  oldObject?: StampedObject | null;
  /**
   * The kind's cleanup finalizer, added on create: the object is born with it, which spares the
   * reconciler's first API write (a guarded patch per object) and closes the window in which an
   * object could be deleted before Steward put it on.
   */
  finalizer?: string;
}

interface StampedObject {
  metadata?: { annotations?: Record<string, string>; labels?: Record<string, string>; finalizers?: string[] };
  spec?: unknown;
}

export type JsonPatch = { op: 'add' | 'remove' | 'replace'; path: string; value?: unknown }[];

const STAMPS = [REQUESTED_BY_ANNOTATION, REQUESTED_BY_GROUPS_ANNOTATION, REQUESTED_VIA_ANNOTATION] as const;
/** Groups every authenticated request carries: they say nothing about who asked. */
const NOISE_GROUPS = new Set(['system:authenticated']);

/** Deep equality of JSON values, keys in any order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The GitOps tool that applied the object, from what Argo CD and Flux put on it. */
function via(obj: StampedObject): string | undefined {
  const a = obj.metadata?.annotations ?? {};
  const l = obj.metadata?.labels ?? {};
  if (a['argocd.argoproj.io/tracking-id']) return `argocd:${a['argocd.argoproj.io/tracking-id']}`;
  if (l['app.kubernetes.io/instance'] && a['argocd.argoproj.io/sync-wave'] !== undefined) return `argocd:${l['app.kubernetes.io/instance']}`;
  if (l['kustomize.toolkit.fluxcd.io/name']) return `flux:${l['kustomize.toolkit.fluxcd.io/namespace'] ?? ''}/${l['kustomize.toolkit.fluxcd.io/name']}`;
  if (l['helm.toolkit.fluxcd.io/name']) return `flux-helm:${l['helm.toolkit.fluxcd.io/namespace'] ?? ''}/${l['helm.toolkit.fluxcd.io/name']}`;
  return undefined;
}

type Decision = Record<string, unknown> & { appliedBy?: string };
const withoutStamp = ({ appliedBy: _, ...rest }: Decision) => rest;
/** A spec as the requester wrote it: the stamps on decisions are the webhook's, not a change. */
function comparable(spec: unknown): unknown {
  const decisions = (spec as { decisions?: Decision[] } | undefined)?.decisions;
  return Array.isArray(decisions) ? { ...(spec as object), decisions: decisions.map(withoutStamp) } : spec;
}

/** The annotations the object should carry after admission. */
function stampedAnnotations(input: StampInput): Record<string, string> {
  const annotations = { ...(input.object.metadata?.annotations ?? {}) };
  for (const k of STAMPS) delete annotations[k];
  const old = input.oldObject?.metadata?.annotations ?? {};
  const specChanged = input.operation !== 'UPDATE' || !input.oldObject || !sameJson(comparable(input.oldObject.spec), comparable(input.object.spec));
  if (!specChanged) {
    // Nothing asked for changed: who asked last stays as it was.
    for (const k of STAMPS) if (old[k] !== undefined) annotations[k] = old[k];
    return annotations;
  }
  annotations[REQUESTED_BY_ANNOTATION] = input.user.username;
  const groups = (input.user.groups ?? []).filter((g) => !NOISE_GROUPS.has(g));
  if (groups.length) annotations[REQUESTED_BY_GROUPS_ANNOTATION] = groups.join(',');
  const through = via(input.object);
  if (through) annotations[REQUESTED_VIA_ANNOTATION] = through;
  // steward.dev/change-ref is the manifest's to say (a commit, a PR): kept as given, never stamped.
  return annotations;
}

/** Each decision keeps the appliedBy it had; one that is new (or changed) gets the requester's. */
function stampedDecisions(input: StampInput): Decision[] | undefined {
  const decisions = (input.object.spec as { decisions?: Decision[] } | undefined)?.decisions;
  if (!Array.isArray(decisions)) return undefined;
  const before = [...((input.oldObject?.spec as { decisions?: Decision[] } | undefined)?.decisions ?? [])];
  return decisions.map((d) => {
    const i = before.findIndex((o) => sameJson(withoutStamp(o), withoutStamp(d)));
    if (i >= 0) {
      const [old] = before.splice(i, 1);
      return old!.appliedBy ? { ...withoutStamp(d), appliedBy: old!.appliedBy } : withoutStamp(d);
    }
    return { ...withoutStamp(d), appliedBy: input.user.username };
  });
}

/** The patch that stamps the object; empty when it already says exactly that. */
export function stampPatch(input: StampInput): JsonPatch {
  const patch: JsonPatch = [];
  const annotations = stampedAnnotations(input);
  if (!sameJson(annotations, input.object.metadata?.annotations ?? {}))
    patch.push(
      input.object.metadata ? { op: 'add', path: '/metadata/annotations', value: annotations } : { op: 'add', path: '/metadata', value: { annotations } },
    );
  const finalizers = input.object.metadata?.finalizers;
  if (input.operation === 'CREATE' && input.finalizer && !finalizers?.includes(input.finalizer))
    patch.push(
      finalizers
        ? { op: 'add', path: '/metadata/finalizers/-', value: input.finalizer }
        : { op: 'add', path: '/metadata/finalizers', value: [input.finalizer] },
    );
  if (input.kind === 'AccessReview') {
    const decisions = stampedDecisions(input);
    if (decisions && !sameJson(decisions, (input.object.spec as { decisions?: unknown }).decisions))
      patch.push({ op: 'replace', path: '/spec/decisions', value: decisions });
  }
  return patch;
}
