// The facts behind `steward report`, gathered live at report time: one EvidenceItem per control and
// subject. Each item shows the check it ran; a check that could not run is "not evaluated" with
// why, never "pass". Read-only: the warehouse is read in READ ONLY transactions, the cluster and
// AWS with GETs and LISTs.
import type { AccessReview } from '../api/accessreview.ts';
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { MaskedView } from '../api/maskedview.ts';
import type { ObjectStore } from '../api/objectstore.ts';
import type { SecretRotation } from '../api/secretrotation.ts';
import type { Warehouse } from '../api/warehouse.ts';
import type { PostgresEvidenceDriver } from '../drivers/postgres/evidence-driver.ts';
import type { EvidenceItem, Verdict } from '../governance/evidence.ts';
import { readerRoleName } from '../governance/grants.ts';
import { isStewardRole } from '../governance/review.ts';
import { explanations, nextCycleAt, outOfBand } from '../governance/review.ts';
import { findCondition, type Condition } from '../runtime/conditions.ts';
import type { KubeObject } from '../runtime/kube.ts';

/** The annotation that names a control's owner, on a Warehouse, an ObjectStore, or the object itself. */
export const OWNER_ANNOTATION = 'steward.dev/owner';

export interface ClusterFacts {
  accesses: DatasetAccess[];
  views: MaskedView[];
  rotations: SecretRotation[];
  reviews: AccessReview[];
  /** Workloads and ConfigMaps per namespace, for the literal-credential scan. */
  manifests: (namespace: string) => Promise<KubeObject[]>;
  /** A Secret's data, decoded; undefined when it cannot be read. */
  secret: (namespace: string, name: string) => Promise<Record<string, string> | undefined>;
  /** Steward's recent log, when one was given or could be read; why not otherwise. */
  stewardLog: { text: string; source: string } | { missing: string };
}

type Draft = Omit<EvidenceItem, 'at' | 'sha256' | 'owner' | 'cadence'> & { owner?: string; cadence?: string };

const ready = (o: { status?: { conditions?: Condition[] } }) => findCondition(o.status?.conditions, 'Ready')?.status === 'True';
const granted = (d: DatasetAccess) => {
  const c = findCondition(d.status?.conditions, 'Ready');
  return c?.status === 'True' && c.reason === 'Granted';
};
const key = (o: { metadata: { namespace?: string; name: string } }) => `${o.metadata.namespace}/${o.metadata.name}`;
const ownerOf = (...objects: ({ metadata: { annotations?: Record<string, string> } } | undefined)[]) =>
  objects.map((o) => o?.metadata.annotations?.[OWNER_ANNOTATION]).find(Boolean);
const describeSchedule = (s: { every?: string; cron?: string }) => (s.every ? `every ${s.every}` : `cron "${s.cron}"`);
const problem = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs a check; an error makes the item "not evaluated" with the error as why. */
async function attempt(
  draft: Pick<Draft, 'id' | 'control' | 'subject' | 'source' | 'owner' | 'cadence'>,
  check: string,
  run: () => Promise<Omit<Draft, keyof typeof draft | 'check'> & { check?: string }>,
): Promise<Draft> {
  try {
    return { check, ...draft, ...(await run()) };
  } catch (e) {
    return { ...draft, check, result: `the check could not run: ${problem(e)}`, verdict: 'not evaluated' };
  }
}

export interface WarehouseEvidenceInput {
  wh: Warehouse;
  driver: PostgresEvidenceDriver | undefined;
  /** Why there is no driver (the warehouse is unreachable, its Secrets unreadable). */
  unreachable?: string;
  cluster: ClusterFacts;
  now: Date;
}

/** Every control of one Warehouse. */
export async function warehouseEvidence(input: WarehouseEvidenceInput): Promise<Draft[]> {
  const { wh, driver, cluster, now } = input;
  const name = wh.metadata.name;
  const source = `postgres:${name}`;
  const accesses = cluster.accesses.filter((d) => d.spec.warehouse?.name === name);
  const views = cluster.views.filter((v) => v.spec.warehouse === name);
  const rotations = cluster.rotations.filter((r) => r.spec.warehouse === name);
  const reviews = cluster.reviews.filter((r) => r.spec.warehouse === name);
  const owner = ownerOf(wh);
  const reviewCadence = reviews.map((r) => `AccessReview ${key(r)}: ${describeSchedule(r.spec.schedule)}`).join('; ') || undefined;
  const items: Draft[] = [];
  const noDriver = (d: Pick<Draft, 'id' | 'control' | 'subject' | 'owner' | 'cadence'>, check: string): Draft => ({
    ...d,
    source,
    check,
    result: `not checked: ${input.unreachable ?? 'no connection'}`,
    verdict: 'not evaluated',
  });

  // Least privilege: every grant in the catalog is explained by a DatasetAccess or a MaskedView.
  const lp = {
    id: `least-privilege:${name}`,
    control: 'Least privilege: every grant is explained by a DatasetAccess or MaskedView',
    subject: `Warehouse ${name}`,
    owner,
    cadence: reviewCadence,
  };
  let unexplained: ReturnType<typeof outOfBand> | undefined;
  let login: string | undefined;
  const grantsCheck =
    "aclexplode(pg_class.relacl, pg_namespace.nspacl) and pg_auth_members, every schema but the system's and Steward's (the AccessReview catalog read)";
  if (!driver) items.push(noDriver(lp, grantsCheck));
  else
    items.push(
      await attempt({ ...lp, source }, grantsCheck, async () => {
        const { grants, stewardLogin } = await driver.grants(undefined);
        login = stewardLogin;
        unexplained = outOfBand(
          grants,
          explanations(
            stewardLogin,
            accesses.map((d) => ({ namespace: d.metadata.namespace!, name: d.metadata.name, principal: d.spec.principal.role!, granted: granted(d) })),
            views.map((v) => ({ namespace: v.metadata.namespace!, name: v.metadata.name, readers: v.spec.readers, ready: ready(v) })),
          ),
        );
        return unexplained.length === 0
          ? {
              result: `${grants.length} grants and memberships read; every one is explained (${accesses.filter(granted).length} granted DatasetAccess, ${views.filter(ready).length} Ready MaskedView, Steward's own roles, owners, superusers)`,
              verdict: 'pass' as Verdict,
            }
          : {
              result: `${unexplained.length} grant(s) no Steward object explains: ${unexplained.map((g) => `${g.kind} ${g.privileges.join(',')} on ${g.object} to ${g.grantee}`).join('; ')}`,
              verdict: 'fail' as Verdict,
            };
      }),
    );

  // Raw tables locked: a MaskedView's sources are readable by nobody but their owner, Steward and the unmaskedRoles.
  const sources = new Map<string, { views: MaskedView[] }>();
  // Every view's sources, Ready or not: a view Steward withdrew because its sources were exposed is
  // exactly when this control must fail, not disappear.
  for (const v of views) for (const t of viewSources(v)) sources.set(t, { views: [...(sources.get(t)?.views ?? []), v] });
  for (const [table, { views: over }] of [...sources].sort()) {
    const [schema, tableName] = splitTable(table);
    const d = {
      id: `raw-tables-locked:${name}/${table}`,
      control: 'Raw tables locked: nobody but the owner reads the tables behind a MaskedView',
      subject: `table ${table} (behind ${over.map(key).join(', ')})`,
      owner: ownerOf(...over, wh) ?? over.map((v) => v.spec.owner).find(Boolean),
      cadence: reviewCadence,
    };
    if (!driver) {
      items.push(noDriver(d, 'has_table_privilege(role, table, SELECT) for every role'));
      continue;
    }
    items.push(
      await attempt({ ...d, source }, 'has_table_privilege(role, table, SELECT) for every role', async () => {
        const r = await driver.tableReaders(schema, tableName);
        if (!r.rows.exists) return { check: r.sql, result: `table ${table} does not exist`, verdict: 'not evaluated' as Verdict };
        const allowed = new Set(over.flatMap((v) => v.spec.unmaskedRoles ?? []));
        // Steward's login, from the catalog read above (asked again only if that read failed).
        login ??= (await driver.grants([])).stewardLogin;
        const stewardLogin = login;
        const others = r.rows.readers.filter(
          (x) => !x.superuser && !x.owner && x.role !== stewardLogin && !isStewardRole(x.role, x.comment) && !allowed.has(x.role),
        );
        const readers = [...new Set(over.flatMap((v) => [...v.spec.readers, readerRoleName(v.metadata.namespace!, v.metadata.name)]))];
        const proof = await driver.canRead(schema, tableName, readers);
        const readerCan = proof.rows.filter((p) => p.can === true).map((p) => p.role);
        const negative = proof.rows.map((p) => `${p.role}: ${p.can === null ? 'no such role' : p.can ? 'CAN read' : 'cannot read'}`).join(', ');
        const bad = [...new Set([...others.map((x) => x.role), ...readerCan, ...(r.rows.public ? ['PUBLIC'] : [])])];
        return {
          check: `${r.sql}; ${proof.sql}`,
          result: bad.length
            ? `readable by ${bad.join(', ')}, who are neither its owner nor Steward nor an unmaskedRole; readers: ${negative}`
            : `readable only by its owner, superusers, Steward${allowed.size ? ` and unmaskedRoles (${[...allowed].join(', ')})` : ''}; readers: ${negative}${r.rows.readAllData ? '; note: pg_read_all_data has members (they are listed if they can read)' : ''}`,
          verdict: (bad.length ? 'fail' : 'pass') as Verdict,
        };
      }),
    );
  }

  // Masking and lineage, per view.
  for (const v of views) {
    const viewName = `${v.spec.view.schema}.${v.spec.view.name}`;
    const vOwner = ownerOf(v, wh) ?? v.spec.owner;
    const lineage = v.status?.lineage;
    const current = ready(v) && v.status?.observedGeneration === v.metadata.generation;
    const masked = (lineage?.columns ?? []).filter((c) => c.masked);
    const m = {
      id: `masking:${key(v)}`,
      control: 'Masking: PII is masked for everyone but privileged roles',
      subject: `MaskedView ${key(v)} (${viewName})`,
      owner: vOwner,
      cadence: reviewCadence,
    };
    const sampleCheck = `SET LOCAL ROLE <the view's reader role>; SELECT <masked columns> FROM ${viewName} LIMIT 3; then, as Steward, count the sampled values found in each column's raw source`;
    if (!current || !lineage)
      items.push({ ...m, source, check: sampleCheck, result: `the view is not Ready at its current generation: nothing to sample`, verdict: 'not evaluated' });
    else if (masked.length === 0) items.push({ ...m, source, check: 'status.lineage.columns[].masked', result: 'the view masks no column', verdict: 'fail' });
    else if (!driver) items.push(noDriver(m, sampleCheck));
    else
      items.push(
        await attempt({ ...m, source }, sampleCheck, async () => {
          const role = readerRoleName(v.metadata.namespace!, v.metadata.name);
          const r = await driver.maskedSample(
            v.spec.view,
            role,
            masked.map((c) => ({ name: c.name, ...(plainSource(c) ? { source: plainSource(c)! } : {}) })),
            v.spec.unmaskedRoles ?? [],
          );
          const rows = r.rows.sample;
          const compared = Object.entries(r.rows.rawMatches).filter(([, n]) => n !== null);
          const leaked = compared.filter(([, n]) => (n ?? 0) > 0).map(([c]) => c);
          const shown = `masked columns ${masked.map((c) => `${c.name} (${c.mask ?? 'mask'})`).join(', ')}; as ${r.rows.readAs}: ${JSON.stringify(rows)}`;
          if (rows.length === 0) return { check: r.sql, result: `${shown}: the view has no rows to sample`, verdict: 'not evaluated' as Verdict };
          if (leaked.length)
            return { check: r.sql, result: `${shown}: raw values of ${leaked.join(', ')} are visible to a non-privileged reader`, verdict: 'fail' as Verdict };
          if (compared.length === 0)
            return { check: r.sql, result: `${shown}: no masked column maps to a single raw column to compare with`, verdict: 'not evaluated' as Verdict };
          return { check: r.sql, result: `${shown}: none of the sampled values appears in its raw source`, verdict: 'pass' as Verdict };
        }),
      );
    const l = {
      id: `lineage:${key(v)}`,
      control: 'Lineage: every curated column has its sources',
      subject: `MaskedView ${key(v)} (${viewName})`,
      source: 'kubernetes',
      owner: vOwner,
      cadence: reviewCadence,
    };
    if (!current || !lineage)
      items.push({ ...l, check: 'status.lineage', result: 'no lineage at the current generation (the view is not Ready)', verdict: 'not evaluated' });
    else {
      const orphan = lineage.columns.filter((c) => c.inputs.length === 0);
      items.push({
        ...l,
        check: `status.lineage of MaskedView ${key(v)} (generation ${v.metadata.generation})`,
        result: orphan.length
          ? `${orphan.length} column(s) without a source: ${orphan.map((c) => c.name).join(', ')}`
          : `${lineage.columns.length} columns, each with its sources: ${lineage.columns.map((c) => `${c.name} <- ${c.inputs.join('+')}`).join('; ')}`,
        verdict: orphan.length ? 'fail' : 'pass',
      });
    }
  }

  // TLS in transit.
  const tls = {
    id: `tls-in-transit:${name}`,
    control: 'TLS in transit: every connection to the warehouse is encrypted',
    subject: `Warehouse ${name} (database ${wh.spec.postgres.database})`,
    owner,
    cadence: reviewCadence,
  };
  if (!driver) items.push(noDriver(tls, 'pg_stat_ssl joined with pg_stat_activity'));
  else
    items.push(
      await attempt({ ...tls, source }, 'pg_stat_ssl', async () => {
        const r = await driver.connections();
        const plain = r.rows.filter((c) => !c.ssl);
        const mine = r.rows.find((c) => c.mine);
        return {
          check: r.sql,
          result: plain.length
            ? `${plain.length} of ${r.rows.length} connection(s) without TLS: ${[...new Set(plain.map((c) => c.user))].join(', ')}`
            : `${r.rows.length} connection(s), all TLS; this report's: ${mine?.version ?? '?'} (sslMode ${wh.spec.postgres.sslMode ?? 'verify-full'})`,
          verdict: (plain.length ? 'fail' : 'pass') as Verdict,
        };
      }),
    );

  // Audit completeness: every grant Steward made has its record; no grant is there without one.
  const au = {
    id: `audit-complete:${name}`,
    control: 'Audit completeness: every grant has its audit record with request_id, actor, action, resource, outcome',
    subject: `Warehouse ${name} (steward.audit_log)`,
    owner,
    cadence: reviewCadence,
  };
  if (!driver) items.push(noDriver(au, 'steward.audit_log'));
  else
    items.push(
      await attempt({ ...au, source }, 'steward.audit_log', async () => {
        const r = await driver.auditFacts();
        const has = (kind: string, ns: string, n: string, action: string) =>
          r.rows.grants.some((g) => g.kind === kind && g.namespace === ns && g.name === n && g.action === action && g.n > 0);
        const missing: string[] = [];
        for (const d of accesses.filter(granted))
          for (const action of ['grant.privileges', 'grant.membership'])
            if (!has('DatasetAccess', d.metadata.namespace!, d.metadata.name, action)) missing.push(`DatasetAccess ${key(d)}: no ${action} record`);
        for (const v of views.filter(ready))
          if (!['view.replace', 'view.grants'].some((a) => has('MaskedView', v.metadata.namespace!, v.metadata.name, a)))
            missing.push(`MaskedView ${key(v)}: no view.replace or view.grants record (the view's grants)`);
        if (unexplained === undefined) missing.push('the catalog could not be read, so grants made without a record cannot be ruled out');
        else
          for (const g of unexplained)
            missing.push(`${g.kind} ${g.privileges.join(',')} on ${g.object} to ${g.grantee}: in the catalog, no audit record (made outside Steward)`);
        if (r.rows.incomplete > 0) missing.push(`${r.rows.incomplete} record(s) lack one of request_id, actor, action, resource, outcome`);
        return {
          check: r.sql,
          result: missing.length
            ? missing.join('; ')
            : `${r.rows.total} records, all with request_id, actor, action, resource and outcome; every grant Steward holds has its record and no grant lacks one`,
          verdict: (missing.length ? (unexplained === undefined && missing.length === 1 ? 'not evaluated' : 'fail') : 'pass') as Verdict,
        };
      }),
    );

  // Secrets: not in manifests, not in Steward's log; rotation age and history.
  const credentials: { what: string; value: string }[] = [];
  for (const sr of rotations) {
    const name_ = sr.spec.targets.kubernetesSecret?.name;
    if (!name_) continue;
    const data = await cluster.secret(sr.metadata.namespace!, name_);
    if (data?.password) credentials.push({ what: `the password of SecretRotation ${key(sr)}`, value: data.password });
  }
  const whCreds = wh.spec.postgres.credentialsSecretRef;
  const whData = whCreds ? await cluster.secret(whCreds.namespace, whCreds.name) : undefined;
  if (whData?.password) credentials.push({ what: `Warehouse ${name}'s login password`, value: whData.password });
  for (const ns of [...new Set(rotations.map((r) => r.metadata.namespace!))].sort()) {
    const d = {
      id: `secrets-not-in-code:${name}/${ns}`,
      control: 'Secrets not in code: no literal credential in the manifests that use Steward-managed Secrets',
      subject: `namespace ${ns}`,
      source: 'kubernetes',
      owner: ownerOf(...rotations.filter((r) => r.metadata.namespace === ns), wh),
      cadence:
        rotations
          .filter((r) => r.metadata.namespace === ns)
          .map((r) => `SecretRotation ${key(r)}: ${describeSchedule(r.spec.schedule)}`)
          .join('; ') || undefined,
    };
    items.push(
      await attempt(
        d,
        `list Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, Pods and ConfigMaps in ${ns}; every literal env value and ConfigMap value, against the managed credentials and credential patterns`,
        async () => {
          const found = await literalCredentials(
            await cluster.manifests(ns),
            credentials.map((c) => c.value),
          );
          return {
            result: found.length ? `literal credentials: ${found.join('; ')}` : 'no literal credential in any workload env or ConfigMap',
            verdict: (found.length ? 'fail' : 'pass') as Verdict,
          };
        },
      ),
    );
  }
  const logItem = {
    id: `secrets-not-in-logs:${name}`,
    control: "Secrets not in logs: Steward's log holds none of the credentials it manages",
    subject: `Warehouse ${name}'s credentials (${credentials.length})`,
    source: 'steward-log',
    owner,
    cadence: reviewCadence,
  };
  if ('missing' in cluster.stewardLog)
    items.push({ ...logItem, check: "search Steward's log for each managed credential", result: cluster.stewardLog.missing, verdict: 'not evaluated' });
  else {
    const log = cluster.stewardLog;
    const leaked = credentials.filter((c) => log.text.includes(c.value)).map((c) => c.what);
    items.push({
      ...logItem,
      source: `steward-log:${log.source}`,
      check: `search ${log.source} (${log.text.length} characters) for each managed credential`,
      result:
        credentials.length === 0
          ? 'no credential to look for'
          : leaked.length
            ? `found in the log: ${leaked.join(', ')}`
            : `none of ${credentials.length} credential(s) appears`,
      verdict: credentials.length === 0 ? 'not evaluated' : leaked.length ? 'fail' : 'pass',
    });
  }
  for (const sr of rotations) {
    const schedule = describeSchedule(sr.spec.schedule);
    const d = {
      id: `credential-age:${key(sr)}`,
      control: 'Credential rotation: every managed credential is younger than its rotation schedule',
      subject: `SecretRotation ${key(sr)} (role ${sr.spec.role})`,
      source: 'kubernetes',
      owner: ownerOf(sr, wh),
      cadence: `SecretRotation ${key(sr)}: ${schedule}`,
    };
    const last = sr.status?.lastRotatedAt;
    if (!last) {
      items.push({ ...d, check: 'status.lastRotatedAt', result: 'never rotated yet', verdict: 'not evaluated' });
      continue;
    }
    const due = nextCycleAt(sr.spec.schedule, new Date(last), new Date(sr.metadata.creationTimestamp ?? last));
    const ageS = Math.round((now.getTime() - Date.parse(last)) / 1000);
    const history = driver ? await driver.rotationCount(sr.metadata.namespace!, sr.metadata.name).catch(() => undefined) : undefined;
    const late = now.getTime() > due.getTime() + Math.min(ROTATION_GRACE_MS, (due.getTime() - Date.parse(last)) / 4);
    items.push({
      ...d,
      check: `status.lastRotatedAt against the schedule (${schedule}); rotation.finish records in steward.audit_log`,
      result: `last rotated ${last} (${ageS} s ago); the schedule called for the next at ${due.toISOString()}${late ? ', which has passed: the credential is older than its schedule' : ''}; ${history === undefined ? 'rotation history not read' : `${history} rotation(s) recorded`}`,
      verdict: late ? 'fail' : 'pass',
    });
  }
  for (const ar of reviews) items.push(reviewItem(ar, wh, now));
  return items;
}

/** A rotation late by less than this, or a quarter of its interval if shorter (a reconcile, a restart), is not a finding. */
const ROTATION_GRACE_MS = 60_000;

function reviewItem(ar: AccessReview, wh: Warehouse, now: Date): Draft {
  const s = ar.status ?? {};
  const history = s.history ?? [];
  const d = {
    id: `review-outcomes:${key(ar)}`,
    control: 'Access reviews: each cycle completes on time, with its outcomes',
    subject: `AccessReview ${key(ar)}`,
    source: 'kubernetes',
    owner: ownerOf(ar, wh) ?? (ar.spec.reviewers.length ? ar.spec.reviewers.join(', ') : undefined),
    cadence: `AccessReview ${key(ar)}: ${describeSchedule(ar.spec.schedule)}`,
    check: 'status.cycle and status.history',
  };
  const overdue = s.cycle && !s.cycle.completedAt && Date.parse(s.cycle.dueAt) + ROTATION_GRACE_MS < now.getTime();
  const cycles = history.map((h) => `${h.id}: ${h.kept} kept, ${h.revoked} revoked, ${h.outOfBand} out-of-band`).join('; ');
  if (overdue)
    return { ...d, result: `cycle ${s.cycle!.id} was due at ${s.cycle!.dueAt} and has not completed; earlier: ${cycles || 'none'}`, verdict: 'fail' };
  if (history.length === 0)
    return {
      ...d,
      result: s.cycle ? `cycle ${s.cycle.id} is open (due ${s.cycle.dueAt}); no cycle has completed yet` : 'no cycle yet',
      verdict: 'not evaluated',
    };
  return {
    ...d,
    result: `completed cycles: ${cycles}${s.cycle && !s.cycle.completedAt ? `; cycle ${s.cycle.id} open, due ${s.cycle.dueAt}` : ''}`,
    verdict: 'pass',
  };
}

/** The controls of one ObjectStore, read from the bucket itself. */
export async function objectStoreEvidence(
  store: ObjectStore,
  facts: () => Promise<{ encryption: { algorithm: string; kmsKeyId?: string } | undefined; tlsOnly: { ok: boolean; found: string } }>,
  reviews: AccessReview[],
): Promise<Draft[]> {
  const bucket = store.spec.s3.bucket;
  const base = { source: `s3:${bucket}`, subject: `ObjectStore ${store.metadata.name} (bucket ${bucket})`, owner: ownerOf(store) };
  const cadence =
    reviews
      .filter((r) => r.spec.scope.objectStore === store.metadata.name)
      .map((r) => `AccessReview ${key(r)}: ${describeSchedule(r.spec.schedule)}`)
      .join('; ') || undefined;
  let f: Awaited<ReturnType<typeof facts>>;
  try {
    f = await facts();
  } catch (e) {
    const why = `the bucket could not be read: ${problem(e)}`;
    return [
      {
        ...base,
        cadence,
        id: `encryption-at-rest:${store.metadata.name}`,
        control: 'Encryption at rest',
        check: 'GetBucketEncryption',
        result: why,
        verdict: 'not evaluated',
      },
      {
        ...base,
        cadence,
        id: `tls-only:${store.metadata.name}`,
        control: 'TLS in transit: the bucket refuses requests without TLS',
        check: 'GetBucketPolicy',
        result: why,
        verdict: 'not evaluated',
      },
    ];
  }
  return [
    {
      ...base,
      cadence,
      id: `encryption-at-rest:${store.metadata.name}`,
      control: 'Encryption at rest',
      check: `GetBucketEncryption ${bucket}`,
      result: f.encryption
        ? `default encryption ${f.encryption.algorithm}${f.encryption.kmsKeyId ? ` with ${f.encryption.kmsKeyId}` : ''}`
        : 'no default encryption',
      verdict: f.encryption ? 'pass' : 'fail',
    },
    {
      ...base,
      cadence,
      id: `tls-only:${store.metadata.name}`,
      control: 'TLS in transit: the bucket refuses requests without TLS',
      check: `GetBucketPolicy ${bucket}: a Deny of s3:* when aws:SecureTransport is false`,
      result: f.tlsOnly.ok ? 'the bucket policy denies every request without TLS' : f.tlsOnly.found,
      verdict: f.tlsOnly.ok ? 'pass' : 'fail',
    },
  ];
}

/** The tables behind a view: its from and its joins, schema-qualified. */
export function viewSources(v: MaskedView): string[] {
  const spec = v.spec as unknown as { from?: { table: string }; joins?: { table: string }[] };
  return [...new Set([spec.from?.table, ...(spec.joins ?? []).map((j) => j.table)].filter((t): t is string => Boolean(t)))];
}

function splitTable(table: string): [string, string] {
  const i = table.indexOf('.');
  return i < 0 ? ['public', table] : [table.slice(0, i), table.slice(i + 1)];
}

/** A lineage column's one raw input, schema.table.column, when it has exactly one. */
function plainSource(c: { inputs: string[] }): { schema: string; table: string; column: string } | undefined {
  if (c.inputs.length !== 1) return undefined;
  const parts = c.inputs[0]!.split('.');
  if (parts.length !== 3) return undefined;
  return { schema: parts[0]!, table: parts[1]!, column: parts[2]! };
}

/** Env names that say the value is a credential. */
const CREDENTIAL_NAME = /(PASSWORD|PASSWD|PGPASS|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
/**
 * Literal credentials in workload manifests and ConfigMaps: an env value (or ConfigMap value) equal
 * to or holding a managed credential, an env literal whose name says it is a credential, or a value
 * secretlint's recommended rules recognize (connection strings with a password, cloud keys, private
 * keys, tokens). References (valueFrom, envFrom) are the right way and are not findings. Only where
 * and which rule are reported: never the value.
 */
export async function literalCredentials(objects: readonly KubeObject[], managed: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  const unclaimed: { label: string; value: string }[] = [];
  const look = (where: string, name: string, value: string) => {
    if (!value) return;
    if (managed.some((m) => m.length >= 8 && value.includes(m))) found.push(`${where} ${name}: a Steward-managed credential`);
    else if (CREDENTIAL_NAME.test(name)) found.push(`${where} ${name}: a literal value for a credential`);
    else unclaimed.push({ label: `${where} ${name}`, value });
  };
  for (const o of objects) {
    const kind = (o as { kind?: string }).kind ?? 'object';
    const where = `${kind} ${o.metadata.namespace}/${o.metadata.name}`;
    if (kind === 'ConfigMap') {
      for (const [k, v] of Object.entries((o as { data?: Record<string, string> }).data ?? {})) look(where, `data.${k}`, v);
      continue;
    }
    for (const c of containersOf(o))
      for (const e of c.env ?? []) if (typeof e.value === 'string') look(`${where} container ${c.name}`, `env ${e.name}`, e.value);
  }
  for (const hit of await patternScan(unclaimed.map((u) => u.value))) found.push(`${unclaimed[hit.index]!.label}: ${hit.rule} (secretlint)`);
  return found;
}

/** secretlint's recommended rules over each value; which value and which rule matched. */
async function patternScan(values: readonly string[]): Promise<{ index: number; rule: string }[]> {
  if (values.length === 0) return [];
  const [{ lintSource }, { creator }] = await Promise.all([import('@secretlint/core'), import('@secretlint/secretlint-rule-preset-recommend')]);
  // One document, one value per block, so a match's offset says which value it is in.
  const starts: number[] = [];
  let content = '';
  for (const v of values) {
    starts.push(content.length);
    content += `${v}\n\n`;
  }
  const result = await lintSource({
    source: { filePath: 'manifest-values.txt', content, ext: '.txt', contentType: 'text' },
    options: { config: { rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: creator }] } },
  });
  const hits = new Map<number, string>();
  for (const m of result.messages) {
    const at = m.range[0];
    let index = starts.length - 1;
    while (index > 0 && starts[index]! > at) index--;
    if (!hits.has(index)) hits.set(index, m.messageId ?? m.ruleId);
  }
  return [...hits].sort((a, b) => a[0] - b[0]).map(([index, rule]) => ({ index, rule }));
}

type Container = { name: string; env?: { name: string; value?: string }[] };
function containersOf(o: KubeObject): Container[] {
  const spec = (o as { spec?: Record<string, unknown> }).spec ?? {};
  const pod =
    (spec as { jobTemplate?: { spec?: { template?: { spec?: unknown } } } }).jobTemplate?.spec?.template?.spec ??
    (spec as { template?: { spec?: unknown } }).template?.spec ??
    spec;
  const p = pod as { containers?: Container[]; initContainers?: Container[] };
  return [...(p.initContainers ?? []), ...(p.containers ?? [])];
}
