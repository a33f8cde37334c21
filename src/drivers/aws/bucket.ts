// What an ObjectStore verifies on its bucket, read from S3 itself and never assumed: the default
// encryption (AWS has applied SSE-S3 to new buckets since 2023; moto and most S3-compatible stores
// apply nothing), a bucket policy that denies every request without TLS, and the public access
// block. Read-only: Steward never changes the bucket.
import { GetBucketEncryptionCommand, GetBucketPolicyCommand, GetPublicAccessBlockCommand, type S3Client } from '@aws-sdk/client-s3';
import { parsePolicy, type PolicyStatement } from '../../governance/s3-policy.ts';

export interface BucketFacts {
  encryption: { algorithm: string; kmsKeyId?: string; bucketKeyEnabled?: boolean } | undefined;
  /** A Deny of every request without TLS; `found` says what the policy holds when there is none. */
  tlsOnly: { ok: boolean; found: string };
  publicAccessBlock: { ok: boolean; found: string };
}

const errorName = (err: unknown) => (err as { name?: string; Code?: string }).name ?? (err as { Code?: string }).Code ?? '';

export class BucketNotFound extends Error {}

async function orAbsent<T>(call: Promise<T>, absent: string[]): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (errorName(err) === 'NoSuchBucket') throw new BucketNotFound('the bucket does not exist');
    if (absent.includes(errorName(err))) return undefined;
    throw err;
  }
}

/** Every action on the bucket and its objects, for anyone, when aws:SecureTransport is false. */
export function deniesInsecureTransport(s: PolicyStatement, bucket: string): boolean {
  if (s.Effect !== 'Deny') return false;
  const principal = s.Principal;
  const anyone = principal === '*' || (typeof principal === 'object' && principal !== null && [(principal as { AWS?: unknown }).AWS].flat().includes('*'));
  const actions = [s.Action ?? []].flat();
  const resources = [s.Resource ?? []].flat();
  const arn = (r: string) => r.replace(/^arn:aws[a-z-]*:s3:::/, '');
  const condition = s.Condition ?? {};
  const insecure = ['Bool', 'BoolIfExists'].some((op) => {
    const v = (condition[op] as Record<string, unknown> | undefined)?.['aws:SecureTransport'];
    return [v].flat().map(String).includes('false');
  });
  return (
    anyone &&
    insecure &&
    actions.some((a) => a === '*' || a.toLowerCase() === 's3:*') &&
    resources.some((r) => arn(r) === bucket || arn(r) === '*') &&
    resources.some((r) => arn(r) === `${bucket}/*` || arn(r) === '*')
  );
}

export async function observeBucket(s3: S3Client, bucket: string): Promise<BucketFacts> {
  const [enc, policy, pab] = await Promise.all([
    orAbsent(s3.send(new GetBucketEncryptionCommand({ Bucket: bucket })), ['ServerSideEncryptionConfigurationNotFoundError']),
    orAbsent(s3.send(new GetBucketPolicyCommand({ Bucket: bucket })), ['NoSuchBucketPolicy']),
    orAbsent(s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket })), ['NoSuchPublicAccessBlockConfiguration']),
  ]);
  const rule = enc?.ServerSideEncryptionConfiguration?.Rules?.[0];
  const sse = rule?.ApplyServerSideEncryptionByDefault;
  const encryption = sse?.SSEAlgorithm
    ? {
        algorithm: sse.SSEAlgorithm,
        ...(sse.KMSMasterKeyID ? { kmsKeyId: sse.KMSMasterKeyID } : {}),
        ...(rule?.BucketKeyEnabled !== undefined ? { bucketKeyEnabled: rule.BucketKeyEnabled } : {}),
      }
    : undefined;
  let tlsOnly: BucketFacts['tlsOnly'];
  if (!policy?.Policy) tlsOnly = { ok: false, found: 'the bucket has no bucket policy' };
  else {
    const statements = [parsePolicy(policy.Policy).Statement].flat();
    tlsOnly = statements.some((s) => deniesInsecureTransport(s, bucket))
      ? { ok: true, found: 'the bucket policy denies every request without TLS (aws:SecureTransport false)' }
      : { ok: false, found: `the bucket policy's ${statements.length} statements hold no Deny of s3:* for everyone when aws:SecureTransport is false` };
  }
  const c = pab?.PublicAccessBlockConfiguration;
  const flags = {
    BlockPublicAcls: c?.BlockPublicAcls,
    IgnorePublicAcls: c?.IgnorePublicAcls,
    BlockPublicPolicy: c?.BlockPublicPolicy,
    RestrictPublicBuckets: c?.RestrictPublicBuckets,
  };
  const off = Object.entries(flags)
    .filter(([, v]) => v !== true)
    .map(([k]) => k);
  const publicAccessBlock = !c
    ? { ok: false, found: 'the bucket has no public access block' }
    : off.length
      ? { ok: false, found: `the public access block leaves ${off.join(', ')} off` }
      : { ok: true, found: 'all four public access block settings are on' };
  return { encryption, tlsOnly, publicAccessBlock };
}
