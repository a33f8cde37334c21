// The generated IAM policies, proven with a real IAM policy evaluator (@cloud-copilot/iam-simulate,
// AGPL-3.0: a devDependency of the tests, never imported by src/). moto stores policies but
// ignores their conditions, so what a policy allows is proven here, not by moto accepting a request.
import { runSimulation, type Simulation } from '@cloud-copilot/iam-simulate';
import { describe, expect, it } from 'vitest';
import { deniesInsecureTransport } from '../../src/drivers/aws/bucket.ts';
import {
  ROLE_INLINE_POLICY_QUOTA,
  accessPolicyDocument,
  evaluateStorePolicy,
  inlinePolicyName,
  principalMismatch,
  stewardRoleName,
  normalizePolicy,
  parsePolicy,
  policySize,
  samePolicy,
  type PolicyDocument,
} from '../../src/governance/s3-policy.ts';

const BUCKET = 'company-curated';
const EXPIRY = '2027-01-31T00:00:00Z';
const BEFORE = '2027-01-30T23:59:59Z';
const AFTER = '2027-01-31T00:00:01Z';

async function decide(policy: PolicyDocument, action: string, resource: string, context: Record<string, string>): Promise<string> {
  const simulation: Simulation = {
    identityPolicies: [{ name: 'steward', policy }],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    request: {
      action,
      principal: 'arn:aws:iam::123456789012:role/data-scientist',
      resource: { resource, accountId: '123456789012' },
      contextVariables: context,
    },
  };
  const r = await runSimulation(simulation, {});
  if (r.resultType === 'error') throw new Error(JSON.stringify(r.errors));
  return r.overallResult;
}

const object = (key: string) => `arn:aws:s3:::${BUCKET}/${key}`;
const bucket = `arn:aws:s3:::${BUCKET}`;

describe('the inline policy of an S3 DatasetAccess, evaluated as IAM does', () => {
  const cases: [string, 'read' | 'readWrite', string, string, Record<string, string>, 'Allowed' | 'ImplicitlyDenied'][] = [];
  for (const access of ['read', 'readWrite'] as const) {
    for (const [when, time] of [
      ['before expiry', BEFORE],
      ['after expiry', AFTER],
    ] as const) {
      const live = time === BEFORE;
      const write = access === 'readWrite' && live;
      cases.push(
        [when, access, 's3:GetObject', object('analytics/2026/part-0.parquet'), { 'aws:CurrentTime': time }, live ? 'Allowed' : 'ImplicitlyDenied'],
        [when, access, 's3:GetObject', object('raw/customers.csv'), { 'aws:CurrentTime': time }, 'ImplicitlyDenied'],
        [when, access, 's3:GetObject', object('analytics-old/x'), { 'aws:CurrentTime': time }, 'ImplicitlyDenied'],
        [when, access, 's3:PutObject', object('analytics/new.parquet'), { 'aws:CurrentTime': time }, write ? 'Allowed' : 'ImplicitlyDenied'],
        [when, access, 's3:PutObject', object('raw/new.parquet'), { 'aws:CurrentTime': time }, 'ImplicitlyDenied'],
        [when, access, 's3:DeleteObject', object('analytics/old.parquet'), { 'aws:CurrentTime': time }, write ? 'Allowed' : 'ImplicitlyDenied'],
        [when, access, 's3:DeleteObject', object('raw/old.parquet'), { 'aws:CurrentTime': time }, 'ImplicitlyDenied'],
        [when, access, 's3:ListBucket', bucket, { 'aws:CurrentTime': time, 's3:prefix': 'analytics/' }, live ? 'Allowed' : 'ImplicitlyDenied'],
        [when, access, 's3:ListBucket', bucket, { 'aws:CurrentTime': time, 's3:prefix': 'analytics/2026/' }, live ? 'Allowed' : 'ImplicitlyDenied'],
        [when, access, 's3:ListBucket', bucket, { 'aws:CurrentTime': time, 's3:prefix': 'raw/' }, 'ImplicitlyDenied'],
        [when, access, 's3:ListBucket', bucket, { 'aws:CurrentTime': time, 's3:prefix': 'analytics' }, 'ImplicitlyDenied'],
        // Listing the bucket's root carries no s3:prefix at all.
        [when, access, 's3:ListBucket', bucket, { 'aws:CurrentTime': time }, 'ImplicitlyDenied'],
      );
    }
  }
  it.each(cases)('%s, %s: %s %s %j -> %s', async (_when, access, action, resource, context, expected) => {
    const policy = accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access, expiresAt: EXPIRY, region: 'us-east-1' });
    expect(await decide(policy, action, resource, context)).toBe(expected);
  });

  it("the guide's one-statement policy lets the data scientist list and not read (s3:prefix is on ListBucket requests only)", async () => {
    const guide: PolicyDocument = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['s3:GetObject', 's3:ListBucket'],
          Resource: [bucket, `${bucket}/analytics/*`],
          Condition: { StringLike: { 's3:prefix': ['analytics/*'] } },
        },
      ],
    };
    expect(await decide(guide, 's3:ListBucket', bucket, { 's3:prefix': 'analytics/' })).toBe('Allowed');
    expect(await decide(guide, 's3:GetObject', object('analytics/part-0.parquet'), {})).toBe('ImplicitlyDenied');
    // Steward's form reads what the guide meant.
    const steward = accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access: 'read', region: 'us-east-1' });
    expect(await decide(steward, 's3:GetObject', object('analytics/part-0.parquet'), {})).toBe('Allowed');
  });

  it('the whole bucket ("" prefix) lists its root and reads every object; no expiry means no time condition', async () => {
    const policy = accessPolicyDocument({ bucket: BUCKET, prefix: '', access: 'read', region: 'us-east-1' });
    expect(await decide(policy, 's3:ListBucket', bucket, {})).toBe('Allowed');
    expect(await decide(policy, 's3:GetObject', object('raw/customers.csv'), {})).toBe('Allowed');
    expect(await decide(policy, 's3:PutObject', object('raw/customers.csv'), {})).toBe('ImplicitlyDenied');
    expect(JSON.stringify(policy)).not.toContain('aws:CurrentTime');
  });

  it("uses the bucket's partition in ARNs", () => {
    expect(JSON.stringify(accessPolicyDocument({ bucket: BUCKET, prefix: 'a/', access: 'read', region: 'cn-north-1' }))).toContain('arn:aws-cn:s3:::');
    expect(JSON.stringify(accessPolicyDocument({ bucket: BUCKET, prefix: 'a/', access: 'read', region: 'us-gov-west-1' }))).toContain('arn:aws-us-gov:s3:::');
  });
});

describe('comparing policies by meaning', () => {
  const ours = accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access: 'readWrite', expiresAt: EXPIRY, region: 'us-east-1' });

  it('equal across scalars and one-element lists, list and statement order, key case, and URL encoding', () => {
    const statements = (ours.Statement as unknown as Record<string, unknown>[]).map((s) => ({
      ...s,
      Action: Array.isArray(s.Action) ? [...(s.Action as string[])].reverse().map((a) => a.toUpperCase()) : [s.Action],
      Resource: [s.Resource],
    }));
    const reordered = { Version: '2012-10-17', Statement: [...statements].reverse() } as PolicyDocument;
    expect(samePolicy(ours, reordered)).toBe(true);
    expect(samePolicy(ours, parsePolicy(encodeURIComponent(JSON.stringify(reordered))))).toBe(true);
    expect(samePolicy(ours, parsePolicy(JSON.stringify(ours, null, 2)))).toBe(true);
  });

  it('different when a resource, an action, a condition or an effect differs', () => {
    const edit = (f: (s: Record<string, unknown>[]) => void) => {
      const copy = JSON.parse(JSON.stringify(ours));
      f(copy.Statement);
      return copy as PolicyDocument;
    };
    expect(
      samePolicy(
        ours,
        edit((s) => (s[1]!.Resource = `arn:aws:s3:::${BUCKET}/*`)),
      ),
    ).toBe(false);
    expect(
      samePolicy(
        ours,
        edit((s) => (s[1]!.Action = ['s3:GetObject', 's3:GetObjectAcl'])),
      ),
    ).toBe(false);
    expect(
      samePolicy(
        ours,
        edit((s) => delete s[0]!.Condition),
      ),
    ).toBe(false);
    expect(
      samePolicy(
        ours,
        edit((s) => ((s[1]!.Condition as Record<string, Record<string, string>>).DateLessThan!['aws:CurrentTime'] = '2099-01-01T00:00:00Z')),
      ),
    ).toBe(false);
    expect(
      samePolicy(
        ours,
        edit((s) => (s[2]!.Effect = 'Deny')),
      ),
    ).toBe(false);
    expect(
      samePolicy(
        ours,
        edit((s) => s.pop()),
      ),
    ).toBe(false);
  });

  it('normalises to the same value whatever the order', () => {
    expect(normalizePolicy(ours)).toEqual(normalizePolicy({ ...ours, Statement: [...(ours.Statement as [])].reverse() }));
  });
});

describe('names, size and the accessPolicy', () => {
  it('names the inline policy from namespace and name, deterministically, within 128 characters', () => {
    expect(inlinePolicyName('analytics', 'churn-analysis')).toBe('steward.analytics.churn-analysis');
    const long = inlinePolicyName('n'.repeat(63), 'x'.repeat(253));
    expect(long).toHaveLength(128);
    expect(long).toMatch(/^[\w+=,.@-]+$/);
    expect(inlinePolicyName('n'.repeat(63), 'x'.repeat(253))).toBe(long);
    expect(inlinePolicyName('n'.repeat(63), `${'x'.repeat(252)}y`)).not.toBe(long);
  });

  it('counts size as IAM does, without white space, and the policy is far under the quota', () => {
    const doc = accessPolicyDocument({ bucket: BUCKET, prefix: 'analytics/', access: 'readWrite', expiresAt: EXPIRY, region: 'us-east-1' });
    expect(policySize(JSON.stringify(doc, null, 4))).toBe(policySize(doc));
    expect(policySize(doc)).toBeLessThan(ROLE_INLINE_POLICY_QUOTA / 10);
  });

  const rules = [
    {
      namespaces: { matchLabels: { 'steward.dev/tenant': 'analytics' } },
      prefixes: ['analytics/'],
      access: ['read' as const],
      principals: ['data-scientist'],
      maxDuration: '2160h',
    },
  ];
  const ns = { name: 'analytics', labels: { 'steward.dev/tenant': 'analytics' } };
  it('allows what one rule covers, under its prefix, with its cap', () => {
    expect(evaluateStorePolicy(rules, { namespace: ns, prefix: 'analytics/', access: 'read', principal: 'data-scientist' })).toEqual({
      allowed: true,
      rule: 0,
      maxDurationMs: 2160 * 3600_000,
    });
    expect(
      evaluateStorePolicy(rules, { namespace: ns, prefix: 'analytics/2026/', access: 'read', principal: 'arn:aws:iam::123456789012:role/team/data-scientist' })
        .allowed,
    ).toBe(true);
  });
  it.each([
    [
      { namespace: { name: 'other', labels: {} }, prefix: 'analytics/', access: 'read', principal: 'data-scientist' },
      /no accessPolicy rule .* covers namespace other/,
    ],
    [{ namespace: ns, prefix: 'raw/', access: 'read', principal: 'data-scientist' }, /may not request prefix "raw\/"/],
    [{ namespace: ns, prefix: '', access: 'read', principal: 'data-scientist' }, /may not request prefix ""/],
    [{ namespace: ns, prefix: 'analytics/', access: 'readWrite', principal: 'data-scientist' }, /may not request readWrite/],
    [{ namespace: ns, prefix: 'analytics/', access: 'read', principal: 'data-scientist-admin' }, /may not name IAM role data-scientist-admin/],
    [{ namespace: ns, prefix: 'analytics/', access: 'read', principal: 'data.scientist' }, /may not name IAM role/],
  ] as const)('refuses %j', (request, message) => {
    const d = evaluateStorePolicy(rules, request);
    expect(d.allowed).toBe(false);
    expect(!d.allowed && d.message).toMatch(message);
  });
  it('denies everything with no rules', () => {
    expect(evaluateStorePolicy(undefined, { namespace: ns, prefix: 'analytics/', access: 'read', principal: 'data-scientist' }).allowed).toBe(false);
  });
});

describe('what the reconcilers judge from IAM and S3', () => {
  const readWrite = [{ namespaces: { matchNames: ['analytics'] }, prefixes: ['analytics/'], access: ['readWrite' as const] }];
  const readOnly = [{ namespaces: { matchNames: ['analytics'] }, prefixes: ['analytics/'], access: ['read' as const] }];
  const ns = { name: 'analytics', labels: {} };

  it('a rule that allows readWrite allows read; one that allows read says so when readWrite is asked', () => {
    expect(evaluateStorePolicy(readWrite, { namespace: ns, prefix: 'analytics/', access: 'read', principal: 'r' }).allowed).toBe(true);
    const d = evaluateStorePolicy(readOnly, { namespace: ns, prefix: 'analytics/', access: 'readWrite', principal: 'r' });
    expect(!d.allowed && d.message).toMatch(/may not request readWrite on prefix "analytics\/": allowed is read$/);
  });

  it("refuses an ARN whose account or path is not the role IAM found in Steward's account", () => {
    const found = { roleExists: true, roleArn: 'arn:aws:iam::123456789012:role/data-scientist', policy: undefined, otherPolicies: [] };
    expect(principalMismatch('data-scientist', found)).toBeUndefined();
    expect(principalMismatch('arn:aws:iam::123456789012:role/data-scientist', found)).toBeUndefined();
    expect(principalMismatch('arn:aws:iam::999999999999:role/data-scientist', found)).toMatch(/Steward writes policies only on roles of its own account/);
    expect(principalMismatch('arn:aws:iam::123456789012:role/other-path/data-scientist', found)).toMatch(/arn:aws:iam::123456789012:role\/data-scientist/);
  });

  const tlsOnly = {
    Effect: 'Deny' as const,
    Principal: '*',
    Action: 's3:*',
    Resource: [`arn:aws:s3:::${BUCKET}`, `arn:aws:s3:::${BUCKET}/*`],
    Condition: { Bool: { 'aws:SecureTransport': 'false' } },
  };
  it('recognises a TLS-only bucket policy statement, and only a complete one', () => {
    expect(deniesInsecureTransport(tlsOnly, BUCKET)).toBe(true);
    expect(deniesInsecureTransport({ ...tlsOnly, Principal: { AWS: '*' }, Condition: { BoolIfExists: { 'aws:SecureTransport': 'false' } } }, BUCKET)).toBe(
      true,
    );
    expect(deniesInsecureTransport({ ...tlsOnly, Effect: 'Allow' }, BUCKET)).toBe(false);
    expect(deniesInsecureTransport({ ...tlsOnly, Principal: { AWS: 'arn:aws:iam::123456789012:root' } }, BUCKET)).toBe(false);
    expect(deniesInsecureTransport({ ...tlsOnly, Action: 's3:GetObject' }, BUCKET)).toBe(false);
    expect(deniesInsecureTransport({ ...tlsOnly, Resource: `arn:aws:s3:::${BUCKET}/*` }, BUCKET)).toBe(false);
    expect(deniesInsecureTransport({ ...tlsOnly, Resource: ['arn:aws:s3:::other', 'arn:aws:s3:::other/*'] }, BUCKET)).toBe(false);
    expect(deniesInsecureTransport({ ...tlsOnly, Condition: { Bool: { 'aws:SecureTransport': 'true' } } }, BUCKET)).toBe(false);
  });
});

describe("Steward's own identity", () => {
  it.each([
    ['arn:aws:sts::123456789012:assumed-role/steward-operator/botocore-session-1', 'steward-operator'],
    ['arn:aws:iam::123456789012:role/ops/steward-operator', 'steward-operator'],
    ['arn:aws-cn:sts::123456789012:assumed-role/steward/s', 'steward'],
    ['arn:aws:sts::123456789012:user/moto', undefined],
    ['arn:aws:iam::123456789012:user/steward', undefined],
  ])('%s -> %s', (arn, role) => {
    expect(stewardRoleName(arn)).toBe(role);
  });
});
