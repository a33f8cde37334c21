// DatasetAccess: one least-privilege grant of a principal on PostgreSQL tables or an S3 prefix,
// until a deadline that Steward enforces.
import {
  Type,
  type Static,
  type KindDefinition,
  cel,
  StringEnum,
  RoleName,
  SchemaName,
  ObjectName,
  Duration,
  Timestamp,
  Privileges,
  statusWith,
  READY_COLUMN,
  AGE_COLUMN,
  REASON_COLUMN,
} from './schema.ts';
import type { Resource } from './meta.ts';

const WarehouseTarget = Type.Object({
  name: ObjectName('The Warehouse to grant in.'),
  schema: SchemaName('Schema holding the tables (never steward, information_schema or pg_*).'),
  tables: Type.Array(
    Type.String({ maxLength: 63, pattern: '^([a-z_][a-z0-9_]*|\\*)$', description: 'A table name, or "*" for every table of the schema, now and future.' }),
    {
      minItems: 1,
      maxItems: 256,
      'x-kubernetes-list-type': 'set',
      description: 'Tables to grant on. ["*"] covers every table of the schema, now and future.',
      ...cel({ rule: "!self.exists(t, t == '*') || size(self) == 1", message: '"*" already means every table: list it alone' }),
    },
  ),
  privileges: Privileges('Privileges to grant. ALL is not accepted: name each one.', { default: ['SELECT'] }),
});

const S3Target = Type.Object({
  bucket: Type.String({ minLength: 3, maxLength: 63, pattern: '^[a-z0-9][a-z0-9.-]*[a-z0-9]$', description: 'Bucket name.' }),
  prefix: Type.String({
    maxLength: 1024,
    pattern: "^([A-Za-z0-9!_.()'-]+/)*$",
    description: 'Key prefix ending in "/", e.g. analytics/. Empty means the whole bucket.',
  }),
  access: StringEnum(['read', 'readWrite'] as const, { default: 'read', description: 'read (Get, List) or readWrite (also Put, Delete).' }),
});

export const DatasetAccessSpec = Type.Object(
  {
    principal: Type.Object(
      {
        role: Type.Optional(
          RoleName(
            "An existing warehouse role (group or login); Steward never creates it. Never a superuser, a predefined pg_* role, Steward's own login or one of its stw_* roles.",
          ),
        ),
        iamRole: Type.Optional(
          Type.String({
            minLength: 1,
            maxLength: 2048,
            pattern: '^([\\w+=,.@-]{1,64}|arn:aws[a-z-]*:iam::[0-9]{12}:role/([\\w+=,.@-]+/)*[\\w+=,.@-]{1,64})$',
            description: 'An IAM role, by name or ARN.',
          }),
        ),
      },
      {
        description: 'Who receives the access.',
        ...cel({ rule: 'has(self.role) != has(self.iamRole)', message: 'set exactly one of principal.role or principal.iamRole' }),
      },
    ),
    warehouse: Type.Optional(WarehouseTarget),
    s3: Type.Optional(S3Target),
    expiresAt: Type.Optional(Timestamp('When the access ends (RFC 3339).')),
    duration: Type.Optional(Duration('How long the access lasts, counted from the first grant.')),
    justification: Type.String({ minLength: 1, maxLength: 1024, description: 'Why the access is needed; shown to reviewers and kept in the audit trail.' }),
    deletionPolicy: Type.Optional(
      StringEnum(['Delete', 'Orphan'] as const, {
        default: 'Delete',
        description: 'Delete revokes the access when the object is deleted; Orphan leaves the grants in place (audited).',
      }),
    ),
  },
  {
    ...cel(
      { rule: 'has(self.warehouse) != has(self.s3)', message: 'set exactly one of spec.warehouse or spec.s3' },
      {
        rule: '!has(self.warehouse) || has(self.principal.role)',
        message: 'spec.warehouse needs spec.principal.role (a warehouse role)',
        fieldPath: '.principal',
      },
      { rule: '!has(self.s3) || has(self.principal.iamRole)', message: 'spec.s3 needs spec.principal.iamRole (an IAM role)', fieldPath: '.principal' },
      { rule: '!(has(self.expiresAt) && has(self.duration))', message: 'set expiresAt or duration, not both' },
    ),
  },
);

export const DatasetAccessStatus = statusWith(
  {
    principal: Type.Optional(Type.String({ description: 'Who holds the access, for display.' })),
    dataset: Type.Optional(Type.String({ description: 'What the access covers, for display.' })),
    privileges: Type.Optional(Type.String({ description: 'Granted privileges, for display.' })),
    groupRole: Type.Optional(Type.String({ description: 'The warehouse role Steward owns for this access.' })),
    iamPolicy: Type.Optional(Type.String({ description: 'The inline policy Steward owns for this access on the principal’s IAM role (s3).' })),
    otherPolicies: Type.Optional(
      Type.Array(Type.String(), {
        maxItems: 64,
        description: 'Policies on the principal’s IAM role that are not Steward’s (inline, and attached by ARN): found, never touched.',
      }),
    ),
    grantedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When access was first granted.' })),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'Effective expiry, after any cap by policy.' })),
    revokedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When access was last revoked.' })),
    revokedByReview: Type.Optional(
      Type.Object(
        {
          review: Type.String({ description: 'namespace/name of the AccessReview.' }),
          cycle: Type.String(),
          by: Type.String({ description: 'The reviewer, or onMissingDecision when nobody decided by the due date.' }),
          reason: Type.Optional(Type.String()),
          generation: Type.Integer({ description: 'The spec generation revoked: a changed spec is a new request, judged anew.' }),
        },
        { description: 'An AccessReview revoked this access; it stays revoked until its spec changes.' },
      ),
    ),
  },
  'What Steward granted and until when.',
);

export type DatasetAccessSpec = Static<typeof DatasetAccessSpec>;
export type DatasetAccessStatus = Static<typeof DatasetAccessStatus>;
export type DatasetAccess = Resource<DatasetAccessSpec, DatasetAccessStatus>;

export const datasetAccessKind: KindDefinition = {
  kind: 'DatasetAccess',
  plural: 'datasetaccesses',
  singular: 'datasetaccess',
  shortNames: ['dsa'],
  scope: 'Namespaced',
  description: 'One least-privilege grant of a principal on PostgreSQL tables or an S3 prefix, with an expiry Steward enforces.',
  spec: DatasetAccessSpec,
  status: DatasetAccessStatus,
  printerColumns: [
    { name: 'Principal', type: 'string', jsonPath: '.status.principal' },
    { name: 'Dataset', type: 'string', jsonPath: '.status.dataset' },
    { name: 'Privileges', type: 'string', jsonPath: '.status.privileges' },
    { name: 'Expires', type: 'string', jsonPath: '.status.expiresAt' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
