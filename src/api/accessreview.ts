// AccessReview: a recurring entitlement review of the grants in scope; what nobody keeps expires,
// and grants made outside Steward are reported.
import {
  Type,
  type Static,
  type KindDefinition,
  StringEnum,
  Identifier,
  NamespaceName,
  ObjectName,
  Duration,
  Schedule,
  statusWith,
  AGE_COLUMN,
  READY_COLUMN,
} from './schema.ts';
import type { Resource } from './meta.ts';

const Decision = Type.Object({
  access: Type.String({
    maxLength: 317,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
    description: 'namespace/name of a DatasetAccess.',
  }),
  decision: StringEnum(['keep', 'revoke'] as const),
  by: Type.String({ minLength: 1, maxLength: 256, description: 'The reviewer who decided.' }),
  reason: Type.Optional(Type.String({ maxLength: 1024 })),
});

export const AccessReviewSpec = Type.Object({
  warehouse: ObjectName('The Warehouse under review.'),
  schedule: Schedule('When a review cycle starts.'),
  scope: Type.Object(
    {
      namespaces: Type.Optional(Type.Array(NamespaceName('A namespace.'), { minItems: 1, maxItems: 256, 'x-kubernetes-list-type': 'set' })),
      schemas: Type.Optional(Type.Array(Identifier('A schema.'), { minItems: 1, maxItems: 64, 'x-kubernetes-list-type': 'set' })),
    },
    { description: 'Which grants the review covers; unset parts cover everything.' },
  ),
  reviewers: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 64, 'x-kubernetes-list-type': 'set' }),
  dueIn: Duration('How long reviewers have to decide, from the start of a cycle.'),
  onMissingDecision: StringEnum(['revoke', 'keep'] as const, { default: 'revoke', description: 'What happens to a grant nobody decided on by the due date.' }),
  decisions: Type.Optional(
    Type.Array(Decision, {
      maxItems: 4096,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['access'],
    }),
  ),
});

const Finding = Type.Object({
  access: Type.String(),
  principal: Type.String(),
  dataset: Type.String(),
  privileges: Type.String(),
  grantedAt: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  lastUsedAt: Type.Optional(Type.String()),
  decision: Type.String(),
});

export const AccessReviewStatus = statusWith(
  {
    cycle: Type.Optional(
      Type.Object({
        number: Type.Integer(),
        startedAt: Type.String({ format: 'date-time' }),
        dueAt: Type.String({ format: 'date-time' }),
        completedAt: Type.Optional(Type.String({ format: 'date-time' })),
      }),
    ),
    nextCycleAt: Type.Optional(Type.String({ format: 'date-time' })),
    findings: Type.Optional(Type.Array(Finding)),
    outOfBand: Type.Optional(Type.Array(Type.Object({ grantee: Type.String(), object: Type.String(), privileges: Type.String() }))),
    summary: Type.Optional(
      Type.Object({
        pending: Type.Integer(),
        kept: Type.Integer(),
        revoked: Type.Integer(),
        outOfBand: Type.Integer(),
      }),
    ),
  },
  'The current review cycle and what it found.',
);

export type AccessReviewSpec = Static<typeof AccessReviewSpec>;
export type AccessReviewStatus = Static<typeof AccessReviewStatus>;
export type AccessReview = Resource<AccessReviewSpec, AccessReviewStatus>;

export const accessReviewKind: KindDefinition = {
  kind: 'AccessReview',
  plural: 'accessreviews',
  singular: 'accessreview',
  shortNames: ['ar'],
  scope: 'Namespaced',
  description: 'A recurring entitlement review: grants in scope are listed and decided; what nobody keeps expires.',
  spec: AccessReviewSpec,
  status: AccessReviewStatus,
  printerColumns: [
    { name: 'Cycle', type: 'integer', jsonPath: '.status.cycle.number' },
    { name: 'Due', type: 'string', jsonPath: '.status.cycle.dueAt' },
    { name: 'Pending', type: 'integer', jsonPath: '.status.summary.pending' },
    { name: 'Revoked', type: 'integer', jsonPath: '.status.summary.revoked' },
    { name: 'Out-of-band', type: 'integer', jsonPath: '.status.summary.outOfBand' },
    AGE_COLUMN,
    { ...READY_COLUMN, priority: 1 },
  ],
};
