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
  REASON_COLUMN,
  cel,
} from './schema.ts';
import type { Resource } from './meta.ts';

export const REVIEW_REQUESTED_ANNOTATION = 'steward.dev/review-requested-at';

const Decision = Type.Object(
  {
    cycle: Type.String({
      minLength: 1,
      maxLength: 32,
      description: 'The cycle this decision is for (status.cycle.id); one for another cycle is stale and ignored.',
    }),
    access: Type.Optional(
      Type.String({
        maxLength: 317,
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$',
        description: 'namespace/name of a DatasetAccess (or of a MaskedView, for its readers).',
      }),
    ),
    finding: Type.Optional(Type.String({ pattern: '^oob-[0-9a-f]{6,16}$', maxLength: 20, description: 'The id status gives an out-of-band grant.' })),
    decision: StringEnum(['keep', 'revoke'] as const),
    by: Type.String({ minLength: 1, maxLength: 256, description: 'The reviewer who decided: one of spec.reviewers.' }),
    reason: Type.Optional(Type.String({ maxLength: 1024 })),
    appliedBy: Type.Optional(
      Type.String({
        maxLength: 512,
        description: "Who applied the decision to the cluster, stamped by Steward's admission webhook from the request (whatever the manifest says).",
      }),
    ),
  },
  { ...cel({ rule: 'has(self.access) != has(self.finding)', message: 'name exactly one of access or finding' }) },
);

export const AccessReviewSpec = Type.Object(
  {
    warehouse: Type.Optional(ObjectName('The Warehouse under review (its PostgreSQL grants).')),
    schedule: Schedule('When a review cycle starts.'),
    scope: Type.Object(
      {
        namespaces: Type.Optional(Type.Array(NamespaceName('A namespace.'), { minItems: 1, maxItems: 256, 'x-kubernetes-list-type': 'set' })),
        schemas: Type.Optional(Type.Array(Identifier('A schema.'), { minItems: 1, maxItems: 64, 'x-kubernetes-list-type': 'set' })),
        objectStore: Type.Optional(ObjectName('An ObjectStore also under review: the S3 accesses on its bucket, and the IAM policies of their roles.')),
        prefixes: Type.Optional(
          Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
            minItems: 1,
            maxItems: 64,
            'x-kubernetes-list-type': 'set',
            description: 'Prefixes of the ObjectStore under review (an access on a prefix starting with one of them); unset: every prefix.',
          }),
        ),
      },
      { description: 'Which grants the review covers; unset parts cover everything.' },
    ),
    reviewers: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1, maxItems: 64, 'x-kubernetes-list-type': 'set' }),
    dueIn: Duration('How long reviewers have to decide, from the start of a cycle.'),
    onMissingDecision: StringEnum(['revoke', 'keep'] as const, {
      default: 'revoke',
      description: 'What happens to a grant nobody decided on by the due date.',
    }),
    decisions: Type.Optional(
      Type.Array(Decision, {
        maxItems: 4096,
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
  },
  { ...cel({ rule: 'has(self.warehouse) || has(self.scope.objectStore)', message: 'name a warehouse, a scope.objectStore, or both' }) },
);

const Finding = Type.Object({
  kind: StringEnum(['DatasetAccess', 'MaskedView'] as const),
  access: Type.String({ description: 'namespace/name of the object that explains the grant.' }),
  principal: Type.String(),
  dataset: Type.String(),
  privileges: Type.String(),
  grantedAt: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Type.String()),
  justification: Type.Optional(Type.String()),
  lastUsedAt: Type.Optional(Type.String({ description: 'Where the target records it; PostgreSQL keeps no per-role usage record, so it is empty there.' })),
  decision: Type.String({ description: 'pending, keep, revoke, or what onMissingDecision did at due (kept-by-default, revoked-by-default).' }),
  by: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
  generation: Type.Integer({ description: 'The generation of the object decided on: a changed spec is a new request.' }),
});

const OutOfBand = Type.Object({
  id: Type.String({ description: 'Stable: the same grant has the same id in every cycle.' }),
  kind: StringEnum(['table', 'schema', 'membership', 'iam-policy'] as const),
  grantee: Type.String(),
  object: Type.String({ description: 'The table or schema, the role the grantee is a member of, or the IAM policy (a name: inline; an ARN: attached).' }),
  privileges: Type.String(),
  decision: Type.String({ description: 'reported (never revoked without a decision), keep, revoke, or revoked.' }),
  by: Type.Optional(Type.String()),
});

const CycleSummary = Type.Object({
  id: Type.String(),
  startedAt: Type.String(),
  completedAt: Type.Optional(Type.String()),
  kept: Type.Integer(),
  revoked: Type.Integer(),
  outOfBand: Type.Integer(),
});

export const AccessReviewStatus = statusWith(
  {
    cycle: Type.Optional(
      Type.Object({
        id: Type.String({ description: 'What decisions name: the start date (UTC), with -2, -3... for further cycles that day.' }),
        number: Type.Integer(),
        startedAt: Type.String({ format: 'date-time' }),
        dueAt: Type.String({ format: 'date-time' }),
        completedAt: Type.Optional(Type.String({ format: 'date-time' })),
        remindedAt: Type.Optional(Type.String({ format: 'date-time', description: 'When the reminder that the due time is near went out.' })),
        inputs: Type.Optional(Type.String({ description: 'A hash of what the last reading depended on: unchanged, a resync reads nothing.' })),
      }),
    ),
    nextCycleAt: Type.Optional(Type.String({ format: 'date-time' })),
    lastRequestedAt: Type.Optional(Type.String({ description: 'The last on-demand cycle served.' })),
    findings: Type.Optional(Type.Array(Finding, { maxItems: 4096 })),
    outOfBand: Type.Optional(Type.Array(OutOfBand, { maxItems: 4096 })),
    /** Decisions that did not count, and why. */
    ignoredDecisions: Type.Optional(Type.Array(Type.Object({ decision: Type.String(), why: Type.String() }), { maxItems: 256 })),
    summary: Type.Optional(
      Type.Object({
        pending: Type.Integer(),
        kept: Type.Integer(),
        revoked: Type.Integer(),
        outOfBand: Type.Integer(),
      }),
    ),
    history: Type.Optional(Type.Array(CycleSummary, { maxItems: 12, description: 'The last cycles, newest first.' })),
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
    { name: 'Cycle', type: 'string', jsonPath: '.status.cycle.id' },
    { name: 'Due', type: 'string', jsonPath: '.status.cycle.dueAt' },
    { name: 'Pending', type: 'integer', jsonPath: '.status.summary.pending' },
    { name: 'Revoked', type: 'integer', jsonPath: '.status.summary.revoked' },
    { name: 'Out-of-band', type: 'integer', jsonPath: '.status.summary.outOfBand' },
    AGE_COLUMN,
    { ...READY_COLUMN, priority: 1 },
    { ...REASON_COLUMN, priority: 1 },
  ],
};
