// SecretRotation: rotates one database login's password on a schedule into Kubernetes Secrets and
// AWS Secrets Manager, without breaking the pipelines that read it.
import {
  Type,
  type Static,
  type KindDefinition,
  cel,
  StringEnum,
  Identifier,
  ObjectName,
  Schedule,
  Duration,
  statusWith,
  READY_COLUMN,
  AGE_COLUMN,
  REASON_COLUMN,
} from './schema.ts';
import type { Resource } from './meta.ts';

export const ROTATE_REQUESTED_ANNOTATION = 'steward.dev/rotate-requested-at';

export const SecretRotationSpec = Type.Object({
  warehouse: ObjectName('The Warehouse holding the role.'),
  role: Identifier('The login role whose password rotates.'),
  strategy: StringEnum(['alternating', 'single'] as const, {
    default: 'alternating',
    description: 'alternating: two logins swapped, so the old password keeps working until the next rotation; single: one login changed in place.',
  }),
  schedule: Schedule('When to rotate.'),
  targets: Type.Object(
    {
      kubernetesSecret: Type.Optional(
        Type.Object({ name: ObjectName('Secret in this namespace; keys username, password, host, port, database, sslmode, uri.') }),
      ),
      awsSecretsManager: Type.Optional(
        Type.Object({
          secretId: Type.String({ minLength: 1, maxLength: 2048, pattern: '^[A-Za-z0-9/_+=.@:-]+$' }),
          region: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z]{2}(-[a-z]+)+-[0-9]+$' }),
        }),
      ),
    },
    { ...cel({ rule: 'has(self.kubernetesSecret) || has(self.awsSecretsManager)', message: 'name at least one target' }) },
  ),
  password: Type.Optional(Type.Object({ length: Type.Integer({ minimum: 16, maximum: 128, default: 32 }) })),
  gracePeriod: Type.Optional(
    Duration(
      'alternating: how long the login published before a rotation keeps working after it (default 10m: longer than a kubelet sync plus its Secret cache, so a mounted file has the new credential first). Then it gets an unknown password and its sessions end.',
    ),
  ),
});

export const SecretRotationStatus = statusWith(
  {
    lastRotatedAt: Type.Optional(Type.String({ format: 'date-time' })),
    nextRotationAt: Type.Optional(Type.String({ format: 'date-time' })),
    activeLogin: Type.Optional(Type.String({ description: 'The login currently published to the targets.' })),
    lastRequestedAt: Type.Optional(Type.String({ description: 'The last on-demand request served.' })),
    previousLogin: Type.Optional(Type.String({ description: 'alternating: the login published before, valid until retireAt.' })),
    retireAt: Type.Optional(Type.String({ format: 'date-time', description: 'When previousLogin gets an unknown password and its sessions end.' })),
    lastRotationId: Type.Optional(Type.String({ description: 'The id of the last rotation that finished (its audit records carry it as request_id).' })),
    rotation: Type.Optional(
      Type.Object(
        {
          id: Type.String(),
          login: Type.String(),
          startedAt: Type.String({ format: 'date-time' }),
          attempts: Type.Integer({ minimum: 0 }),
          lastError: Type.Optional(Type.String()),
        },
        { description: 'A rotation under way (or failing): resumed with the same id after a restart.' },
      ),
    ),
  },
  'When the password last rotated and when it rotates next.',
);

export type SecretRotationSpec = Static<typeof SecretRotationSpec>;
export type SecretRotationStatus = Static<typeof SecretRotationStatus>;
export type SecretRotation = Resource<SecretRotationSpec, SecretRotationStatus>;

export const secretRotationKind: KindDefinition = {
  kind: 'SecretRotation',
  plural: 'secretrotations',
  singular: 'secretrotation',
  shortNames: ['sr'],
  scope: 'Namespaced',
  description: 'Rotates a database login password into Kubernetes Secrets and AWS Secrets Manager on a schedule.',
  spec: SecretRotationSpec,
  status: SecretRotationStatus,
  printerColumns: [
    { name: 'Role', type: 'string', jsonPath: '.spec.role' },
    { name: 'Strategy', type: 'string', jsonPath: '.spec.strategy' },
    { name: 'Active', type: 'string', jsonPath: '.status.activeLogin' },
    { name: 'Last Rotated', type: 'date', jsonPath: '.status.lastRotatedAt' },
    { name: 'Next', type: 'string', jsonPath: '.status.nextRotationAt' },
    // A time ahead: a date column would print it as <invalid>.
    { name: 'Previous Retires', type: 'string', jsonPath: '.status.retireAt', priority: 1 },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
