// Warehouse access policy: default deny. A request is allowed when one rule covers its namespace,
// its schema and every privilege it asks for. Pure: the caller supplies the namespace's labels.
import type { AccessRule } from '../api/warehouse.ts';
import { parseDuration } from '../runtime/duration.ts';

export interface AccessRequest {
  namespace: { name: string; labels: Record<string, string> };
  schema: string;
  privileges: readonly string[];
}

export type PolicyDecision =
  | { allowed: true; rule: number; maxDurationMs?: number }
  | { allowed: false; message: string };

function namespaceMatches(rule: AccessRule, ns: AccessRequest['namespace']): boolean {
  const { matchNames, matchLabels } = rule.namespaces;
  if (!matchNames && !matchLabels) return false; // refused at admission; never a wildcard here
  if (matchNames && !matchNames.includes(ns.name)) return false;
  if (matchLabels && !Object.entries(matchLabels).every(([k, v]) => ns.labels[k] === v)) return false;
  return true;
}

export function evaluatePolicy(rules: readonly AccessRule[] | undefined, request: AccessRequest): PolicyDecision {
  const applicable = (rules ?? []).map((rule, index) => ({ rule, index })).filter(({ rule }) => namespaceMatches(rule, request.namespace));
  if (applicable.length === 0) {
    return { allowed: false, message: `no accessPolicy rule of the Warehouse covers namespace ${request.namespace.name} (default deny)` };
  }
  const forSchema = applicable.filter(({ rule }) => rule.schemas.includes(request.schema));
  if (forSchema.length === 0) {
    return { allowed: false, message: `namespace ${request.namespace.name} may not request schema ${request.schema}: its rules allow ${[...new Set(applicable.flatMap(({ rule }) => rule.schemas))].join(', ')}` };
  }
  // Among the rules that allow every privilege, the most generous maxDuration wins (none = no cap).
  const allowing = forSchema.filter(({ rule }) => request.privileges.every((p) => (rule.privileges ?? ['SELECT']).includes(p as never)));
  if (allowing.length === 0) {
    const allowed = [...new Set(forSchema.flatMap(({ rule }) => rule.privileges ?? ['SELECT']))];
    const extra = request.privileges.filter((p) => !allowed.includes(p as never));
    return { allowed: false, message: `namespace ${request.namespace.name} may not request ${extra.join(', ')} on schema ${request.schema}: allowed are ${allowed.join(', ')}` };
  }
  const uncapped = allowing.find(({ rule }) => !rule.maxDuration);
  if (uncapped) return { allowed: true, rule: uncapped.index };
  const best = allowing
    .map(({ rule, index }) => ({ index, ms: parseDuration(rule.maxDuration!) }))
    .sort((a, b) => b.ms - a.ms)[0]!;
  return { allowed: true, rule: best.index, maxDurationMs: best.ms };
}
