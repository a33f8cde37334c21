// The IAM side of an S3 DatasetAccess, pure: the inline policy Steward writes on the principal's
// role, its name, how two policies are compared (by meaning, never as text), the role policy size
// quota, and the ObjectStore's accessPolicy (default deny).
//
// The policy is written the way IAM evaluates it. s3:prefix is a key of ListBucket requests only,
// and a condition on a key a request does not carry is false: a statement that puts GetObject and
// ListBucket together under `StringLike s3:prefix` (the guide's example) denies GetObject. So:
// ListBucket on the bucket's ARN, limited to the prefix by s3:prefix; the object actions on the
// prefix's objects' ARN; and `DateLessThan aws:CurrentTime` on every statement, so that AWS itself
// refuses at the deadline even if Steward is down (Steward deletes the policy then as well).
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { S3Access, StoreAccessRule } from '../api/objectstore.ts';
import { parseDuration } from '../runtime/duration.ts';
import { namespaceMatches, type PolicyDecision } from './policy.ts';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Principal?: unknown;
  Condition?: Record<string, Record<string, string | string[] | boolean>>;
}

export interface PolicyDocument {
  Version: string;
  Statement: PolicyStatement | PolicyStatement[];
}

export interface S3Grant {
  bucket: string;
  /** "" (the whole bucket) or segments ending in "/". */
  prefix: string;
  access: S3Access;
  /** RFC 3339; undefined: no expiry. */
  expiresAt?: string;
  /** The bucket's region: it picks the ARN's partition (aws, aws-cn, aws-us-gov). */
  region: string;
}

/** IAM's quota for all inline policies of one role together, in characters without white space. */
export const ROLE_INLINE_POLICY_QUOTA = 10_240;

export const READ_ACTIONS = ['s3:GetObject'] as const;
export const WRITE_ACTIONS = ['s3:PutObject', 's3:DeleteObject'] as const;

export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/**
 * The inline policy's name on the role: deterministic from the access's namespace and name, within
 * IAM's 128 characters of [\w+=,.@-]. A '.' cannot be in a namespace, so steward.<ns>.<name> is
 * unambiguous; a name too long keeps its start and a hash of the whole.
 */
export function inlinePolicyName(namespace: string, name: string): string {
  const full = `steward.${namespace}.${name}`;
  if (full.length <= 128) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 12);
  return `${full.slice(0, 128 - hash.length - 1)}-${hash}`;
}

/** A write refused before it was made: the role's inline policies would pass ROLE_INLINE_POLICY_QUOTA. */
export class PolicyQuotaExceeded extends Error {}

/** The statements an access needs, and nothing more. */
export function accessPolicyDocument(g: S3Grant): PolicyDocument {
  const arn = `arn:${partitionOf(g.region)}:s3:::${g.bucket}`;
  const until: NonNullable<PolicyStatement['Condition']> = g.expiresAt ? { DateLessThan: { 'aws:CurrentTime': g.expiresAt } } : {};
  const objects = `${arn}/${g.prefix}*`;
  const statements: PolicyStatement[] = [
    {
      Sid: 'ListPrefix',
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: arn,
      // The whole bucket: listing its root carries no s3:prefix, so no prefix condition.
      ...(g.prefix || g.expiresAt ? { Condition: { ...(g.prefix ? { StringLike: { 's3:prefix': `${g.prefix}*` } } : {}), ...until } } : {}),
    },
    { Sid: 'ReadObjects', Effect: 'Allow', Action: [...READ_ACTIONS], Resource: objects, ...(g.expiresAt ? { Condition: until } : {}) },
  ];
  if (g.access === 'readWrite') {
    statements.push({ Sid: 'WriteObjects', Effect: 'Allow', Action: [...WRITE_ACTIONS], Resource: objects, ...(g.expiresAt ? { Condition: until } : {}) });
  }
  return { Version: '2012-10-17', Statement: statements };
}

/** A policy as IAM returns it (URL-encoded JSON, in GetRolePolicy's raw answer) or as a string or object. */
export function parsePolicy(text: string | PolicyDocument): PolicyDocument {
  if (typeof text !== 'string') return text;
  const trimmed = text.trim();
  return JSON.parse(trimmed.startsWith('%7B') || trimmed.startsWith('%7b') ? decodeURIComponent(trimmed) : trimmed) as PolicyDocument;
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const sortedStrings = (v: unknown) => list(v).map(String).sort();

/**
 * A policy in a form where equal meaning is equal value: scalars and one-element lists alike,
 * actions lower case (IAM matches them case-insensitively), lists and statements sorted, condition
 * values as strings. Sids are kept (they change nothing, but Steward writes its own).
 */
export function normalizePolicy(doc: PolicyDocument): unknown {
  const statements = list(doc.Statement).map((raw) => {
    const s = raw as PolicyStatement;
    const out: Record<string, unknown> = { Effect: s.Effect };
    if (s.Sid !== undefined) out.Sid = s.Sid;
    if (s.Action !== undefined) out.Action = sortedStrings(s.Action).map((a) => a.toLowerCase());
    if (s.NotAction !== undefined) out.NotAction = sortedStrings(s.NotAction).map((a) => a.toLowerCase());
    if (s.Resource !== undefined) out.Resource = sortedStrings(s.Resource);
    if (s.NotResource !== undefined) out.NotResource = sortedStrings(s.NotResource);
    if (s.Principal !== undefined) out.Principal = s.Principal;
    if (s.Condition !== undefined) {
      out.Condition = Object.fromEntries(
        Object.entries(s.Condition)
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([op, keys]) => [
            op,
            Object.fromEntries(
              Object.entries(keys)
                .map(([k, v]) => [k.toLowerCase(), sortedStrings(v)] as const)
                .sort(([a], [b]) => (a < b ? -1 : 1)),
            ),
          ]),
      );
    }
    return out;
  });
  return { Version: doc.Version, Statement: statements.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) };
}

export function samePolicy(a: PolicyDocument, b: PolicyDocument): boolean {
  return isDeepStrictEqual(normalizePolicy(a), normalizePolicy(b));
}

/** How IAM counts a policy against the quota: its characters without white space. */
export function policySize(doc: PolicyDocument | string): number {
  return (typeof doc === 'string' ? doc : JSON.stringify(doc)).replace(/\s/g, '').length;
}

/** An IAM role's name from a name or an ARN (arn:aws:iam::123456789012:role/path/name). */
export function roleNameOf(nameOrArn: string): string {
  return nameOrArn.startsWith('arn:') ? nameOrArn.slice(nameOrArn.lastIndexOf('/') + 1) : nameOrArn;
}

export interface StoreAccessRequest {
  namespace: { name: string; labels: Record<string, string> };
  prefix: string;
  access: S3Access;
  /** The IAM role, by name or ARN. */
  principal: string;
}

const patternMatches = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  ).test(value);

/** An ObjectStore's accessPolicy: default deny; one rule must cover the namespace, the prefix, the access and the role. */
export function evaluateStorePolicy(rules: readonly StoreAccessRule[] | undefined, r: StoreAccessRequest): PolicyDecision {
  const applicable = (rules ?? []).map((rule, index) => ({ rule, index })).filter(({ rule }) => namespaceMatches(rule.namespaces, r.namespace));
  if (!applicable.length) return { allowed: false, message: `no accessPolicy rule of the ObjectStore covers namespace ${r.namespace.name} (default deny)` };
  const forPrefix = applicable.filter(({ rule }) => rule.prefixes.some((p) => r.prefix.startsWith(p)));
  if (!forPrefix.length) {
    const allowed = [...new Set(applicable.flatMap(({ rule }) => rule.prefixes))].map((p) => JSON.stringify(p)).join(', ');
    return {
      allowed: false,
      message: `namespace ${r.namespace.name} may not request prefix ${JSON.stringify(r.prefix)}: its rules allow ${allowed} and what is under them`,
    };
  }
  // readWrite is read and more: a rule that allows it allows a request for read too.
  const accessOf = (rule: StoreAccessRule) => rule.access ?? ['read'];
  const covers = (rule: StoreAccessRule) => accessOf(rule).includes(r.access) || (r.access === 'read' && accessOf(rule).includes('readWrite'));
  const forAccess = forPrefix.filter(({ rule }) => covers(rule));
  if (!forAccess.length) {
    const allowed = [...new Set(forPrefix.flatMap(({ rule }) => accessOf(rule)))].join(', ');
    return {
      allowed: false,
      message: `namespace ${r.namespace.name} may not request ${r.access} on prefix ${JSON.stringify(r.prefix)}: allowed is ${allowed}`,
    };
  }
  const role = roleNameOf(r.principal);
  const permitted = forAccess.filter(({ rule }) => !rule.principals || rule.principals.some((p) => patternMatches(p, role)));
  if (!permitted.length) {
    const patterns = [...new Set(forAccess.flatMap(({ rule }) => rule.principals ?? []))];
    return {
      allowed: false,
      message: `namespace ${r.namespace.name} may not name IAM role ${role} on prefix ${JSON.stringify(r.prefix)}: its rules allow ${patterns.join(', ')}`,
    };
  }
  const uncapped = permitted.find(({ rule }) => !rule.maxDuration);
  if (uncapped) return { allowed: true, rule: uncapped.index };
  const best = permitted.map(({ rule, index }) => ({ index, ms: parseDuration(rule.maxDuration!) })).sort((a, b) => b.ms - a.ms)[0]!;
  return { allowed: true, rule: best.index, maxDurationMs: best.ms };
}

/** What IAM holds for one S3 access: the principal's role, Steward's policy on it, and the policies that are not Steward's. */
export interface S3AccessObservation {
  roleExists: boolean;
  /** The role's ARN as IAM reports it (account and path included). */
  roleArn?: string;
  /** Steward's inline policy for this access, parsed; undefined when there is none. */
  policy: PolicyDocument | undefined;
  /** The role's other inline policies (by name) and attached policies (by ARN): never touched. */
  otherPolicies: string[];
  /** When the role last made an AWS request, as IAM records it (RoleLastUsed; IAM tracks it with a delay of hours). */
  lastUsedAt?: string;
}

export type S3AccessPlan =
  | { kind: 'none' }
  | { kind: 'put'; document: PolicyDocument; drift?: string }
  | { kind: 'delete'; why: 'expired' | 'denied' | 'deleted' };

/**
 * From an observation and what should hold (a document, or nothing once expired or denied): put the
 * document when IAM's differs in meaning, delete Steward's policy when nothing should hold, else
 * nothing (an idle resync writes nothing). `convergedBefore`: a difference found after the access was
 * Ready is drift, someone else's change, and is said so.
 */
export function planS3Access(
  o: S3AccessObservation,
  desired: PolicyDocument | undefined,
  why: 'expired' | 'denied' | 'deleted',
  convergedBefore: boolean,
): S3AccessPlan {
  if (!desired) return o.policy ? { kind: 'delete', why } : { kind: 'none' };
  if (!o.roleExists) return { kind: 'none' };
  if (o.policy && samePolicy(o.policy, desired)) return { kind: 'none' };
  const drift = convergedBefore ? (o.policy ? "Steward's inline policy was changed" : "Steward's inline policy was deleted") : undefined;
  return { kind: 'put', document: desired, ...(drift ? { drift } : {}) };
}

/**
 * Why the role IAM found is not the one the spec names, or undefined. Steward writes in its own
 * account, where a role is found by name: an ARN of another account (or another path) names a
 * different role, which must not receive the policy meant for it.
 */
export function principalMismatch(named: string, o: S3AccessObservation): string | undefined {
  if (!named.startsWith('arn:') || !o.roleArn || o.roleArn === named) return undefined;
  return `the spec names IAM role ${named}, but the role of that name in Steward's account is ${o.roleArn}; Steward writes policies only on roles of its own account`;
}

/**
 * The IAM role Steward itself runs as, from its caller identity (arn:aws:sts::123456789012:assumed-role/NAME/session,
 * or an IAM role ARN); undefined for a user. Never grantable: a policy there would widen Steward's own
 * access, and count against the quota of the role that holds Steward's own permissions.
 */
export function stewardRoleName(callerArn: string): string | undefined {
  const assumed = /^arn:aws[a-z-]*:sts::\d{12}:assumed-role\/([^/]+)\//.exec(callerArn);
  if (assumed) return assumed[1];
  const role = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[^/]+\/)*([^/]+)$/.exec(callerArn);
  return role?.[1];
}
