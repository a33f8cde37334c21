// `steward report`: for each Warehouse and ObjectStore (or those named), every control of the guide
// with live proof gathered now, signed with an Ed25519 key from a Secret; `steward report verify
// FILE` checks a report. Read-only everywhere: GETs and LISTs in the cluster, READ ONLY
// transactions in the warehouse, Get* calls to S3.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { accessReviewKind, type AccessReview } from '../api/accessreview.ts';
import { datasetAccessKind, type DatasetAccess } from '../api/datasetaccess.ts';
import { maskedViewKind, type MaskedView } from '../api/maskedview.ts';
import { objectStoreKind, type ObjectStore } from '../api/objectstore.ts';
import { resourceType } from '../api/schema.ts';
import { secretRotationKind, type SecretRotation } from '../api/secretrotation.ts';
import { warehouseKind, type Warehouse } from '../api/warehouse.ts';
import { ObjectStoreConnections } from '../drivers/aws/clients.ts';
import { WarehouseConnections } from '../drivers/postgres/connector.ts';
import { PostgresEvidenceDriver } from '../drivers/postgres/evidence-driver.ts';
import { buildReport, serializeSigned, signReport, verifyReport, type EvidenceItem } from '../governance/evidence.ts';
import { KubeClient, type KubeObject, type ResourceType } from '../runtime/kube.ts';
import { SecretReader } from '../runtime/secrets.ts';
import { objectStoreEvidence, warehouseEvidence, type ClusterFacts } from './report-gather.ts';
import { embeddedReport, renderHtml, renderMarkdown } from './report-render.ts';

export const REPORT_EXIT = { ok: 0, failed: 1, usage: 2, unverified: 3 } as const;
/** The Secret key that holds the PKCS#8 PEM Ed25519 private key. */
export const SIGNING_KEY = 'ed25519.pem';

const core = (plural: string, kind: string): ResourceType => ({ group: '', version: 'v1', plural, kind, namespaced: true });
const apps = (plural: string, kind: string): ResourceType => ({ group: 'apps', version: 'v1', plural, kind, namespaced: true });
const batch = (plural: string, kind: string): ResourceType => ({ group: 'batch', version: 'v1', plural, kind, namespaced: true });
const MANIFEST_TYPES = [
  apps('deployments', 'Deployment'),
  apps('statefulsets', 'StatefulSet'),
  apps('daemonsets', 'DaemonSet'),
  batch('jobs', 'Job'),
  batch('cronjobs', 'CronJob'),
  core('pods', 'Pod'),
  core('configmaps', 'ConfigMap'),
];

const USAGE = `usage: steward report [--warehouse NAME]... [--objectstore NAME]... [-o json|markdown|html] [--out FILE]
                      [--key-secret NAMESPACE/NAME] [--steward-log FILE]
       steward report verify FILE [--public-key PEM_FILE]`;

export async function runReport(argv: string[], out: Writable, err: Writable): Promise<number> {
  if (argv[0] === 'verify') return runVerify(argv.slice(1), out, err);
  let values: {
    warehouse?: string[];
    objectstore?: string[];
    output?: string;
    out?: string;
    'key-secret'?: string;
    'steward-log'?: string;
  };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        warehouse: { type: 'string', multiple: true },
        objectstore: { type: 'string', multiple: true },
        output: { type: 'string', short: 'o', default: 'json' },
        out: { type: 'string' },
        'key-secret': { type: 'string', default: 'steward-system/steward-report-signing-key' },
        'steward-log': { type: 'string' },
      },
    }));
  } catch (e) {
    err.write(`steward report: ${(e as Error).message}\n${USAGE}\n`);
    return REPORT_EXIT.usage;
  }
  const format = values.output!;
  if (!['json', 'markdown', 'md', 'html'].includes(format)) {
    err.write(`steward report: -o must be json, markdown or html\n`);
    return REPORT_EXIT.usage;
  }
  const [keyNs, keyName] = values['key-secret']!.split('/');
  if (!keyNs || !keyName) {
    err.write('steward report: --key-secret must be NAMESPACE/NAME\n');
    return REPORT_EXIT.usage;
  }
  const kube = KubeClient.fromDefault({ userAgent: 'steward-report' });
  const secrets = new SecretReader(kube);
  const connections = new WarehouseConnections(kube, 1);
  try {
    let privateKey: string | undefined;
    try {
      privateKey = (await secrets.read(keyNs, keyName))[SIGNING_KEY];
    } catch (e) {
      err.write(`steward report: cannot read the signing key Secret ${keyNs}/${keyName}: ${(e as Error).message}\n`);
    }
    if (!privateKey) {
      err.write(
        `steward report: the Secret ${keyNs}/${keyName} must hold an Ed25519 private key (PKCS#8 PEM) under ${SIGNING_KEY}; e.g.\n  openssl genpkey -algorithm ed25519 -out key.pem && kubectl -n ${keyNs} create secret generic ${keyName} --from-file=${SIGNING_KEY}=key.pem\n`,
      );
      return REPORT_EXIT.usage;
    }
    const listAll = async <T>(type: ResourceType) => (await kube.list<T & KubeObject>(type)).items as T[];
    const warehouses = (await listAll<Warehouse>(resourceType(warehouseKind))).filter((w) => !values.warehouse || values.warehouse.includes(w.metadata.name));
    const stores = (await listAll<ObjectStore>(resourceType(objectStoreKind))).filter(
      (o) => !values.objectstore || values.objectstore.includes(o.metadata.name),
    );
    const onlyStores = values.objectstore && !values.warehouse;
    const cluster: ClusterFacts = {
      accesses: await listAll<DatasetAccess>(resourceType(datasetAccessKind)),
      views: await listAll<MaskedView>(resourceType(maskedViewKind)),
      rotations: await listAll<SecretRotation>(resourceType(secretRotationKind)),
      reviews: await listAll<AccessReview>(resourceType(accessReviewKind)),
      manifests: async (namespace) => {
        const all: KubeObject[] = [];
        for (const type of MANIFEST_TYPES) {
          const items = (await kube.list<KubeObject>(type, { namespace })).items;
          all.push(...items.map((i) => ({ ...i, kind: type.kind }) as KubeObject));
        }
        return all;
      },
      secret: (namespace, name) => secrets.read(namespace, name).catch(() => undefined),
      stewardLog: readStewardLog(values['steward-log']),
    };
    const now = new Date();
    const drafts: Omit<EvidenceItem, 'at'>[] = [];
    for (const wh of onlyStores ? [] : warehouses) {
      let driver: PostgresEvidenceDriver | undefined;
      let unreachable: string | undefined;
      try {
        const { pool } = await connections.pool(wh);
        driver = new PostgresEvidenceDriver(pool, wh.metadata.name);
      } catch (e) {
        unreachable = `cannot connect to Warehouse ${wh.metadata.name}: ${(e as Error).message}`;
      }
      drafts.push(...(await warehouseEvidence({ wh, driver, unreachable, cluster, now })));
    }
    if (!values.warehouse || values.objectstore) {
      const storeConnections = new ObjectStoreConnections(kube, () => undefined);
      for (const store of stores) {
        drafts.push(
          ...(await objectStoreEvidence(
            store,
            async () => {
              const { observeBucket } = await import('../drivers/aws/bucket.ts');
              const clients = await storeConnections.clients(store);
              return observeBucket(clients.s3, store.spec.s3.bucket);
            },
            cluster.reviews,
          )),
        );
      }
    }
    const at = new Date().toISOString();
    const report = buildReport(
      drafts.map((d) => ({ ...d, at })),
      [
        ...(onlyStores ? [] : warehouses.map((w) => `Warehouse ${w.metadata.name}`)),
        ...(values.warehouse && !values.objectstore ? [] : stores.map((s) => `ObjectStore ${s.metadata.name}`)),
      ],
      now,
    );
    const signed = signReport(report, privateKey);
    const text = format === 'html' ? renderHtml(signed) : format === 'json' ? serializeSigned(signed) : renderMarkdown(signed);
    if (values.out) writeFileSync(values.out, text);
    else out.write(text);
    const s = report.summary;
    err.write(`steward report: ${s.pass} pass, ${s.fail} fail, ${s.notEvaluated} not evaluated${values.out ? `; written to ${values.out}` : ''}\n`);
    return s.fail > 0 ? REPORT_EXIT.failed : REPORT_EXIT.ok;
  } finally {
    await connections.closeAll();
    kube.close();
  }
}

function readStewardLog(file: string | undefined): ClusterFacts['stewardLog'] {
  if (!file) return { missing: 'no Steward log given: pass --steward-log FILE (e.g. kubectl -n steward-system logs deploy/steward > FILE)' };
  try {
    return { text: readFileSync(file, 'utf8'), source: file };
  } catch (e) {
    return { missing: `cannot read ${file}: ${(e as Error).message}` };
  }
}

function runVerify(argv: string[], out: Writable, err: Writable): number {
  let values: { 'public-key'?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { 'public-key': { type: 'string' } } }));
  } catch (e) {
    err.write(`steward report verify: ${(e as Error).message}\n${USAGE}\n`);
    return REPORT_EXIT.usage;
  }
  if (positionals.length !== 1) {
    err.write(`${USAGE}\n`);
    return REPORT_EXIT.usage;
  }
  const file = positionals[0]!;
  let text: string;
  let trusted: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
    trusted = values['public-key'] ? readFileSync(values['public-key'], 'utf8') : undefined;
  } catch (e) {
    err.write(`steward report verify: ${(e as Error).message}\n`);
    return REPORT_EXIT.usage;
  }
  const embedded = embeddedReport(text);
  const result = embedded ? verifyReport(embedded.json, trusted) : { ok: false as const, why: 'no Steward report found in the file' };
  if (result.ok && embedded?.render && embedded.render(result.signed) !== text) {
    err.write(`steward report verify: ${file}: REJECTED: the page is not byte for byte what Steward rendered from its signed report\n`);
    return REPORT_EXIT.unverified;
  }
  if (!result.ok) {
    err.write(`steward report verify: ${file}: REJECTED: ${result.why}\n`);
    return REPORT_EXIT.unverified;
  }
  const s = result.signed.report.summary;
  out.write(
    `${file}: OK: signed with Ed25519 key ${result.keyId}${trusted ? ' (the trusted key)' : ' (the key in the report: pass --public-key to pin whose)'}; ${result.signed.report.items.length} items, ${s.pass} pass, ${s.fail} fail, ${s.notEvaluated} not evaluated; generated ${result.signed.report.generatedAt}\n`,
  );
  return REPORT_EXIT.ok;
}
