// ObjectStore: one S3 bucket (or S3-compatible store), how Steward reaches it, the protections it
// verifies on it, and the policy of who may ask for which prefixes. The S3 counterpart of Warehouse:
// cluster-scoped, owned by the platform team; a DatasetAccess's s3.bucket names it by its bucket.
import {
  Type,
  type Static,
  type KindDefinition,
  NamespaceName,
  ObjectName,
  Duration,
  StringEnum,
  statusWith,
  READY_COLUMN,
  AGE_COLUMN,
  REASON_COLUMN,
} from './schema.ts';
import { NamespaceSelector, ReviewPolicy } from './warehouse.ts';
import type { Resource } from './meta.ts';

export const BUCKET_PATTERN = '^[a-z0-9][a-z0-9.-]*[a-z0-9]$';
/** A key prefix: path segments each ending in "/" (analytics/, analytics/2026/). Empty is the whole bucket. */
export const PREFIX_PATTERN = "^([A-Za-z0-9!_.()'-]+/)*$";
/** An IAM role name pattern: IAM's name characters, and * for any run of them. */
const IAM_ROLE_PATTERN = '^[\\w+=,.@*-]{1,64}$';

export const S3_ACCESS = ['read', 'readWrite'] as const;
export type S3Access = (typeof S3_ACCESS)[number];

const StoreAccessRule = Type.Object(
  {
    namespaces: NamespaceSelector,
    prefixes: Type.Array(Type.String({ maxLength: 1024, pattern: PREFIX_PATTERN, description: 'A key prefix ending in "/"; "" is the whole bucket.' }), {
      minItems: 1,
      maxItems: 64,
      'x-kubernetes-list-type': 'set',
      description: 'Prefixes the namespaces may request, and everything under them (analytics/ covers analytics/2026/).',
    }),
    access: Type.Array(StringEnum(S3_ACCESS), {
      minItems: 1,
      maxItems: 2,
      'x-kubernetes-list-type': 'set',
      default: ['read'],
      description: 'What the namespaces may request: read (GetObject, ListBucket under the prefix), readWrite (also PutObject, DeleteObject).',
    }),
    principals: Type.Optional(
      Type.Array(Type.String({ pattern: IAM_ROLE_PATTERN, description: 'An IAM role name, or a pattern with * (data-*).' }), {
        minItems: 1,
        maxItems: 256,
        'x-kubernetes-list-type': 'set',
        description: 'IAM roles (by name; an ARN is matched by its name) the namespaces may name as principal. Unset: any role.',
      }),
    ),
    maxDuration: Type.Optional(Duration('Longest access the rule allows; longer requests are capped to it. Unset: no cap.')),
  },
  { description: 'One allow rule. A request is allowed when one rule covers its namespace, its prefix, its access and its role.' },
);

export const ObjectStoreSpec = Type.Object({
  s3: Type.Object(
    {
      bucket: Type.String({ minLength: 3, maxLength: 63, pattern: BUCKET_PATTERN, description: 'Bucket name.' }),
      region: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9-]+$', description: 'The bucket’s region, e.g. us-east-1.' }),
      endpoint: Type.Optional(
        Type.String({
          maxLength: 512,
          pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$',
          description: 'Endpoint of an S3-compatible store (and of its IAM). Unset: AWS.',
        }),
      ),
      credentialsSecretRef: Type.Optional(
        Type.Object(
          {
            namespace: NamespaceName('Namespace of the Secret.'),
            name: ObjectName('Name of the Secret; it holds accessKeyId and secretAccessKey (and sessionToken, optionally). Re-read when it changes.'),
          },
          { description: 'AWS credentials from a Secret. Unset: the AWS SDK’s default chain (IRSA, instance profile, environment).' },
        ),
      ),
    },
    { description: 'The bucket, and how to reach it.' },
  ),
  accessPolicy: Type.Optional(Type.Array(StoreAccessRule, { maxItems: 128, description: 'Default deny: a DatasetAccess outside every rule is refused.' })),
  reviewPolicy: Type.Optional(ReviewPolicy('ObjectStore')),
  auditWarehouse: Type.Optional(
    ObjectName('A Warehouse whose audit table (steward.audit_log, append-only) also keeps this bucket’s audit records. Unset: they are in Steward’s log only.'),
  ),
  resyncPeriod: Type.Optional(Duration('How often Steward re-checks the bucket’s protections and the policies it manages (default 5m, with jitter).')),
});

export const ObjectStoreStatus = statusWith(
  {
    encryption: Type.Optional(
      Type.Object({
        algorithm: Type.String({ description: 'The bucket’s default encryption (GetBucketEncryption): AES256, aws:kms, aws:kms:dsse, or None.' }),
        kmsKeyId: Type.Optional(Type.String({ description: 'The KMS key of aws:kms, as the bucket names it.' })),
        bucketKeyEnabled: Type.Optional(Type.Boolean()),
      }),
    ),
    tlsOnly: Type.Optional(Type.Boolean({ description: 'The bucket policy denies every request without TLS (aws:SecureTransport false).' })),
  },
  'What Steward last observed of the bucket.',
);

export type ObjectStoreSpec = Static<typeof ObjectStoreSpec>;
export type ObjectStoreStatus = Static<typeof ObjectStoreStatus>;
export type StoreAccessRule = Static<typeof StoreAccessRule>;
export type ObjectStore = Resource<ObjectStoreSpec, ObjectStoreStatus>;

export const objectStoreKind: KindDefinition = {
  kind: 'ObjectStore',
  plural: 'objectstores',
  singular: 'objectstore',
  shortNames: ['os'],
  scope: 'Cluster',
  description:
    'An S3 bucket, its verified protections (encryption at rest, TLS only, public access blocked), and the policy of who may ask for which prefixes.',
  spec: ObjectStoreSpec,
  status: ObjectStoreStatus,
  printerColumns: [
    { name: 'Bucket', type: 'string', jsonPath: '.spec.s3.bucket' },
    { name: 'Region', type: 'string', jsonPath: '.spec.s3.region' },
    { name: 'Encryption', type: 'string', jsonPath: '.status.encryption.algorithm' },
    { name: 'TLS-Only', type: 'boolean', jsonPath: '.status.tlsOnly' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
