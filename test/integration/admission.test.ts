// Admission on the real API server: every example of api.md is accepted as written, and bad objects
// are refused by the schema or its CEL rules with a message that names the field.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { KINDS } from '../../src/api/index.ts';
import { REPO, ensureNamespace, kubectl } from './harness.ts';

const examplesDir = join(REPO, 'deploy', 'examples');
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function example(file: string): Record<string, any> {
  return parseAllDocuments(readFileSync(join(examplesDir, file), 'utf8'), { version: '1.1' })[0]!.toJSON();
}

function dryRun(obj: unknown): { code: number; stderr: string } {
  return kubectl(['apply', '--dry-run=server', '-f', '-'], typeof obj === 'string' ? obj : stringify(obj));
}

beforeAll(async () => {
  const apply = kubectl(['apply', '--server-side', '--force-conflicts', '-k', join(REPO, 'crds')]);
  expect(apply.code, apply.stderr).toBe(0);
  for (const ns of ['analytics', 'data-eng', 'pipelines', 'governance']) await ensureNamespace(ns);
  // Newly established CRDs can take a moment to serve.
  for (let i = 0; i < 50 && dryRun(readFileSync(join(examplesDir, 'warehouse.yaml'), 'utf8')).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
});

describe('api.md examples', () => {
  it.each(examples)('deploy/examples/%s is accepted as written', (file) => {
    const r = kubectl(['apply', '--dry-run=server', '-f', join(examplesDir, file)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('every kind has an example', () => {
    const kinds = new Set(examples.map((f) => example(f).kind));
    expect([...kinds].sort()).toEqual(KINDS.map((k) => k.kind).sort());
  });
});

type Mutation = (o: Record<string, any>) => void;
const bad: [string, string, Mutation, RegExp][] = [
  [
    'dsa with both warehouse and s3',
    'datasetaccess.yaml',
    (o) => (o.spec.s3 = example('datasetaccess-s3.yaml').spec.s3),
    /spec: Invalid value: .*set exactly one of spec.warehouse or spec.s3/,
  ],
  [
    'dsa with neither warehouse nor s3',
    'datasetaccess.yaml',
    (o) => delete o.spec.warehouse,
    /spec: Invalid value: .*set exactly one of spec.warehouse or spec.s3/,
  ],
  [
    'dsa with an IAM principal on a warehouse',
    'datasetaccess.yaml',
    (o) => (o.spec.principal = { iamRole: 'data-scientist' }),
    /spec.principal: Invalid value: .*spec.warehouse needs spec.principal.role/,
  ],
  [
    'dsa with a warehouse role on s3',
    'datasetaccess-s3.yaml',
    (o) => (o.spec.principal = { role: 'analytics_reader' }),
    /spec.principal: Invalid value: .*spec.s3 needs spec.principal.iamRole/,
  ],
  [
    'dsa with two principals',
    'datasetaccess.yaml',
    (o) => (o.spec.principal.iamRole = 'x'),
    /spec.principal: Invalid value: .*set exactly one of principal.role or principal.iamRole/,
  ],
  [
    'a role with a quote and semicolon',
    'datasetaccess.yaml',
    (o) => (o.spec.principal.role = 'reader"; DROP TABLE raw.orders; --'),
    /spec.principal.role in body should match/,
  ],
  ['a schema with a comment marker', 'datasetaccess.yaml', (o) => (o.spec.warehouse.schema = 'curated--'), /spec.warehouse.schema in body should match/],
  ['a table with Unicode', 'datasetaccess.yaml', (o) => (o.spec.warehouse.tables = ['cüstomer']), /spec.warehouse.tables\[0\] in body should match/],
  [
    'a table name of 64 bytes',
    'datasetaccess.yaml',
    (o) => (o.spec.warehouse.tables = ['t'.repeat(64)]),
    /spec.warehouse.tables\[0\]: Too long: may not be (longer than|more than) 63/,
  ],
  ['an upper-case identifier', 'datasetaccess.yaml', (o) => (o.spec.principal.role = 'Analytics'), /spec.principal.role in body should match/],
  ['the ALL privilege', 'datasetaccess.yaml', (o) => (o.spec.warehouse.privileges = ['ALL']), /spec.warehouse.privileges\[0\]: Unsupported value: "ALL"/],
  [
    'an empty privilege list',
    'datasetaccess.yaml',
    (o) => (o.spec.warehouse.privileges = []),
    /spec.warehouse.privileges: Invalid value: .*should have at least 1 items/,
  ],
  ['an empty table list', 'datasetaccess.yaml', (o) => (o.spec.warehouse.tables = []), /spec.warehouse.tables: Invalid value: .*should have at least 1 items/],
  [
    '"*" with other tables',
    'datasetaccess.yaml',
    (o) => (o.spec.warehouse.tables = ['*', 'orders']),
    /spec.warehouse.tables: Invalid value: .*"\*" already means every table/,
  ],
  ['a duration that does not parse', 'datasetaccess-s3.yaml', (o) => (o.spec.duration = '30 days'), /spec.duration in body should match/],
  ['a zero duration', 'datasetaccess-s3.yaml', (o) => (o.spec.duration = '0h'), /spec.duration: Invalid value: .*must be a positive duration/],
  ['a timestamp that is not RFC 3339', 'datasetaccess.yaml', (o) => (o.spec.expiresAt = 'next tuesday'), /spec.expiresAt in body must be of type date-time/],
  ['both expiresAt and duration', 'datasetaccess.yaml', (o) => (o.spec.duration = '720h'), /spec: Invalid value: .*set expiresAt or duration, not both/],
  ['no justification', 'datasetaccess.yaml', (o) => delete o.spec.justification, /spec.justification: Required value/],
  ['an s3 prefix with a leading slash', 'datasetaccess-s3.yaml', (o) => (o.spec.s3.prefix = '/analytics/'), /spec.s3.prefix in body should match/],
  // An IAM wildcard in a prefix would widen the policy's ARNs and s3:prefix condition past what was asked.
  ['an s3 prefix with an IAM wildcard', 'datasetaccess-s3.yaml', (o) => (o.spec.s3.prefix = 'analytics/*/'), /spec.s3.prefix in body should match/],
  ['an s3 prefix with a ?', 'datasetaccess-s3.yaml', (o) => (o.spec.s3.prefix = 'analytic?/'), /spec.s3.prefix in body should match/],
  [
    'an ObjectStore rule prefix with a wildcard',
    'objectstore.yaml',
    (o) => (o.spec.accessPolicy[0].prefixes = ['*']),
    /spec.accessPolicy\[0\].prefixes\[0\] in body should match/,
  ],
  [
    'an ObjectStore rule with no namespaces',
    'objectstore.yaml',
    (o) => (o.spec.accessPolicy[0].namespaces = {}),
    /spec.accessPolicy\[0\].namespaces: Invalid value: .*set matchNames or matchLabels/,
  ],
  ['an ObjectStore access that is not read or readWrite', 'objectstore.yaml', (o) => (o.spec.accessPolicy[0].access = ['admin']), /Unsupported value: "admin"/],
  ['an ObjectStore endpoint that is not a URL', 'objectstore.yaml', (o) => (o.spec.s3.endpoint = 'minio:9000'), /spec.s3.endpoint in body should match/],
  ['an ObjectStore bucket with upper case', 'objectstore.yaml', (o) => (o.spec.s3.bucket = 'Company'), /spec.s3.bucket in body should match/],
  [
    'plaintext sslMode',
    'warehouse.yaml',
    (o) => (o.spec.postgres.sslMode = 'disable'),
    /spec.postgres.sslMode: Invalid value: .*plaintext connections .* are refused/,
  ],
  ['sslMode prefer', 'warehouse.yaml', (o) => (o.spec.postgres.sslMode = 'prefer'), /spec.postgres.sslMode: Invalid value: .*plaintext/],
  ['verify-full without a CA', 'warehouse.yaml', (o) => delete o.spec.postgres.caSecretRef, /spec.postgres: Invalid value: .*caSecretRef is required/],
  [
    'a policy rule with no namespaces',
    'warehouse.yaml',
    (o) => (o.spec.accessPolicy[0].namespaces = {}),
    /spec.accessPolicy\[0\].namespaces: Invalid value: .*set matchNames or matchLabels/,
  ],
  [
    'a policy maxDuration that does not parse',
    'warehouse.yaml',
    (o) => (o.spec.accessPolicy[0].maxDuration = '90d'),
    /spec.accessPolicy\[0\].maxDuration in body should match/,
  ],
  ['a port out of range', 'warehouse.yaml', (o) => (o.spec.postgres.port = 70000), /spec.postgres.port: Invalid value: 70000: .*less than or equal to 65535/],
  ['a view column with a hostile name', 'maskedview.yaml', (o) => (o.spec.columns[0].name = 'id; drop'), /spec.columns\[0\].name in body should match/],
  ['a join on an unqualified table', 'maskedview.yaml', (o) => (o.spec.joins[0].table = 'customers'), /spec.joins\[0\].table in body should match/],
  [
    'a join without a condition',
    'maskedview.yaml',
    (o) => {
      delete o.spec.joins[0].on;
      delete o.spec.joins[0].true;
    },
    /spec.joins\[0\]: Invalid value: .*every join needs exactly one on condition/,
  ],
  ['an unknown mask', 'maskedview.yaml', (o) => (o.spec.columns[1].mask = 'rot13'), /spec.columns\[1\].mask: Unsupported value: "rot13"/],
  ['no readers', 'maskedview.yaml', (o) => (o.spec.readers = []), /spec.readers: Invalid value: .*should have at least 1 items/],
  [
    'a schedule with both every and cron',
    'secretrotation.yaml',
    (o) => (o.spec.schedule.cron = '0 3 * * 0'),
    /spec.schedule: Invalid value: .*set exactly one of every or cron/,
  ],
  ['no rotation target', 'secretrotation.yaml', (o) => (o.spec.targets = {}), /spec.targets: Invalid value: .*name at least one target/],
  [
    'a password shorter than 16',
    'secretrotation.yaml',
    (o) => (o.spec.password.length = 8),
    /spec.password.length: Invalid value: 8: .*greater than or equal to 16/,
  ],
  ['an unknown strategy', 'secretrotation.yaml', (o) => (o.spec.strategy = 'random'), /spec.strategy: Unsupported value: "random"/],
  [
    'a review decision on a malformed access',
    'accessreview.yaml',
    (o) => (o.spec.decisions[0].access = 'churn-analysis'),
    /spec.decisions\[0\].access in body should match/,
  ],
  ['a cron with four fields', 'accessreview.yaml', (o) => (o.spec.schedule.cron = '0 9 1 *'), /spec.schedule.cron in body should match/],
  ['no reviewers', 'accessreview.yaml', (o) => (o.spec.reviewers = []), /spec.reviewers: Invalid value: .*should have at least 1 items/],
];

describe('bad objects are refused at admission with a message naming the field', () => {
  it.each(bad)('%s', (_what, file, mutate, message) => {
    const obj = example(file);
    obj.metadata.name = `${obj.metadata.name}-bad`;
    mutate(obj);
    const r = dryRun(obj);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });
});
