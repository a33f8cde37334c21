// What no Steward object can read, write, place anything in or grant to, whatever a Warehouse's
// accessPolicy says. Pure: the driver reads the facts about a role from the catalog; this decides.
// The CRDs refuse the names they can at admission (api/schema.ts); these checks run again in the
// reconcilers, which alone know which roles are superusers or Steward's own login.
import { ROLE_PREFIX } from './grants.ts';

/** Steward's own schema: the audit trail and the MaskedView hash keys. */
export const STEWARD_SCHEMA = 'steward';
/** How Steward marks the roles and views it owns (COMMENT ON ... IS 'managed by steward: ...'). */
export const MANAGED_COMMENT_PREFIX = 'managed by steward:';
/** Role OIDs below this are PostgreSQL's own: the bootstrap superuser and the predefined pg_* roles. */
const FIRST_NORMAL_OBJECT_ID = 16384;

/** Why a schema is out of reach, or undefined when it is not. */
export function reservedSchema(schema: string): string | undefined {
  if (schema === STEWARD_SCHEMA) return "schema steward is Steward's own (its audit trail and mask keys)";
  if (schema === 'information_schema' || schema.startsWith('pg_')) return `schema ${schema} is PostgreSQL's own`;
  return undefined;
}

/** What the catalog says about a role, as far as granting to it goes. */
export interface GranteeFacts {
  name: string;
  oid: number;
  superuser: boolean;
  bypassRls: boolean;
  createRole: boolean;
  comment: string | null;
  /** Steward's own login: the session's current_user or session_user. */
  isSteward: boolean;
}

/**
 * Why a role may never be a principal, a reader or an unmasked role, or undefined. Each of these
 * either holds every privilege already (so a grant to it proves nothing and a mask means nothing),
 * or passes what it gets on to roles another tenant or Steward itself controls.
 */
export function refusedRole(r: GranteeFacts): string | undefined {
  if (r.isSteward) return `role ${r.name} is Steward's own login`;
  if (r.superuser) return `role ${r.name} is a superuser`;
  if (r.oid < FIRST_NORMAL_OBJECT_ID || r.name.startsWith('pg_')) return `role ${r.name} is one of PostgreSQL's predefined roles`;
  if (r.name.startsWith(ROLE_PREFIX) || (r.comment ?? '').startsWith(MANAGED_COMMENT_PREFIX)) return `role ${r.name} is one of Steward's own roles`;
  if (r.bypassRls) return `role ${r.name} bypasses row-level security (BYPASSRLS)`;
  if (r.createRole) return `role ${r.name} can create roles (CREATEROLE)`;
  return undefined;
}

/**
 * Why a DatasetAccess may not have what it asks for on the tables of a schema, or undefined: on
 * Steward's own MaskedViews (owned by its stw_ roles) only SELECT is grantable. Anything more
 * (TRIGGER: an INSTEAD OF trigger on Steward's view) would let the principal change what Steward keeps.
 */
export function refusedTargets(
  schema: string,
  tables: readonly { name: string; owner: string }[],
  requested: readonly string[],
  privileges: readonly string[],
): string | undefined {
  const beyondSelect = privileges.filter((p) => p !== 'SELECT');
  if (!beyondSelect.length) return undefined;
  const all = requested.length === 1 && requested[0] === '*';
  const steward = tables.filter((t) => t.owner.startsWith(ROLE_PREFIX) && (all || requested.includes(t.name)));
  if (!steward.length) return undefined;
  return `${steward.map((t) => `${schema}.${t.name}`).join(', ')} ${steward.length === 1 ? 'is one' : 'are'} of Steward's own MaskedViews, on which only SELECT is grantable, not ${beyondSelect.join(', ')}`;
}
