// AccessReview on the real stack, one review of a Warehouse and an ObjectStore (PostgreSQL and IAM on
// moto): a forced cycle lists exactly the grants in scope and exactly the grants made by hand;
// reviewers' decisions take effect, proven by logging in as each principal and by reading IAM;
// stale decisions and decisions by non-reviewers change nothing; at the due time what nobody decided
// follows onMissingDecision, also across a Steward restart.
import { CreateRoleCommand, IAMClient, ListRolePoliciesCommand, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_REVIEW_TYPE } from '../../src/controllers/accessreview.ts';
import { DATASET_ACCESS_TYPE } from '../../src/controllers/datasetaccess.ts';
import { MASKED_VIEW_TYPE } from '../../src/controllers/maskedview.ts';
import { OBJECT_STORE_TYPE } from '../../src/controllers/objectstore.ts';
import { WAREHOUSE_TYPE } from '../../src/controllers/warehouse.ts';
import {
  REPO,
  Steward,
  apply,
  condition,
  ensureNamespace,
  eventsAbout,
  kube,
  maskedViewYaml,
  pgConfig,
  putSecret,
  randomPassword,
  unique,
  waitFor,
  waitForCondition,
  withPg,
  type Conditioned,
  sumMetric,
  reconcilesOf,
  putWarehouseSecrets,
  stackWarehouseYaml,
} from './harness.ts';

const id = unique('r').slice(2).replace(/-/g, '');
const DB = `ar_${id}`;
const NS = `ar-${id}`;
const NS_OUT = `ar-out-${id}`;
const NS_GOV = `ar-gov-${id}`;
const NS_ROGUE = `ar-rogue-${id}`;
const WH = `wh-ar-${id}`;
const PW = randomPassword();
const IN = [1, 2, 3, 4, 5].map((n) => `a${n}_${id}`);
const OUT_NS = `b1_${id}`;
const OUT_SCHEMA = `b2_${id}`;
const READER = `reader_${id}`;
const MALLORY = `mallory_${id}`;
const EVE = `eve_${id}`;
/** A group role, the principal of the access `team`: TEAMMATE is its member (the team's business, not a finding). */
const ANALYSTS = `analysts_${id}`;
const TEAMMATE = `teammate_${id}`;
/** The owner of schema curated and its table sales: EVE is made its member by hand, and so holds what the owner holds. */
const SALES_OWNER = `sales_owner_${id}`;
const STORE = `store-ar-${id}`;
const BUCKET = `ar-${id}`;
/** The IAM role of the access `bucket`: an extra inline policy is put on it by hand. */
const ROLE = `ar-scientist-${id}`;
const iam = new IAMClient({ region: 'us-east-1' });
const s3 = new S3Client({ region: 'us-east-1', forcePathStyle: true });
const iamPolicies = async () => (await iam.send(new ListRolePoliciesCommand({ RoleName: ROLE }))).PolicyNames ?? [];
/** A grantee whose name needs quoting: the revoke must name it exactly. */
const ODD = `Odd "Quote; ${id}`;
const odd = `"${ODD.replace(/"/g, '""')}"`;
let steward: Steward;

const asSuperuser = <T>(fn: (c: pg.Client) => Promise<T>) => withPg(fn, { database: DB });

/** Reads the table as the login: true, or the error. */
async function reads(user: string, table = 'curated.sales'): Promise<true | string> {
  const c = new pg.Client(pgConfig({ database: DB, user, password: PW }));
  try {
    await c.connect();
    await c.query(`SELECT * FROM ${table}`);
    return true;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const bucketAccess = (name: string) => `
apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${NS}}
spec:
  principal: {iamRole: ${ROLE}}
  s3: {bucket: ${BUCKET}, prefix: analytics/, access: read}
  duration: 720h
  justification: review test ${name}
`;

const access = (name: string, principal: string, o: { namespace?: string; schema?: string; table?: string } = {}) => `
apiVersion: steward.dev/v1alpha1
kind: DatasetAccess
metadata: {name: ${name}, namespace: ${o.namespace ?? NS}}
spec:
  principal: {role: ${principal}}
  warehouse: {name: ${WH}, schema: ${o.schema ?? 'curated'}, tables: [${o.table ?? 'sales'}]}
  duration: 720h
  justification: review test ${name}
`;

function review(o: { name?: string; namespace?: string; dueIn?: string; onMissing?: string; decisions?: string } = {}): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: AccessReview
metadata: {name: ${o.name ?? 'quarterly'}, namespace: ${o.namespace ?? NS_GOV}}
spec:
  warehouse: ${WH}
  schedule: {cron: "0 9 1 1 *"}
  scope: {namespaces: [${NS}], schemas: [curated, views], objectStore: ${STORE}, prefixes: [analytics/]}
  reviewers: [alice@example.com]
  dueIn: ${o.dueIn ?? '1h'}
  onMissingDecision: ${o.onMissing ?? 'revoke'}
${o.decisions ? `  decisions:\n${o.decisions}` : ''}`;
}

interface ReviewStatus {
  cycle?: { id: string; dueAt: string; completedAt?: string };
  findings?: { kind: string; access: string; principal: string; decision: string; by?: string }[];
  outOfBand?: { id: string; kind: string; grantee: string; object: string; privileges: string; decision: string }[];
  ignoredDecisions?: { decision: string; why: string }[];
  summary?: { pending: number; kept: number; revoked: number; outOfBand: number };
}
const getReview = async (name = 'quarterly') => (await kube.get<Conditioned & { status?: ReviewStatus }>(ACCESS_REVIEW_TYPE, name, NS_GOV)).status ?? {};

/** Starts a cycle now and waits for it; returns its status. */
async function forceCycle(name = 'quarterly'): Promise<ReviewStatus> {
  const before = (await getReview(name)).cycle?.id;
  await kube.patch(ACCESS_REVIEW_TYPE, name, NS_GOV, { metadata: { annotations: { 'steward.dev/review-requested-at': new Date().toISOString() } } }, 'merge');
  return waitFor(`a new cycle of ${name}`, async () => {
    const s = await getReview(name);
    return s.cycle && s.cycle.id !== before ? s : undefined;
  });
}

/** Applies decisions for the current cycle and waits until the review has seen them. */
async function decide(lines: string[], until: (s: ReviewStatus) => boolean): Promise<ReviewStatus> {
  apply(review({ decisions: lines.map((l) => `    - ${l}\n`).join('') }));
  return waitFor('the decisions applied', async () => {
    const s = await getReview();
    return until(s) ? s : undefined;
  });
}

beforeAll(async () => {
  await withPg((c) => c.query(`CREATE DATABASE ${DB}`));
  const logins = [...IN, OUT_NS, OUT_SCHEMA, READER, MALLORY, EVE, TEAMMATE];
  await asSuperuser((c) =>
    c.query(`
    ${logins.map((r) => `CREATE ROLE ${r} LOGIN PASSWORD '${PW}';`).join('\n')}
    CREATE ROLE ${ANALYSTS} NOLOGIN; GRANT ${ANALYSTS} TO ${TEAMMATE};
    CREATE ROLE ${SALES_OWNER} NOLOGIN;
    CREATE ROLE ${odd} NOLOGIN;
    CREATE SCHEMA curated; CREATE SCHEMA raw;
    -- The view's own schema: curated's owner (SALES_OWNER, whose member EVE becomes) could replace a view there, and Steward would rightly withdraw it.
    CREATE SCHEMA views;
    CREATE TABLE curated.sales (id int, amount int); INSERT INTO curated.sales VALUES (1, 10);
    ALTER SCHEMA curated OWNER TO ${SALES_OWNER}; ALTER TABLE curated.sales OWNER TO ${SALES_OWNER};
    CREATE TABLE raw.orders (id int, customer_id int, amount int); INSERT INTO raw.orders VALUES (1, 1, 10);
    CREATE TABLE raw.customers (id int, email text); INSERT INTO raw.customers VALUES (1, 'a@example.com');
    -- Not behind the view: an access to it would (rightly) stop the view.
    CREATE TABLE raw.events (id int);
  `),
  );
  for (const ns of [NS, NS_OUT, NS_GOV, NS_ROGUE]) await ensureNamespace(ns);
  await putWarehouseSecrets(WH);
  apply(
    `${stackWarehouseYaml({
      name: WH,
      database: DB,
      policy: `    - namespaces: {matchNames: [${NS}, ${NS_OUT}]}
      schemas: [curated, raw, views]`,
    })}  reviewPolicy:
    namespaces: {matchNames: [${NS_GOV}]}
`,
  );
  await putSecret('steward-system', `${STORE}-aws`, { accessKeyId: `AKIA${id.toUpperCase().padEnd(16, 'X').slice(0, 16)}`, secretAccessKey: randomPassword() });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await iam.send(
    new CreateRoleCommand({
      RoleName: ROLE,
      AssumeRolePolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
      }),
    }),
  );
  apply(`apiVersion: steward.dev/v1alpha1
kind: ObjectStore
metadata: {name: ${STORE}}
spec:
  s3: {bucket: ${BUCKET}, region: us-east-1, credentialsSecretRef: {namespace: steward-system, name: ${STORE}-aws}}
  auditWarehouse: ${WH}
  accessPolicy:
    - namespaces: {matchNames: [${NS}]}
      prefixes: [analytics/]
      access: [read]
      principals: [${ROLE}]
      maxDuration: 2160h
  reviewPolicy:
    namespaces: {matchNames: [${NS_GOV}]}
`);
  steward = Steward.start({ args: ['--resync', '2s'] });
  await waitForCondition(WAREHOUSE_TYPE, WH, undefined, 'Ready', 'True');
  await waitForCondition(OBJECT_STORE_TYPE, STORE, undefined, 'Ready', 'True');
  // In scope: three logins and a group role on curated.sales, and an IAM role on the bucket's prefix.
  for (const n of [1, 2, 3]) apply(access(`in${n}`, IN[n - 1]!));
  apply(access('team', ANALYSTS));
  apply(bucketAccess('bucket'));
  apply(access('elsewhere', OUT_NS, { namespace: NS_OUT }));
  apply(access('raw', OUT_SCHEMA, { schema: 'raw', table: 'events' }));
  apply(
    maskedViewYaml({
      name: 'masked',
      namespace: NS,
      warehouse: WH,
      readers: [READER],
      body: `  view: {schema: views, name: masked_orders}
  from: {table: raw.orders, alias: o}
  joins:
    - {table: raw.customers, alias: c, on: c.id = o.customer_id, type: inner}
  columns:
    - {name: order_id, expr: o.id}
    - {name: email, expr: c.email, mask: email}`,
    }),
  );
  for (const name of ['in1', 'in2', 'in3', 'team', 'bucket']) await waitForCondition(DATASET_ACCESS_TYPE, name, NS, 'Ready', 'True', 'Granted');
  await waitForCondition(DATASET_ACCESS_TYPE, 'elsewhere', NS_OUT, 'Ready', 'True', 'Granted');
  await waitForCondition(DATASET_ACCESS_TYPE, 'raw', NS, 'Ready', 'True', 'Granted');
  await waitForCondition(MASKED_VIEW_TYPE, 'masked', NS, 'Ready', 'True');
  // By hand, outside Steward, three grants: a direct one (the table, and its schema's USAGE that makes
  // it readable), a membership in a role with the table's privileges (its owner's), and an extra
  // inline policy on the access `bucket`'s IAM role. (A membership in a Steward group role itself is
  // drift: the access's own reconcile removes it, see datasetaccess.test.ts.)
  await asSuperuser((c) =>
    c.query(`GRANT USAGE ON SCHEMA curated TO ${MALLORY}; GRANT SELECT ON curated.sales TO ${MALLORY}; GRANT ${SALES_OWNER} TO ${EVE};`),
  );
  const extra = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: `arn:aws:s3:::${BUCKET}/*` }] };
  await iam.send(new PutRolePolicyCommand({ RoleName: ROLE, PolicyName: 'extra-policy', PolicyDocument: JSON.stringify(extra) }));
  expect(await reads(MALLORY)).toBe(true);
  expect(await reads(EVE)).toBe(true);
  expect(await reads(TEAMMATE)).toBe(true); // through the access `team`: explained, not a finding
  apply(review());
  await waitForCondition(ACCESS_REVIEW_TYPE, 'quarterly', NS_GOV, 'Ready', 'True');
}, 120_000);

afterAll(async () => {
  await steward?.stop();
  for (const [type, ns] of [
    [ACCESS_REVIEW_TYPE, NS_GOV],
    [ACCESS_REVIEW_TYPE, NS_ROGUE],
    [DATASET_ACCESS_TYPE, NS],
    [DATASET_ACCESS_TYPE, NS_OUT],
    [MASKED_VIEW_TYPE, NS],
  ] as const) {
    const items = await kube.list<Conditioned>(type, { namespace: ns }).catch(() => ({ items: [] as Conditioned[] }));
    for (const o of items.items) {
      await kube.patch(type, o.metadata.name, ns, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
      await kube.delete(type, o.metadata.name, ns).catch(() => undefined);
    }
  }
  await kube.patch(OBJECT_STORE_TYPE, STORE, undefined, { metadata: { finalizers: null } }, 'merge').catch(() => undefined);
  await kube.delete(OBJECT_STORE_TYPE, STORE).catch(() => undefined);
  await kube.delete(WAREHOUSE_TYPE, WH).catch(() => undefined);
});

describe('AccessReview, a forced cycle', () => {
  it('lists exactly the six grants in scope (PostgreSQL and S3) and exactly the three made by hand', async () => {
    const s = await forceCycle();
    expect(s.cycle!.id).toMatch(/^\d{4}-\d{2}-\d{2}(-\d+)?$/);
    const listed = s.findings!.map((f) => `${f.kind} ${f.access} ${f.principal}`).sort();
    expect(listed).toEqual(
      [
        ...[1, 2, 3].map((n) => `DatasetAccess ${NS}/in${n} ${IN[n - 1]}`),
        `DatasetAccess ${NS}/team ${ANALYSTS}`,
        `DatasetAccess ${NS}/bucket ${ROLE}`,
        `MaskedView ${NS}/masked ${READER}`,
      ].sort(),
    );
    expect(s.findings!.every((f) => f.decision === 'pending')).toBe(true);
    const oob = s.outOfBand!.map((o) => `${o.kind} ${o.grantee} ${o.object} ${o.privileges}`).sort();
    expect(oob).toEqual(
      [
        `table ${MALLORY} curated.sales SELECT (and USAGE on schema curated)`,
        `membership ${EVE} ${SALES_OWNER} MEMBER`,
        `iam-policy ${ROLE} extra-policy inline`,
      ].sort(),
    );
    expect(s.outOfBand!.every((o) => /^oob-[0-9a-f]{6}$/.test(o.id) && o.decision === 'reported')).toBe(true);
    expect(s.summary).toEqual({ pending: 6, kept: 0, revoked: 0, outOfBand: 3 });
    expect((await eventsAbout('quarterly')).some((e) => e.reason === 'ReviewStarted' && e.note.includes('alice@example.com'))).toBe(true);

    // `steward review`: the same, as a table, with the decisions to paste; -o json for tools.
    const text = spawnSync(join(REPO, 'bin/steward'), ['review', '-n', NS_GOV, 'quarterly'], { encoding: 'utf8' });
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toContain(`Warehouse ${WH} and ObjectStore ${STORE}: cycle ${s.cycle!.id}`);
    expect(text.stdout).toMatch(new RegExp(`${NS}/in1\\s+DatasetAccess\\s+${IN[0]}`));
    expect(text.stdout).toContain('(not recorded)'); // PostgreSQL keeps no per-role usage record
    for (const o of s.outOfBand!) expect(text.stdout).toContain(`- {cycle: "${s.cycle!.id}", finding: ${o.id}, decision: keep`);
    expect(text.stdout).toContain(`- {cycle: "${s.cycle!.id}", access: ${NS}/bucket, decision: keep`);
    const json = spawnSync(join(REPO, 'bin/steward'), ['review', '-n', NS_GOV, 'quarterly', '-o', 'json'], { encoding: 'utf8' });
    expect(JSON.parse(json.stdout).findings).toHaveLength(6);

    // An open cycle at rest reads nothing again: resyncs run (2 s here), the catalog is not queried.
    const counters = async () => {
      const text = await steward.metricsText();
      return {
        reads: sumMetric(text, /^steward_review_reads_total\{source="postgres"\} (\d+)$/gm),
        reconciles: sumMetric(text, reconcilesOf('accessreview')),
      };
    };
    await new Promise((r) => setTimeout(r, 1500));
    const before = await counters();
    expect(before.reads).toBeGreaterThan(0); // the counter counts: the cycle's start read
    await new Promise((r) => setTimeout(r, 5000));
    const after = await counters();
    expect(after.reconciles).toBeGreaterThan(before.reconciles);
    expect(after.reads).toBe(before.reads);
  });

  it('keep and revoke take effect as the principals see it; a stale decision and a non-reviewer change nothing', async () => {
    const cycle = (await getReview()).cycle!.id;
    const s = await decide(
      [
        `{cycle: "${cycle}", access: ${NS}/in1, decision: keep, by: alice@example.com, reason: dashboards}`,
        `{cycle: "${cycle}", access: ${NS}/in2, decision: revoke, by: alice@example.com, reason: left the team}`,
        `{cycle: "2026-01-01", access: ${NS}/in1, decision: revoke, by: alice@example.com}`,
        `{cycle: "${cycle}", access: ${NS}/in3, decision: revoke, by: mallory@example.com}`,
      ],
      (x) => x.summary?.revoked === 1 && x.summary.kept === 1,
    );
    const revoked = await waitForCondition(DATASET_ACCESS_TYPE, 'in2', NS, 'Ready', 'False', 'RevokedByReview');
    expect(condition(revoked, 'Ready')?.message).toMatch(/cycle .* by alice@example.com \(left the team\)/);
    expect(await reads(IN[1]!)).toMatch(/permission denied/);
    expect(await reads(IN[0]!)).toBe(true); // kept, and the stale revoke did nothing
    expect(await reads(IN[2]!)).toBe(true); // mallory is not a reviewer
    expect(s.ignoredDecisions!.map((i) => i.why)).toEqual(
      expect.arrayContaining([`stale: for cycle 2026-01-01, not the current ${cycle}`, 'mallory@example.com is not one of spec.reviewers']),
    );
    const audited = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT action, resource FROM steward.audit_log WHERE kind = 'DatasetAccess' AND name = 'in2' AND action = 'access.revoke_by_review'`))
          .rows,
    );
    expect(audited).toHaveLength(1);
  });

  it('a revoke decision on an out-of-band grant removes it from the catalog and from IAM', async () => {
    // One more by hand, to a grantee whose name needs quoting: the revoke must name it exactly.
    await asSuperuser((c) => c.query(`GRANT SELECT, UPDATE ON curated.sales TO ${odd}`));
    const s0 = await forceCycle();
    expect(s0.outOfBand).toHaveLength(4);
    const membership = s0.outOfBand!.find((o) => o.kind === 'membership')!;
    const quoted = s0.outOfBand!.find((o) => o.grantee === ODD)!;
    const direct = s0.outOfBand!.find((o) => o.grantee === MALLORY)!;
    const policy = s0.outOfBand!.find((o) => o.kind === 'iam-policy')!;
    await decide(
      [
        `{cycle: "${s0.cycle!.id}", finding: ${membership.id}, decision: revoke, by: alice@example.com, reason: nobody asked for it}`,
        `{cycle: "${s0.cycle!.id}", finding: ${quoted.id}, decision: revoke, by: alice@example.com}`,
        `{cycle: "${s0.cycle!.id}", finding: ${direct.id}, decision: revoke, by: alice@example.com}`,
        `{cycle: "${s0.cycle!.id}", finding: ${policy.id}, decision: revoke, by: alice@example.com}`,
      ],
      (x) => x.outOfBand?.filter((o) => o.decision === 'revoked').length === 4,
    );
    // The direct grant went whole: the table and the schema USAGE that came with it.
    expect(await reads(MALLORY)).toMatch(/permission denied/);
    const mallory = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT has_schema_privilege($1, 'curated', 'USAGE') AS usage, has_table_privilege($1, 'curated.sales', 'SELECT') AS sel`, [MALLORY]))
          .rows[0],
    );
    expect(mallory).toEqual({ usage: false, sel: false });
    expect(await iamPolicies()).not.toContain('extra-policy');
    expect((await iamPolicies()).length).toBe(1); // Steward's own, for the access `bucket`, stays
    const oddLeft = await asSuperuser(
      async (c) => (await c.query(`SELECT has_table_privilege($1, 'curated.sales', 'SELECT, UPDATE') AS has`, [ODD])).rows[0].has,
    );
    expect(oddLeft).toBe(false);
    const left = await asSuperuser(
      async (c) =>
        (
          await c.query(
            `SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = $1 AND u.rolname = $2`,
            [SALES_OWNER, EVE],
          )
        ).rows,
    );
    expect(left).toEqual([]);
    expect(await reads(EVE)).toMatch(/permission denied/);
    expect(await reads(IN[0]!)).toBe(true); // nothing else touched
    const remediated = await asSuperuser(async (c) => (await c.query(`SELECT details FROM steward.audit_log WHERE action = 'review.remediate'`)).rows);
    expect(remediated.map((r) => r.details.finding).sort()).toEqual([membership.id, quoted.id, direct.id, policy.id].sort());
  });
});

describe('AccessReview at the due time', () => {
  it('revokes what nobody decided within a second of due, also across a Steward restart; each audited, with an Event', async () => {
    apply(review({ dueIn: '12s' }));
    const s = await forceCycle();
    const dueAt = Date.parse(s.cycle!.dueAt);
    // in2 was revoked in an earlier cycle and stays revoked: not a grant any more.
    expect(s.findings!.map((f) => f.access).sort()).toEqual([`${NS}/in1`, `${NS}/in3`, `${NS}/team`, `${NS}/bucket`, `${NS}/masked`].sort());
    await decide([`{cycle: "${s.cycle!.id}", access: ${NS}/in1, decision: keep, by: alice@example.com}`], (x) => x.summary?.kept === 1);
    // Steward is down across the due time: the missing-decision rule still applies when it is back.
    await steward.stop();
    await new Promise((r) => setTimeout(r, Math.max(0, dueAt - Date.now() + 1500)));
    expect(await reads(IN[2]!)).toBe(true);
    steward = Steward.start({ args: ['--resync', '2s'] });
    for (const name of ['in3', 'team', 'bucket']) await waitForCondition(DATASET_ACCESS_TYPE, name, NS, 'Ready', 'False', 'RevokedByReview', 30_000);
    expect(await reads(IN[2]!)).toMatch(/permission denied/);
    const teamLeft = await asSuperuser(
      async (c) => (await c.query(`SELECT has_table_privilege($1, 'curated.sales', 'SELECT') AS has`, [ANALYSTS])).rows[0].has,
    );
    expect(teamLeft).toBe(false);
    expect(await reads(TEAMMATE)).toMatch(/permission denied/); // the team's members lose it with the team
    expect(await iamPolicies()).toEqual([]); // the access `bucket`'s policy is gone from its IAM role
    expect(await reads(IN[0]!)).toBe(true);
    expect(await reads(READER, 'views.masked_orders')).toBe(true); // a view's readers are its spec's to change
    const done = await waitFor('the cycle completed', async () => ((await getReview()).cycle?.completedAt ? getReview() : undefined));
    expect(done.summary).toMatchObject({ pending: 0, kept: 2, revoked: 3 });
    const missing = await asSuperuser(async (c) => (await c.query(`SELECT resource FROM steward.audit_log WHERE action = 'review.missing_decision'`)).rows);
    expect(missing.map((r) => r.resource).sort()).toEqual(
      [
        `DatasetAccess:${NS}/in3/${IN[2]}`,
        `DatasetAccess:${NS}/team/${ANALYSTS}`,
        `DatasetAccess:${NS}/bucket/${ROLE}`,
        `MaskedView:${NS}/masked/${READER}`,
      ].sort(),
    );
    expect((await eventsAbout('quarterly')).filter((e) => e.reason === 'MissingDecision').length).toBeGreaterThanOrEqual(4);
  });

  it('with Steward running, the revoke lands within a second of due; with onMissingDecision keep, nothing is revoked', async () => {
    // A fresh access for this cycle, and a shorter due time.
    apply(access('late', IN[2]!));
    await waitForCondition(DATASET_ACCESS_TYPE, 'late', NS, 'Ready', 'True', 'Granted');
    apply(review({ dueIn: '6s' }));
    const s = await forceCycle();
    const dueAt = Date.parse(s.cycle!.dueAt);
    await waitForCondition(DATASET_ACCESS_TYPE, 'late', NS, 'Ready', 'False', 'RevokedByReview', 30_000);
    const rows = await asSuperuser(
      async (c) =>
        (await c.query(`SELECT ts FROM steward.audit_log WHERE kind = 'DatasetAccess' AND name = 'late' AND action = 'access.revoke_by_review'`)).rows,
    );
    const lag = (rows[0].ts as Date).getTime() - dueAt;
    console.log(`access review: the undecided access revoked ${lag} ms after the due time`);
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(1000);
    // Before that, the reminder: a quarter of dueIn (1.5 s) before the due time, naming the reviewers.
    const reminder = (await eventsAbout('quarterly')).find((e) => e.reason === 'ReviewDueSoon' && e.note.includes(`cycle ${s.cycle!.id} `));
    expect(reminder?.note).toMatch(/undecided; alice@example.com: decide, or onMissingDecision \(revoke\) applies/);

    apply(access('kept', IN[3]!));
    await waitForCondition(DATASET_ACCESS_TYPE, 'kept', NS, 'Ready', 'True', 'Granted');
    apply(review({ dueIn: '4s', onMissing: 'keep' }));
    await forceCycle();
    const done = await waitFor('the keep cycle completed', async () => ((await getReview()).cycle?.completedAt ? getReview() : undefined), 30_000);
    expect(done.findings!.find((f) => f.access === `${NS}/kept`)?.decision).toBe('kept-by-default');
    expect(await reads(IN[3]!)).toBe(true);
    // Kept by default is a decision too: audited, with an Event.
    const kept = await asSuperuser(
      async (c) =>
        (
          await c.query(`SELECT details FROM steward.audit_log WHERE action = 'review.missing_decision' AND resource = $1`, [
            `DatasetAccess:${NS}/kept/${IN[3]}`,
          ])
        ).rows,
    );
    expect(kept.map((r) => r.details.decision)).toEqual(['kept-by-default']);
    expect(
      (await eventsAbout('quarterly')).some((e) => e.reason === 'MissingDecision' && e.note.includes(`${NS}/kept`) && e.note.includes('kept-by-default')),
    ).toBe(true);
  });
});

describe('AccessReview refuses', () => {
  it('a review in a namespace the Warehouse does not name: PolicyDenied, nothing listed, nothing revoked', async () => {
    apply(review({ name: 'rogue', namespace: NS_ROGUE, dueIn: '1s' }));
    const obj = await waitForCondition(ACCESS_REVIEW_TYPE, 'rogue', NS_ROGUE, 'Stalled', 'True', 'PolicyDenied');
    expect(condition(obj, 'Ready')?.message).toMatch(/reviewPolicy does not name namespace/);
    expect((obj as { status?: ReviewStatus }).status?.findings).toBeUndefined();
    await new Promise((r) => setTimeout(r, 3000)); // its due time (1 s) has passed: still nothing
    expect(condition(await kube.get<Conditioned>(DATASET_ACCESS_TYPE, 'kept', NS), 'Ready')?.reason).toBe('Granted');
    expect(await reads(IN[3]!)).toBe(true);
  });
});
