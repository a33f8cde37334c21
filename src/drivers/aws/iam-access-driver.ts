// The IAM driver of an S3 DatasetAccess: one inline policy on the principal's role, named from the
// access, holding exactly the statements governance/s3-policy.ts generates. Observed in four reads
// (the role, its inline and attached policies, Steward's policy), written with PutRolePolicy only
// when IAM's copy differs in meaning, read back before success is reported, removed with
// DeleteRolePolicy. Steward never creates, changes or deletes anything else on the role. IAM has no
// transactions: every call is audited as it is made, through the same audit scope as PostgreSQL.
import {
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import type { AuditScope, AuditSink, ScopedInput } from '../../audit/sink.ts';
import {
  PolicyQuotaExceeded,
  ROLE_INLINE_POLICY_QUOTA,
  parsePolicy,
  planS3Access,
  policySize,
  samePolicy,
  type S3AccessObservation,
  type S3AccessPlan,
} from '../../governance/s3-policy.ts';
import type { Applied, Driver } from '../driver.ts';

export interface S3AccessTarget {
  /** The principal's IAM role, by name. */
  role: string;
  /** Steward's inline policy for this access. */
  policyName: string;
  /** For audit records: the bucket and prefix. */
  resource: string;
}

const isNoSuchEntity = (err: unknown) => (err as { name?: string }).name === 'NoSuchEntityException' || (err as { name?: string }).name === 'NoSuchEntity';

export class IamAccessDriver implements Driver<S3AccessTarget, S3AccessObservation, S3AccessPlan, Applied> {
  private readonly iam: IAMClient;
  private readonly sinks: AuditSink[];

  /** `sinks`: where the audit records go besides the log (the audit Warehouse's table, when the ObjectStore names one). */
  constructor(iam: IAMClient, sinks: AuditSink[]) {
    this.iam = iam;
    this.sinks = sinks;
  }

  async observe(t: S3AccessTarget): Promise<S3AccessObservation> {
    let roleArn: string | undefined;
    let lastUsedAt: string | undefined;
    try {
      const role = (await this.iam.send(new GetRoleCommand({ RoleName: t.role }))).Role;
      roleArn = role?.Arn;
      lastUsedAt = role?.RoleLastUsed?.LastUsedDate?.toISOString();
    } catch (err) {
      if (isNoSuchEntity(err)) return { roleExists: false, policy: undefined, otherPolicies: [] };
      throw err;
    }
    const [inline, attached] = await Promise.all([this.inlinePolicyNames(t.role), this.attachedPolicyArns(t.role)]);
    const policy = inline.includes(t.policyName) ? await this.policyText(t.role, t.policyName) : undefined;
    return {
      roleExists: true,
      roleArn,
      policy: policy === undefined ? undefined : parsePolicy(policy),
      otherPolicies: [...inline.filter((n) => n !== t.policyName), ...attached].sort(),
      ...(lastUsedAt ? { lastUsedAt } : {}),
    };
  }

  async apply(t: S3AccessTarget, basis: S3AccessObservation, plan: S3AccessPlan, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    if (plan.kind === 'none') {
      if (notes.length) await audit.recordMany(notes, ...this.sinks);
      return { ran: [] };
    }
    if (plan.kind === 'delete') {
      await this.deletePolicy(t);
      const ran = [`DeleteRolePolicy ${t.role} ${t.policyName}`];
      await audit.recordMany([...notes, this.record('iam.policy.delete', t, ran[0]!, { why: plan.why })], ...this.sinks);
      return { ran };
    }
    const text = JSON.stringify(plan.document);
    // IAM's quota counts every inline policy of the role together: the others, and this one as it will be.
    const others = basis.otherPolicies.filter((p) => !p.startsWith('arn:'));
    const sizes = await Promise.all(others.map(async (name) => policySize((await this.policyText(t.role, name)) ?? '')));
    const total = sizes.reduce((a, b) => a + b, 0) + policySize(text);
    if (total > ROLE_INLINE_POLICY_QUOTA) {
      throw new PolicyQuotaExceeded(
        `role ${t.role}'s inline policies would total ${total} characters with this one, over IAM's quota of ${ROLE_INLINE_POLICY_QUOTA}; nothing was written. Remove inline policies from the role, or move them to managed policies`,
      );
    }
    await this.iam.send(new PutRolePolicyCommand({ RoleName: t.role, PolicyName: t.policyName, PolicyDocument: text }));
    const ran = [`PutRolePolicy ${t.role} ${t.policyName} ${text}`];
    // Read it back: success is what IAM holds, not what was sent.
    const back = await this.policyText(t.role, t.policyName);
    if (back === undefined || !samePolicy(parsePolicy(back), plan.document))
      throw new Error(`IAM does not hold the policy Steward wrote on role ${t.role} (${t.policyName}); retrying`);
    const action = plan.drift ? 'drift_corrected' : 'iam.policy.put';
    await audit.recordMany([...notes, this.record(action, t, ran[0]!, plan.drift ? { found: [plan.drift], correction: 'iam.policy.put' } : {})], ...this.sinks);
    return { ran };
  }

  async remove(t: S3AccessTarget, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    const basis = await this.observe(t);
    return this.apply(t, basis, planS3Access(basis, undefined, 'deleted', false), audit, notes);
  }

  /**
   * Removes a policy on the role that is not Steward's, which an AccessReview's reviewer decided to
   * revoke: an inline policy is deleted, an attached one (an ARN) detached. Audited as remediation.
   */
  async removeForeignPolicy(role: string, policy: string, audit: AuditScope, details: Record<string, unknown>, sinks: AuditSink[] = this.sinks): Promise<void> {
    const call = policy.startsWith('arn:') ? `DetachRolePolicy ${role} ${policy}` : `DeleteRolePolicy ${role} ${policy}`;
    try {
      if (policy.startsWith('arn:')) await this.iam.send(new DetachRolePolicyCommand({ RoleName: role, PolicyArn: policy }));
      else await this.iam.send(new DeleteRolePolicyCommand({ RoleName: role, PolicyName: policy }));
    } catch (err) {
      if (!isNoSuchEntity(err)) throw err;
    }
    await audit.recordMany(
      [{ action: 'review.remediate', resource: `iam:role/${role}/policy/${policy}`, outcome: 'success', details: { ...details, call } }],
      ...sinks,
    );
  }

  private record(action: string, t: S3AccessTarget, call: string, details: Record<string, unknown>): ScopedInput {
    return { action, resource: `iam:role/${t.role}/policy/${t.policyName}`, outcome: 'success', details: { call, dataset: t.resource, ...details } };
  }

  private async deletePolicy(t: S3AccessTarget): Promise<void> {
    try {
      await this.iam.send(new DeleteRolePolicyCommand({ RoleName: t.role, PolicyName: t.policyName }));
    } catch (err) {
      if (!isNoSuchEntity(err)) throw err;
    }
  }

  private async policyText(role: string, name: string): Promise<string | undefined> {
    try {
      return (await this.iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: name }))).PolicyDocument;
    } catch (err) {
      if (isNoSuchEntity(err)) return undefined;
      throw err;
    }
  }

  private inlinePolicyNames(role: string): Promise<string[]> {
    return allPages(async (Marker) => {
      const page = await this.iam.send(new ListRolePoliciesCommand({ RoleName: role, Marker }));
      return { items: page.PolicyNames ?? [], next: page.IsTruncated ? page.Marker : undefined };
    });
  }

  private attachedPolicyArns(role: string): Promise<string[]> {
    return allPages(async (Marker) => {
      const page = await this.iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role, Marker }));
      return { items: (page.AttachedPolicies ?? []).map((p) => p.PolicyArn ?? p.PolicyName ?? ''), next: page.IsTruncated ? page.Marker : undefined };
    });
  }
}

/** Every item of an IAM listing, page after page (IAM pages by Marker). */
async function allPages<T>(page: (marker: string | undefined) => Promise<{ items: T[]; next: string | undefined }>): Promise<T[]> {
  const all: T[] = [];
  let marker: string | undefined;
  do {
    const { items, next } = await page(marker);
    all.push(...items);
    marker = next;
  } while (marker);
  return all;
}
