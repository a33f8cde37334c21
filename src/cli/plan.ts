// `steward plan -f FILE...`: for each DatasetAccess in the files, the policy decision and the SQL
// Steward would run (for an s3 access, the IAM policy it would write); for each MaskedView, every
// expression validated by the reconciler's own rules (positions on refusal), the view's SELECT and
// its column lineage as JSON: a pull-request gate for SQL models, with or without a cluster. Read-only: the catalog is read inside a READ ONLY transaction, nothing else is
// written anywhere. Meant to gate GitOps pull requests: exit 1 when a request is denied by policy,
// 3 when the policy cannot be checked (fail closed), 2 on bad input, 0 otherwise.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { parseAllDocuments } from 'yaml';
import type { DatasetAccess } from '../api/datasetaccess.ts';
import type { Warehouse } from '../api/warehouse.ts';
import { KubeClient, type KubeObject, type ResourceType } from '../runtime/kube.ts';
import { evaluatePolicy } from '../governance/policy.ts';
import { refusedRole, refusedTargets } from '../governance/reserved.ts';
import { accessDeadline, effectiveExpiry } from '../governance/expiry.ts';
import { accessPolicyDocument, evaluateStorePolicy, inlinePolicyName, roleNameOf } from '../governance/s3-policy.ts';
import { objectStoreKind, type ObjectStore } from '../api/objectstore.ts';
import { groupRoleName, ownershipComment, usageRoleComment, usageRoleName } from '../governance/grants.ts';
import { planAccess, type AccessObservation, type AccessTarget } from '../governance/access-plan.ts';
import { accessStatements, observeRole } from '../drivers/postgres/grants.ts';
import { withSession } from '../drivers/postgres/session.ts';
import { warehouseKind } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import { WarehouseConnections } from '../drivers/postgres/connector.ts';
import type { MaskedView } from '../api/maskedview.ts';
import { viewPolicyDenial } from '../governance/policy.ts';
import { quoteIdent } from '../drivers/postgres/sql-text.ts';

const NAMESPACE_TYPE: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };

export const EXIT = { ok: 0, denied: 1, usage: 2, unverifiable: 3 } as const;

export async function runPlan(argv: string[], out: Writable, err: Writable): Promise<number> {
  let files: string[];
  let defaultNamespace: string;
  let offline = false;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        file: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n', default: 'default' },
        offline: { type: 'boolean', default: false },
      },
    });
    files = values.file ?? [];
    defaultNamespace = values.namespace!;
    offline = values.offline!;
  } catch (e) {
    err.write(`steward plan: ${(e as Error).message}\n`);
    return EXIT.usage;
  }
  if (files.length === 0) {
    err.write('steward plan: name at least one file with -f\n');
    return EXIT.usage;
  }
  const accesses: DatasetAccess[] = [];
  const views: MaskedView[] = [];
  for (const file of files) {
    try {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'), { version: '1.1' })) {
        const obj = doc.toJSON() as DatasetAccess | MaskedView | null;
        if (obj?.kind === 'DatasetAccess') accesses.push(obj as DatasetAccess);
        if (obj?.kind === 'MaskedView') views.push(obj as MaskedView);
      }
    } catch (e) {
      err.write(`steward plan: ${file}: ${(e as Error).message}\n`);
      return EXIT.usage;
    }
  }

  let client: KubeClient | undefined;
  let clusterProblem: string | undefined;
  if (offline) clusterProblem = '--offline';
  else
    try {
      client = KubeClient.fromDefault({ userAgent: 'steward-plan' });
    } catch (e) {
      clusterProblem = (e as Error).message;
    }
  const connections = client ? new WarehouseConnections(client, 1) : undefined;
  let exit: number = EXIT.ok;
  const worse = (code: number) => (exit = Math.max(exit, code));
  const say = (line: string) => out.write(`${line}\n`);

  try {
    for (const mv of views) worse(await planMaskedView(mv, mv.metadata.namespace ?? defaultNamespace, client, clusterProblem, offline, say));
    for (const dsa of accesses) {
      const namespace = dsa.metadata.namespace ?? defaultNamespace;
      const target = dsa.spec?.warehouse;
      say(`# DatasetAccess ${namespace}/${dsa.metadata.name}`);
      if (!target) {
        worse(await planS3(dsa, namespace, client, clusterProblem, say));
        say('');
        continue;
      }
      const principal = dsa.spec.principal?.role ?? '';
      const privileges = target.privileges ?? ['SELECT'];
      const groupRole = groupRoleName(namespace, dsa.metadata.name);

      let wh: Warehouse | undefined;
      let labels: Record<string, string> = {};
      if (client) {
        try {
          wh = await client.get<Warehouse>(resourceType(warehouseKind), target.name);
          labels = (await client.get<KubeObject>(NAMESPACE_TYPE, namespace).catch(() => ({ metadata: { name: namespace, labels: {} } }))).metadata.labels ?? {};
        } catch (e) {
          clusterProblem = (e as Error).message;
        }
      }
      if (!wh) {
        say(`#   policy: NOT CHECKED: cannot read Warehouse ${target.name}${clusterProblem ? ` (${clusterProblem})` : ''}`);
        worse(EXIT.unverifiable);
      } else {
        const decision = evaluatePolicy(wh.spec.accessPolicy, {
          namespace: { name: namespace, labels },
          schema: target.schema,
          privileges,
          principals: [principal],
        });
        if (!decision.allowed) {
          say(`#   policy: DENIED: ${decision.message}`);
          say('#   nothing would be granted');
          worse(EXIT.denied);
          continue;
        }
        const expiry = effectiveExpiry({ expiresAt: dsa.spec.expiresAt, duration: dsa.spec.duration, maxDurationMs: decision.maxDurationMs, now: new Date() });
        say(
          `#   policy: allowed by accessPolicy[${decision.rule}]${expiry.at ? `; expires ${expiry.at.toISOString()}${expiry.capped ? ' (capped by maxDuration)' : ''}` : ''}`,
        );
      }
      say(`#   group role ${groupRole}, principal ${principal}, ${privileges.join(', ')} on ${target.schema}.${target.tables.join(', ')}`);

      const database = wh?.spec.postgres.database ?? '';
      const access: AccessTarget = {
        groupRole,
        comment: ownershipComment(namespace, dsa.metadata.name),
        schema: target.schema,
        usageRole: usageRoleName(database, target.schema),
        usageRoleComment: usageRoleComment(database, target.schema),
        principal,
      };
      let observation: AccessObservation | undefined;
      let dbProblem = 'no Warehouse to connect to';
      if (wh && connections) {
        try {
          const { pool } = await connections.pool(wh);
          observation = await withSession(pool, (session) => observeRole(session.client, access), { mode: 'READ ONLY' });
        } catch (e) {
          dbProblem = (e as Error).message;
        }
      }
      const refusal =
        (observation?.principal && refusedRole(observation.principal)) ||
        (observation && refusedTargets(target.schema, observation.tables, target.tables, privileges));
      if (refusal) {
        say(`#   policy: DENIED: ${refusal}: it is never grantable, whatever the accessPolicy says`);
        say('#   nothing would be granted');
        worse(EXIT.denied);
        say('');
        continue;
      }
      const plan = planAccess(observation ?? emptyObservation(target.tables), access, {
        tables: target.tables,
        privileges,
        principal,
        expired: false,
        convergedBefore: false,
      });
      if (!observation) say(`#   not compared with the catalog (${dbProblem}): the full SQL for an empty warehouse follows`);
      if (plan.blocked) say(`#   blocked: ${plan.blocked.message}`);
      if (observation && !observation.principalExists) say(`#   note: principal ${principal} does not exist; the membership would wait for it`);
      const { expiry, rest } = accessStatements(access, plan);
      const sql = [...expiry, ...rest];
      if (sql.length === 0 && !plan.blocked) say('#   no changes: the warehouse already matches');
      for (const s of sql) say(`${s.sql};`);
      say('');
    }
  } finally {
    await connections?.closeAll();
    client?.close();
  }
  return exit;
}

/** What an unreachable warehouse is assumed to hold: nothing; the listed tables exist. */
function emptyObservation(tables: readonly string[]): AccessObservation {
  return {
    role: { exists: false, comment: null, dangerousAttributes: [] },
    usageRole: { exists: false, comment: null, hasUsage: false },
    state: { tablePrivileges: [], schemaUsage: [], defaultPrivileges: [], members: [], memberOf: [] },
    schemaExists: true,
    tables: tables.filter((t) => t !== '*').map((name) => ({ name, owner: '' })),
    principalExists: true,
  };
}

/**
 * The s3 form: the ObjectStore's decision and the inline policy Steward would write on the role.
 * IAM is not asked (the CLI may hold no AWS credentials): what the role holds now is Steward's to
 * compare when it reconciles. Returns the exit code this access calls for.
 */
async function planS3(
  dsa: DatasetAccess,
  namespace: string,
  client: KubeClient | undefined,
  clusterProblem: string | undefined,
  say: (line: string) => void,
): Promise<number> {
  const s3 = dsa.spec.s3!;
  const role = dsa.spec.principal?.iamRole ?? '';
  let stores: ObjectStore[] | undefined;
  let labels: Record<string, string> = {};
  if (client) {
    try {
      stores = (await client.list<ObjectStore>(resourceType(objectStoreKind))).items.filter((o) => o.spec.s3.bucket === s3.bucket);
      labels = (await client.get<KubeObject>(NAMESPACE_TYPE, namespace).catch(() => ({ metadata: { name: namespace, labels: {} } }))).metadata.labels ?? {};
    } catch (e) {
      clusterProblem = (e as Error).message;
    }
  }
  if (stores?.length !== 1) {
    const why = !stores
      ? `cannot read the ObjectStores${clusterProblem ? ` (${clusterProblem})` : ''}`
      : stores.length === 0
        ? `no ObjectStore has bucket ${s3.bucket}`
        : `ObjectStores ${stores.map((o) => o.metadata.name).join(' and ')} both name bucket ${s3.bucket}`;
    say(`#   policy: NOT CHECKED: ${why}`);
    return EXIT.unverifiable;
  }
  const [store] = stores as [ObjectStore];
  const access = s3.access ?? 'read';
  const decision = evaluateStorePolicy(store.spec.accessPolicy, { namespace: { name: namespace, labels }, prefix: s3.prefix, access, principal: role });
  if (!decision.allowed) {
    say(`#   policy: DENIED: ${decision.message}`);
    say('#   nothing would be granted');
    return EXIT.denied;
  }
  const deadline = accessDeadline(dsa.spec, undefined, decision.maxDurationMs, new Date());
  say(
    `#   policy: allowed by ObjectStore ${store.metadata.name} accessPolicy[${decision.rule}]${deadline.expiresAt ? `; expires ${deadline.expiresAt}${deadline.capped ? ' (capped by maxDuration)' : ''}` : ''}`,
  );
  say(
    `#   inline policy ${inlinePolicyName(namespace, dsa.metadata.name)} on IAM role ${roleNameOf(role)} (not compared with IAM: written only if IAM's differs)`,
  );
  const document = accessPolicyDocument({
    bucket: s3.bucket,
    prefix: s3.prefix,
    access,
    expiresAt: deadline.expiresAt ?? undefined,
    region: store.spec.s3.region,
  });
  say(JSON.stringify(document, null, 2));
  return EXIT.ok;
}

/**
 * A MaskedView: its expressions checked by the reconciler's own rules (planView: the allow-lists,
 * the rules that keep a spec from undoing its own masks), then the SELECT and the lineage. With a
 * cluster, the Warehouse's policy too. What needs the catalog (that the tables exist, that a join
 * cannot multiply rows under kAnonymity) is the reconciler's. Returns the exit code it calls for.
 */
async function planMaskedView(
  mv: MaskedView,
  namespace: string,
  client: KubeClient | undefined,
  clusterProblem: string | undefined,
  offline: boolean,
  say: (line: string) => void,
): Promise<number> {
  say(`# MaskedView ${namespace}/${mv.metadata?.name}`);
  const spec = mv.spec;
  if (!spec?.view || !spec.from || !Array.isArray(spec.columns)) {
    say('#   refused: not a MaskedView spec (view, from and columns are required)');
    say('');
    return EXIT.denied;
  }
  let exit: number = EXIT.ok;
  const { loadParser, ExpressionError } = await import('../drivers/postgres/expression.ts');
  const { planView } = await import('../drivers/postgres/view-sql.ts');
  await loadParser();
  let plan: ReturnType<typeof planView>;
  try {
    plan = planView(spec, {
      hmacFunction: '"public"."hmac"',
      keyQuery: 'SELECT NULL::bytea AS key',
      unmaskedRoleOids: (spec.unmaskedRoles ?? []).map(() => 0),
    });
  } catch (e) {
    if (!(e instanceof ExpressionError)) throw e;
    say(`#   refused: ${e.message}`);
    say('#   nothing would be built');
    say('');
    return EXIT.denied;
  }
  let wh: Warehouse | undefined;
  let problem = clusterProblem;
  if (client)
    try {
      wh = await client.get<Warehouse>(resourceType(warehouseKind), spec.warehouse);
    } catch (e) {
      problem = (e as Error).message;
    }
  if (wh && client) {
    const labels = (await client.get<KubeObject>(NAMESPACE_TYPE, namespace).catch(() => ({ metadata: { name: namespace, labels: {} } }))).metadata.labels ?? {};
    const denial = viewPolicyDenial(wh.spec.accessPolicy, {
      namespace: { name: namespace, labels },
      viewSchema: spec.view.schema,
      sourceSchemas: plan.sourceTables.map((t) => t.split('.')[0]!),
      roles: [...spec.readers, ...(spec.unmaskedRoles ?? [])],
    });
    if (denial) {
      say(`#   policy: DENIED: ${denial}`);
      exit = EXIT.denied;
    } else say(`#   policy: allowed by Warehouse ${spec.warehouse}`);
  } else {
    say(`#   policy: NOT CHECKED: ${offline ? '--offline' : `cannot read Warehouse ${spec.warehouse}${problem ? ` (${problem})` : ''}`}`);
    if (!offline) exit = EXIT.unverifiable;
  }
  say(`#   expressions valid; ${plan.maskedColumns} masked column(s); sources ${plan.sourceTables.join(', ')}`);
  if (spec.unmaskedRoles?.length) say('#   (the unmaskedRoles are matched by OID: 0 here, the reconciler puts in the real ones)');
  say(`CREATE OR REPLACE VIEW ${quoteIdent(spec.view.schema)}.${quoteIdent(spec.view.name)} WITH (security_barrier = true) AS ${plan.select};`);
  say('# lineage:');
  say(JSON.stringify(plan.lineage, null, 2));
  say('');
  return exit;
}
