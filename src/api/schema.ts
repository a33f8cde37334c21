// Building blocks for the CRD schemas. Each kind in src/api is written once with TypeBox, which
// gives both its TypeScript type (Static<>) and the OpenAPI v3 schema that goes into crds/*.yaml.
// Kubernetes wants *structural* schemas: no anyOf/oneOf with types, no `const`, so enums and
// "one of" rules are written as `enum` and CEL (x-kubernetes-validations) instead of TypeBox unions.
import { Type, type TSchema, type SchemaOptions, type TObject, type TProperties } from '@sinclair/typebox';

export { Type };
export type { Static } from '@sinclair/typebox';

export const GROUP = 'steward.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A CEL rule with the message the API server returns when it fails. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

export function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/** A string restricted to a fixed set of values, rendered as a plain `enum` (structural). */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

// PostgreSQL identifiers: lower case, unquoted-identifier characters only, at most 63 bytes (NAMEDATALEN-1).
// Lower case only, so that what the user wrote is exactly the name the catalog shows.
export const IDENTIFIER_PATTERN = '^[a-z_][a-z0-9_]*$';
export function Identifier(description: string, options: SchemaOptions = {}) {
  return Type.String({ pattern: IDENTIFIER_PATTERN, minLength: 1, maxLength: 63, description, ...options });
}

// Names no Steward object may read from, write to, place anything in or grant to, whatever a
// Warehouse's policy says: Steward's own schema (its audit trail and mask keys), PostgreSQL's system
// schemas, its predefined roles (pg_*) and Steward's own roles (stw_*). Refused here, at admission,
// and again by the reconcilers (governance/reserved.ts), which also check what only the database
// knows (superusers, Steward's own login).
const RESERVED_SCHEMA_RULE = {
  rule: "self != 'steward' && self != 'information_schema' && !self.startsWith('pg_')",
  message: "schemas steward (Steward's own), information_schema and pg_* (PostgreSQL's) are never grantable",
};
const RESERVED_ROLE_RULE = {
  rule: "!self.startsWith('pg_') && !self.startsWith('stw_')",
  message: "roles starting with pg_ (PostgreSQL's predefined roles) or stw_ (Steward's own) are never grantable",
};

/** A schema someone may be granted on or place a view in. */
export function SchemaName(description: string) {
  return Identifier(description, cel(RESERVED_SCHEMA_RULE));
}

/** A role someone may name as a principal, reader or unmasked role. */
export function RoleName(description: string) {
  return Identifier(description, cel(RESERVED_ROLE_RULE));
}

/** A role name, or a pattern where * stands for any run of characters (analytics_*). */
export function RolePattern(description: string) {
  return Type.String({ pattern: '^[a-z0-9_*]+$', minLength: 1, maxLength: 63, description });
}

/** schema.table, both parts identifiers, outside the reserved schemas. */
export const QUALIFIED_TABLE_PATTERN = '^[a-z_][a-z0-9_]*\\.[a-z_][a-z0-9_]*$';
export function QualifiedTable(description: string) {
  return Type.String({
    pattern: QUALIFIED_TABLE_PATTERN,
    minLength: 3,
    maxLength: 127,
    description,
    ...cel({
      rule: "!self.startsWith('steward.') && !self.startsWith('information_schema.') && !self.startsWith('pg_')",
      message: RESERVED_SCHEMA_RULE.message,
    }),
  });
}

/** A map of string to string, as Kubernetes wants it (additionalProperties, not patternProperties). */
export function StringMap(description: string) {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string', maxLength: 253 },
    maxProperties: 64,
    description,
  });
}

/** A Kubernetes object name (RFC 1123 subdomain). */
export function ObjectName(description: string) {
  return Type.String({
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
    minLength: 1,
    maxLength: 253,
    description,
  });
}

/** A Kubernetes namespace name (RFC 1123 label). */
export function NamespaceName(description: string) {
  return Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', minLength: 1, maxLength: 63, description });
}

// Go duration syntax (what CEL's duration() parses): 720h, 1h30m, 90s.
export function Duration(description: string) {
  return Type.String({
    pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$',
    maxLength: 32,
    description,
    ...cel({ rule: "duration(self) > duration('0s')", message: 'must be a positive duration such as 720h or 90m' }),
  });
}

/** An RFC 3339 timestamp. `format: date-time` is enforced by the API server. */
export function Timestamp(description: string) {
  return Type.String({ format: 'date-time', maxLength: 64, description });
}

// A five-field cron expression (minute hour day-of-month month day-of-week).
export function Cron(description: string) {
  return Type.String({
    pattern: '^\\s*([0-9*,/-]+)\\s+([0-9*,/-]+)\\s+([0-9*,/?LW-]+)\\s+([0-9A-Za-z*,/-]+)\\s+([0-9A-Za-z*,/?L#-]+)\\s*$',
    maxLength: 128,
    description,
  });
}

/** every: duration | cron: expression, exactly one. */
export function Schedule(description: string) {
  return Type.Object(
    {
      every: Type.Optional(Duration('Run at this interval, counted from the previous run.')),
      cron: Type.Optional(Cron('Run on this five-field cron schedule (UTC).')),
    },
    {
      description,
      ...cel({ rule: 'has(self.every) != has(self.cron)', message: 'set exactly one of every or cron' }),
    },
  );
}

export const SQL_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'] as const;
export type SqlPrivilege = (typeof SQL_PRIVILEGES)[number];

export function Privileges(description: string, options: SchemaOptions = {}) {
  return Type.Array(StringEnum(SQL_PRIVILEGES), {
    minItems: 1,
    maxItems: SQL_PRIVILEGES.length,
    'x-kubernetes-list-type': 'set',
    description,
    ...options,
  });
}

// Kubernetes condition conventions (metav1.Condition).
export const Condition = Type.Object({
  type: Type.String({
    maxLength: 316,
    pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
  }),
  status: StringEnum(['True', 'False', 'Unknown'] as const),
  reason: Type.String({ maxLength: 1024, minLength: 1, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' }),
  message: Type.String({ maxLength: 32768 }),
  lastTransitionTime: Type.String({ format: 'date-time' }),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
});

export function Conditions() {
  return Type.Array(Condition, {
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    maxItems: 16,
    description: 'Kubernetes conditions; Ready is the summary, Reconciling while work is under way, Stalled when a human is needed.',
  });
}

/** Fields every status has. */
export function statusWith<P extends TProperties>(properties: P, description: string) {
  return Type.Object(
    {
      observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation this status describes.' })),
      conditions: Type.Optional(Conditions()),
      ...properties,
    },
    { description },
  );
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export const READY_COLUMN: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
};
export const REASON_COLUMN: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  priority: 1,
};
export const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** Everything needed to render one CRD and to talk to its resource. */
export interface KindDefinition<Spec extends TSchema = TSchema, Status extends TSchema = TSchema> {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: Spec;
  status: Status;
  printerColumns: PrinterColumn[];
  /** CEL rules on the whole object (e.g. rules that relate spec and metadata). */
  rootRules?: CelRule[];
}

export function objectSchema(spec: TObject | TSchema, status: TSchema, description: string, rootRules?: CelRule[]) {
  return Type.Object(
    {
      apiVersion: Type.String(),
      kind: Type.String(),
      metadata: Type.Object({}),
      spec,
      status: Type.Optional(status),
    },
    { description, ...(rootRules ? cel(...rootRules) : {}) },
  );
}

/** Where a kind is served: what a client needs to address it (runtime's ResourceType, by shape). */
export function resourceType(kind: KindDefinition): { group: string; version: string; plural: string; kind: string; namespaced: boolean } {
  return { group: GROUP, version: VERSION, plural: kind.plural, kind: kind.kind, namespaced: kind.scope === 'Namespaced' };
}
