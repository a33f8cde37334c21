// SecretRotation decisions, pure: the name of the second login of the alternating strategy, when the
// next rotation is due, which login a rotation changes, and whether a namespace may rotate a role at
// all. The driver reads the catalog and changes passwords; the controller glues the two.
import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import type { AccessRule } from '../api/warehouse.ts';
import { parseDuration } from '../runtime/duration.ts';
import { MANAGED_COMMENT_PREFIX } from './reserved.ts';
import { ROLE_PREFIX } from './grants.ts';
import { namespaceMatches, principalAllowed } from './policy.ts';

const MAX_ROLE_BYTES = 63;

/**
 * A grace period longer than a kubelet's sync period (1 minute) plus its Secret cache TTL (up to a
 * further minute), with room for a pipeline that holds a connection a few minutes: a mounted file
 * has the new credential well before the old one stops working.
 */
export const DEFAULT_GRACE_PERIOD = '10m';

/** The second login of the alternating strategy: stw_alt_<role>_<hash>, at most 63 bytes, one per role (roles are cluster-wide). */
export function alternateLoginName(role: string): string {
  const hash = createHash('sha256').update(role).digest('hex').slice(0, 8);
  const prefix = `${ROLE_PREFIX}alt_`;
  const room = MAX_ROLE_BYTES - prefix.length - hash.length - 1;
  return `${prefix}${role.slice(0, room)}_${hash}`;
}

/** The comment that marks the second login as Steward's, naming the SecretRotation that made it. */
export function alternateLoginComment(namespace: string, name: string, role: string): string {
  return `${MANAGED_COMMENT_PREFIX} SecretRotation ${namespace}/${name}: alternate login of ${role}`;
}

/**
 * The login a rotation sets a new password on: single, always the role; alternating, the one not
 * published now, and at the first rotation the alternate login, so that whoever uses the role's own
 * password today keeps it through the grace period.
 */
export function loginToRotate(strategy: 'alternating' | 'single', role: string, active: string | undefined): string {
  if (strategy === 'single') return role;
  return active === alternateLoginName(role) ? role : alternateLoginName(role);
}

/** When the next scheduled rotation is due: `every` after the last one (or creation), `cron` the next match after it (UTC). */
export function nextRotationAt(schedule: { every?: string; cron?: string }, last: Date | undefined, created: Date): Date {
  if (schedule.every) {
    // Never rotated: rotate now, so the targets hold a credential Steward knows.
    if (!last) return created;
    return new Date(last.getTime() + parseDuration(schedule.every));
  }
  if (!last) return created;
  return CronExpressionParser.parse(schedule.cron!, { currentDate: last, tz: 'UTC' }).next().toDate();
}

/**
 * Why this namespace may not rotate this role, or undefined. Rotating hands the namespace the role's
 * password, so a rule must name the role among its principals: a rule without principals (any role,
 * for a DatasetAccess) does not let a namespace take over every login in the Warehouse.
 */
export function rotationPolicyDenial(
  rules: readonly AccessRule[] | undefined,
  namespace: { name: string; labels: Record<string, string> },
  role: string,
): string | undefined {
  const applicable = (rules ?? []).filter((r) => namespaceMatches(r.namespaces, namespace));
  if (!applicable.length) return `no accessPolicy rule of the Warehouse covers namespace ${namespace.name} (default deny)`;
  const naming = applicable.filter((r) => r.principals !== undefined && principalAllowed(r, role));
  if (!naming.length)
    return `no accessPolicy rule for namespace ${namespace.name} names role ${role} in its principals (rotating a login hands its password to the namespace, so the rule must name it)`;
  return undefined;
}
