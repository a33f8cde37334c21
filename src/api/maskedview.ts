// MaskedView: a curated view whose PII columns are masked for everyone but the unmasked roles,
// owned by a Steward-managed role so that readers never need access to the raw tables.
import {
  Type,
  type Static,
  type KindDefinition,
  cel,
  StringEnum,
  Identifier,
  ObjectName,
  QualifiedTable,
  RoleName,
  SchemaName,
  statusWith,
  READY_COLUMN,
  AGE_COLUMN,
  REASON_COLUMN,
} from './schema.ts';
import type { Resource } from './meta.ts';

// `nullify` is the mask that returns NULL. It is also accepted as the quoted string "null"; a bare
// `mask: null` in YAML is no value at all, which would mean *no mask*, hence the spelled-out name.
export const MASKS = ['email', 'phone', 'last4', 'partial', 'redact', 'nullify', 'null', 'hash', 'truncate'] as const;
export type Mask = (typeof MASKS)[number];

const Expression = (description: string) => Type.String({ minLength: 1, maxLength: 1024, description });

const Column = Type.Object(
  {
    name: Identifier('Column name in the view.'),
    expr: Expression('A single SQL expression over the declared aliases, e.g. o.quantity * o.unit_price.'),
    mask: Type.Optional(StringEnum(MASKS, { description: 'How non-privileged readers see the value.' })),
    partial: Type.Optional(
      Type.Object(
        {
          keepStart: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
          keepEnd: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
        },
        { description: 'With mask: partial, how many characters stay visible at each end.' },
      ),
    ),
    truncate: Type.Optional(
      Type.Object(
        {
          unit: StringEnum(['year', 'month', 'day'] as const),
        },
        { description: 'With mask: truncate, the date precision that stays visible.' },
      ),
    ),
  },
  {
    ...cel(
      { rule: "!has(self.mask) || self.mask != 'partial' || has(self.partial)", message: 'mask partial needs partial.keepStart/keepEnd' },
      { rule: "!has(self.mask) || self.mask != 'truncate' || has(self.truncate)", message: 'mask truncate needs truncate.unit' },
    ),
  },
);

// YAML 1.1 parsers, kubectl's among them, read a bare key `on` as the boolean true, so
// `{on: c.id = o.customer_id}` reaches the API server as the key "true". Both spellings are accepted
// (exactly one), and the reconciler reads them as the same field: see joinCondition().
const Join = Type.Object(
  {
    table: QualifiedTable('schema.table to join.'),
    alias: Identifier('Alias used in expressions.'),
    on: Type.Optional(Expression('Join condition, e.g. c.id = o.customer_id.')),
    true: Type.Optional(Expression('The join condition, when written as a bare `on:` key (YAML 1.1 reads that key as true). Same meaning as on.')),
    type: StringEnum(['inner', 'left', 'right', 'full'] as const, { default: 'inner' }),
  },
  { ...cel({ rule: 'has(self.on) != has(self.__true__)', message: 'every join needs exactly one on condition' }) },
);

export type Join = Static<typeof Join>;

/** The join condition, whichever way YAML delivered the key. */
export function joinCondition(join: Join): string {
  const condition = join.on ?? join.true;
  if (condition === undefined) throw new Error(`join ${join.alias} has no on condition`);
  return condition;
}

export const MaskedViewSpec = Type.Object(
  {
    warehouse: ObjectName('The Warehouse holding the view.'),
    view: Type.Object({ schema: SchemaName('Schema of the view (never steward, information_schema or pg_*).'), name: Identifier('Name of the view.') }),
    from: Type.Object({ table: QualifiedTable('schema.table the view reads.'), alias: Identifier('Alias used in expressions.') }),
    joins: Type.Optional(Type.Array(Join, { maxItems: 16 })),
    columns: Type.Array(Column, { minItems: 1, maxItems: 256, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
    kAnonymity: Type.Optional(
      Type.Object(
        {
          quasiIdentifiers: Type.Array(Identifier('A view column.'), { minItems: 1, maxItems: 16, 'x-kubernetes-list-type': 'set' }),
          k: Type.Integer({ minimum: 2, maximum: 1000 }),
        },
        { description: 'Small-population guard: where a combination of quasi-identifiers occurs fewer than k times, those columns read NULL.' },
      ),
    ),
    unmaskedRoles: Type.Optional(Type.Array(RoleName('A role.'), { maxItems: 64, 'x-kubernetes-list-type': 'set', description: 'Members see raw values.' })),
    readers: Type.Array(RoleName('A role.'), {
      minItems: 1,
      maxItems: 64,
      'x-kubernetes-list-type': 'set',
      description: "Roles that may read the view: Steward makes them members of the view's reader role, which holds SELECT on it.",
    }),
    owner: Type.String({ minLength: 1, maxLength: 128, description: 'The team that owns the view (recorded in lineage).' }),
  },
  {
    ...cel(
      { rule: '!has(self.joins) || self.joins.all(j, j.alias != self.from.alias)', message: 'every alias must be unique' },
      // The SQL Steward builds names its own subqueries __steward_...; an alias of that name would clash.
      {
        rule: "!self.from.alias.startsWith('__') && (!has(self.joins) || self.joins.all(j, !j.alias.startsWith('__')))",
        message: 'aliases starting with __ are reserved for Steward',
      },
      {
        rule: '!has(self.kAnonymity) || self.kAnonymity.quasiIdentifiers.all(q, self.columns.exists(c, c.name == q))',
        message: 'kAnonymity.quasiIdentifiers must name view columns',
      },
    ),
  },
);

const LineageColumn = Type.Object({
  name: Type.String(),
  source: Type.String(),
  inputs: Type.Array(Type.String()),
  masked: Type.Boolean(),
  mask: Type.Optional(Type.String()),
});

export const MaskedViewStatus = statusWith(
  {
    view: Type.Optional(Type.String({ description: 'schema.name of the view, for display.' })),
    maskedColumns: Type.Optional(Type.Integer({ description: 'How many columns are masked.' })),
    readers: Type.Optional(Type.String({ description: 'Roles that can read the view, for display.' })),
    lineage: Type.Optional(Type.Object({ dataset: Type.String(), columns: Type.Array(LineageColumn) })),
  },
  'What Steward built and verified.',
);

export type MaskedViewSpec = Static<typeof MaskedViewSpec>;
export type MaskedViewStatus = Static<typeof MaskedViewStatus>;
export type MaskedView = Resource<MaskedViewSpec, MaskedViewStatus>;

export const maskedViewKind: KindDefinition = {
  kind: 'MaskedView',
  plural: 'maskedviews',
  singular: 'maskedview',
  shortNames: ['mv'],
  scope: 'Namespaced',
  description: 'A curated view that masks PII for everyone but privileged roles, with column-level lineage.',
  spec: MaskedViewSpec,
  status: MaskedViewStatus,
  printerColumns: [
    { name: 'View', type: 'string', jsonPath: '.status.view' },
    { name: 'Masked', type: 'integer', jsonPath: '.status.maskedColumns' },
    { name: 'Readers', type: 'string', jsonPath: '.status.readers' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
