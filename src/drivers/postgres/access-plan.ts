// What one DatasetAccess would change in the warehouse, from an observation of the catalog. Shared
// by the reconciler (which applies it) and `steward plan` (which prints it).
import {
  EMPTY_STATE,
  desiredState,
  describeDiff,
  diffGrants,
  isAllTables,
  isEmptyDiff,
  lockKeys,
  usageRoleComment,
  usageRoleName,
  type GrantDiff,
  type LockKey,
} from '../../governance/grants.ts';
import { createRoleStatements, diffStatements, hardenRoleStatement, usageRoleStatements, type Observation, type Statement } from './grants.ts';

export interface AccessPlanInput {
  database: string;
  groupRole: string;
  comment: string;
  schema: string;
  tables: readonly string[];
  privileges: readonly string[];
  principal: string;
  expired: boolean;
  /** The access was Ready for its current generation: any difference now is drift. */
  convergedBefore: boolean;
}

export interface AccessPlan {
  /** Why nothing may be done: the role is someone else's, the schema or tables are missing. */
  blocked?: { reason: 'RoleConflict' | 'SchemaNotFound' | 'TableNotFound'; message: string };
  principalMissing: boolean;
  /** Revoking the principal at the deadline: the expiry doing its job. */
  expiryStatements: Statement[];
  statements: Statement[];
  /** What was found changed behind Steward's back, when it had converged before. */
  drift?: string[];
  locks: LockKey[];
}

export function planAccess(o: Observation, i: AccessPlanInput): AccessPlan {
  const none = { principalMissing: !o.principalExists, expiryStatements: [], statements: [], locks: [] };
  if (o.role.exists && o.role.comment !== i.comment) {
    return {
      ...none,
      blocked: {
        reason: 'RoleConflict',
        message: `role ${i.groupRole} exists but Steward did not create it (its comment is ${JSON.stringify(o.role.comment)}); rename or drop that role`,
      },
    };
  }
  const usageRole = usageRoleName(i.database, i.schema);
  if (o.usageRole.exists && o.usageRole.comment !== usageRoleComment(i.database, i.schema)) {
    return { ...none, blocked: { reason: 'RoleConflict', message: `role ${usageRole} exists but Steward did not create it; rename or drop that role` } };
  }
  if (!o.schemaExists) return { ...none, blocked: { reason: 'SchemaNotFound', message: `schema ${i.schema} does not exist` } };
  const missing = isAllTables(i.tables) ? [] : i.tables.filter((t) => !o.tables.some((x) => x.name === t));
  if (missing.length)
    return { ...none, blocked: { reason: 'TableNotFound', message: `table ${missing.map((t) => `${i.schema}.${t}`).join(', ')} does not exist` } };

  const member = i.expired || !o.principalExists ? undefined : i.principal;
  const desired = desiredState({ schema: i.schema, tables: i.tables, existingTables: o.tables, privileges: i.privileges, member, usageRole });
  const usage = usageRoleStatements(o.usageRole, i.schema, usageRole, usageRoleComment(i.database, i.schema));
  const diff: GrantDiff = diffGrants(desired, o.role.exists ? o.state : EMPTY_STATE);
  const expiring = i.expired && diff.removeMembers.includes(i.principal);
  const rest: GrantDiff = { ...diff, removeMembers: diff.removeMembers.filter((m) => !(expiring && m === i.principal)) };
  const attrs = o.role.dangerousAttributes;
  const drifted = i.convergedBefore && o.role.exists && (!isEmptyDiff(rest) || attrs.length > 0);
  return {
    principalMissing: !o.principalExists,
    expiryStatements: expiring ? diffStatements(i.groupRole, { ...diffGrants(EMPTY_STATE, EMPTY_STATE), removeMembers: [i.principal] }) : [],
    statements: [
      ...(o.role.exists ? [] : createRoleStatements(i.groupRole, i.comment)),
      ...(attrs.length ? [hardenRoleStatement(i.groupRole)] : []),
      ...diffStatements(i.groupRole, rest, usage),
    ],
    drift: drifted ? [...describeDiff(rest), ...(attrs.length ? [`role attributes ${attrs.join(', ')}`] : [])] : undefined,
    locks: [
      ...lockKeys(i.groupRole, diff),
      ...(o.role.exists ? [] : [{ kind: 'role', role: i.groupRole } as const]),
      ...(usage.length ? [{ kind: 'role', role: usageRole } as const] : []),
      ...(o.usageRole.hasUsage ? [] : [{ kind: 'schema', schema: i.schema } as const]),
    ],
  };
}
