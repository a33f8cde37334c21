// Warehouse access policy: default deny. A request is allowed when one rule covers its namespace,
// its schema, every privilege it asks for and every role it names. Whatever the rules say, Steward's
// own schema and PostgreSQL's are refused (reserved.ts). Pure: the caller supplies the namespace's
// labels.
import type { AccessRule } from '../api/warehouse.ts';
import { parseDuration } from '../runtime/duration.ts';
import { reservedSchema } from './reserved.ts';

export interface AccessRequest {
  namespace: { name: string; labels: Record<string, string> };
  schema: string;
  privileges: readonly string[];
  /** The roles the request names (a principal; a view's readers and unmasked roles). */
  principals?: readonly string[];
}

/** A rule's principals: names, or patterns where * is any run of characters. Unset: any role. */
export function principalAllowed(rule: AccessRule, role: string): boolean {
  if (!rule.principals) return true;
  return rule.principals.some((p) =>
    new RegExp(
      `^${p
        .split('*')
        .map((part) => part.replace(/[^a-z0-9_]/g, ''))
        .join('.*')}$`,
    ).test(role),
  );
}

export type PolicyDecision = { allowed: true; rule: number; maxDurationMs?: number } | { allowed: false; message: string };

/** A rule's namespace selector (Warehouse and ObjectStore rules alike): every part given must match. */
export function namespaceMatches(selector: AccessRule['namespaces'], ns: AccessRequest['namespace']): boolean {
  const { matchNames, matchLabels } = selector;
  if (!matchNames && !matchLabels) return false; // refused at admission; never a wildcard here
  if (matchNames && !matchNames.includes(ns.name)) return false;
  if (matchLabels && !Object.entries(matchLabels).every(([k, v]) => ns.labels[k] === v)) return false;
  return true;
}

export function evaluatePolicy(rules: readonly AccessRule[] | undefined, request: AccessRequest): PolicyDecision {
  const reserved = reservedSchema(request.schema);
  if (reserved) return { allowed: false, message: `${reserved}: it is never grantable, whatever the accessPolicy says` };
  const applicable = (rules ?? []).map((rule, index) => ({ rule, index })).filter(({ rule }) => namespaceMatches(rule.namespaces, request.namespace));
  if (applicable.length === 0) {
    return { allowed: false, message: `no accessPolicy rule of the Warehouse covers namespace ${request.namespace.name} (default deny)` };
  }
  const forSchema = applicable.filter(({ rule }) => rule.schemas.includes(request.schema));
  if (forSchema.length === 0) {
    return {
      allowed: false,
      message: `namespace ${request.namespace.name} may not request schema ${request.schema}: its rules allow ${[...new Set(applicable.flatMap(({ rule }) => rule.schemas))].join(', ')}`,
    };
  }
  // Among the rules that allow every privilege, the most generous maxDuration wins (none = no cap).
  const allowing = forSchema.filter(({ rule }) => request.privileges.every((p) => (rule.privileges ?? ['SELECT']).includes(p as never)));
  if (allowing.length === 0) {
    const allowed = [...new Set(forSchema.flatMap(({ rule }) => rule.privileges ?? ['SELECT']))];
    const extra = request.privileges.filter((p) => !allowed.includes(p as never));
    return {
      allowed: false,
      message: `namespace ${request.namespace.name} may not request ${extra.join(', ')} on schema ${request.schema}: allowed are ${allowed.join(', ')}`,
    };
  }
  const principals = request.principals ?? [];
  const permitted = allowing.filter(({ rule }) => principals.every((p) => principalAllowed(rule, p)));
  if (permitted.length === 0) {
    const outside = principals.filter((p) => !allowing.some(({ rule }) => principalAllowed(rule, p)));
    const named = outside.length ? outside : principals;
    const patterns = [...new Set(allowing.flatMap(({ rule }) => rule.principals ?? []))];
    return {
      allowed: false,
      message:
        `namespace ${request.namespace.name} may not name ${named.length === 1 ? 'role' : 'roles'} ${named.join(', ')} on schema ${request.schema}: ` +
        (outside.length ? `its rules allow ${patterns.join(', ')}` : 'no single rule allows them all'),
    };
  }
  const uncapped = permitted.find(({ rule }) => !rule.maxDuration);
  if (uncapped) return { allowed: true, rule: uncapped.index };
  const best = permitted.map(({ rule, index }) => ({ index, ms: parseDuration(rule.maxDuration!) })).sort((a, b) => b.ms - a.ms)[0]!;
  return { allowed: true, rule: best.index, maxDurationMs: best.ms };
}

export interface ViewRequest {
  namespace: AccessRequest['namespace'];
  viewSchema: string;
  sourceSchemas: readonly string[];
  /** Readers and unmasked roles. */
  roles: readonly string[];
}

/**
 * A MaskedView reads its sources and grants SELECT on a view in its own schema, so the namespace
 * needs SELECT, for every role the view names, on each of those schemas: its readers read the
 * sources' data through it (masked), its unmasked roles read it raw. Returns why not, or undefined.
 */
export function viewPolicyDenial(rules: readonly AccessRule[] | undefined, request: ViewRequest): string | undefined {
  const schemas = [request.viewSchema, ...request.sourceSchemas.filter((s) => s !== request.viewSchema)];
  for (const [i, schema] of [...new Set(schemas)].entries()) {
    const decision = evaluatePolicy(rules, { namespace: request.namespace, schema, privileges: ['SELECT'], principals: request.roles });
    if (!decision.allowed) return `${i === 0 ? "the view's schema" : 'a source schema'}: ${decision.message}`;
  }
  return undefined;
}
