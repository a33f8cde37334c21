// Warehouse: one PostgreSQL database, how to reach it over verified TLS, and the policy of who may
// ask for what in it. Cluster-scoped: namespaces request access to it, the platform team owns it.
import {
  Type,
  type Static,
  type KindDefinition,
  cel,
  NamespaceName,
  RolePattern,
  SchemaName,
  StringMap,
  ObjectName,
  Duration,
  Privileges,
  statusWith,
  READY_COLUMN,
  AGE_COLUMN,
  REASON_COLUMN,
} from './schema.ts';
import type { Resource } from './meta.ts';

export const SSL_MODES = ['verify-full', 'verify-ca', 'require'] as const;
export type SslMode = (typeof SSL_MODES)[number];

const SecretKeyRef = Type.Object({
  namespace: NamespaceName('Namespace of the Secret.'),
  name: ObjectName('Name of the Secret.'),
  key: Type.String({ default: 'ca.crt', minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$', description: 'Key holding the PEM bundle.' }),
});

const CredentialsRef = Type.Object({
  namespace: NamespaceName('Namespace of the Secret.'),
  name: ObjectName('Name of the Secret; it holds the keys username and password. Steward re-reads it when it changes.'),
});

/** Which namespaces an accessPolicy rule applies to (Warehouse and ObjectStore alike). */
export const NamespaceSelector = Type.Object(
  {
    matchNames: Type.Optional(Type.Array(NamespaceName('A namespace.'), { maxItems: 256, minItems: 1, 'x-kubernetes-list-type': 'set' })),
    matchLabels: Type.Optional(StringMap('Namespaces carrying all these labels.')),
  },
  {
    description: 'Which namespaces the rule applies to: by name, by labels, or both (a namespace must match every part given).',
    ...cel({ rule: 'has(self.matchNames) || has(self.matchLabels)', message: 'set matchNames or matchLabels (or both)' }),
  },
);

/** Which namespaces may hold AccessReviews of a Warehouse or an ObjectStore (default deny). */
export function ReviewPolicy(kind: string) {
  return Type.Object(
    { namespaces: NamespaceSelector },
    {
      description: `Which namespaces may hold AccessReviews of this ${kind}: a review reads every grant in its scope and revokes what its reviewers do not keep. Default deny: unset, no AccessReview may review it.`,
    },
  );
}

const AccessRule = Type.Object(
  {
    namespaces: NamespaceSelector,
    schemas: Type.Array(SchemaName('A schema.'), {
      minItems: 1,
      maxItems: 64,
      'x-kubernetes-list-type': 'set',
      description: 'Schemas the namespaces may request tables in, read from in a MaskedView, or place a MaskedView in.',
    }),
    privileges: Privileges('Privileges the namespaces may request. A MaskedView needs SELECT on its own schema and on every source schema.', {
      default: ['SELECT'],
    }),
    principals: Type.Optional(
      Type.Array(RolePattern('A role name, or a pattern with * (analytics_*).'), {
        minItems: 1,
        maxItems: 256,
        'x-kubernetes-list-type': 'set',
        description:
          'Roles the namespaces may name as a DatasetAccess principal or a MaskedView reader or unmasked role. Unset: any role that is never refused. ' +
          "Whatever it says, superusers, roles with BYPASSRLS or CREATEROLE, predefined pg_* roles, Steward's login and Steward's own roles are refused.",
      }),
    ),
    maxDuration: Type.Optional(Duration('Longest access the rule allows; longer requests are capped to it. Unset: no cap.')),
  },
  { description: 'One allow rule. A request is allowed when one rule covers its namespace, schema, every privilege and every role it names.' },
);

export const WarehouseSpec = Type.Object({
  postgres: Type.Object(
    {
      host: Type.String({
        minLength: 1,
        maxLength: 253,
        pattern: '^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^\\[?[0-9a-fA-F:.]+\\]?$',
        description: 'Host name or IP address of the server.',
      }),
      port: Type.Integer({ minimum: 1, maximum: 65535, default: 5432, description: 'TCP port.' }),
      database: Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$', description: 'Database name.' }),
      sslMode: Type.String({
        default: 'verify-full',
        maxLength: 16,
        description: 'verify-full (certificate chain and host name), verify-ca (chain only) or require (encrypted, unverified). Plaintext modes are refused.',
        ...cel({
          rule: "self in ['verify-full', 'verify-ca', 'require']",
          message: 'sslMode must be verify-full, verify-ca or require: plaintext connections (disable, allow, prefer) are refused',
        }),
      }),
      caSecretRef: Type.Optional(SecretKeyRef),
      credentialsSecretRef: CredentialsRef,
    },
    {
      description: 'How to reach the database.',
      ...cel({
        rule: "self.sslMode == 'require' || has(self.caSecretRef)",
        message: 'caSecretRef is required with verify-full and verify-ca: Steward verifies the server against that CA',
      }),
    },
  ),
  accessPolicy: Type.Optional(Type.Array(AccessRule, { maxItems: 128, description: 'Default deny: a DatasetAccess outside every rule is refused.' })),
  reviewPolicy: Type.Optional(ReviewPolicy('Warehouse')),
  resyncPeriod: Type.Optional(Duration('How often Steward re-checks the connection and the grants it manages (default 5m, with jitter).')),
});

export const WarehouseStatus = statusWith(
  {
    tls: Type.Optional(
      Type.Object({
        version: Type.String({ description: 'TLS protocol version of Steward’s own session, from pg_stat_ssl.' }),
        cipher: Type.String({ description: 'Cipher of that session, from pg_stat_ssl.' }),
      }),
    ),
    serverVersion: Type.Optional(Type.String({ description: 'server_version reported by PostgreSQL.' })),
  },
  'What Steward last observed of the database.',
);

export type WarehouseSpec = Static<typeof WarehouseSpec>;
export type WarehouseStatus = Static<typeof WarehouseStatus>;
export type AccessRule = Static<typeof AccessRule>;
export type Warehouse = Resource<WarehouseSpec, WarehouseStatus>;

export const warehouseKind: KindDefinition = {
  kind: 'Warehouse',
  plural: 'warehouses',
  singular: 'warehouse',
  shortNames: ['wh'],
  scope: 'Cluster',
  description: 'A PostgreSQL database reached over verified TLS, and the policy of who may ask for what in it.',
  spec: WarehouseSpec,
  status: WarehouseStatus,
  printerColumns: [
    { name: 'Host', type: 'string', jsonPath: '.spec.postgres.host' },
    { name: 'Database', type: 'string', jsonPath: '.spec.postgres.database' },
    { name: 'TLS', type: 'string', jsonPath: '.status.tls.version' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
