// Helpers for integration tests on the local stack (test/stack/stack.sh): a real kube-apiserver,
// a real PostgreSQL with TLS and moto. Nothing here mocks either; it only saves typing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, createWriteStream, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { REPO, loadStackEnv } from '../stack/env.ts';
import { KubeClient, isNotFound, type KubeObject, type ResourceType } from '../../src/runtime/kube.ts';
import { SECRET_TYPE } from '../../src/runtime/secrets.ts';
import { EVENT_TYPE } from '../../src/runtime/events.ts';

export { REPO };
loadStackEnv();

export const kube = KubeClient.fromDefault();

export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

export function kubectl(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('kubectl', args, { input, encoding: 'utf8', env: process.env });
  const stderr = (r.stderr ?? '')
    .split('\n')
    .filter((l) => !l.startsWith('WARNING: version difference'))
    .join('\n');
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr };
}

export function apply(yaml: string): void {
  const r = kubectl(['apply', '-f', '-'], yaml);
  if (r.code !== 0) throw new Error(`kubectl apply failed: ${r.stderr}`);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false && v !== null) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function ensureNamespace(name: string): Promise<void> {
  const ns: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };
  try {
    await kube.create(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  } catch (err) {
    if (!String(err).includes('AlreadyExists')) throw err;
  }
}

export async function putSecret(namespace: string, name: string, data: Record<string, string>): Promise<void> {
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
  try {
    const existing = await kube.get<KubeObject>(SECRET_TYPE, name, namespace);
    await kube.replace(SECRET_TYPE, { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata.resourceVersion } });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await kube.create(SECRET_TYPE, body);
  }
}

export interface Conditioned extends KubeObject {
  status?: {
    conditions?: { type: string; status: string; reason: string; message: string; lastTransitionTime: string; observedGeneration?: number }[];
    observedGeneration?: number;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
}

export function condition(obj: Conditioned | undefined, type: string) {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the object's condition has the status (and reason, when given) for its current generation. */
export async function waitForCondition(
  type: ResourceType,
  name: string,
  namespace: string | undefined,
  cond: string,
  status: string,
  reason?: string,
  timeoutMs = 30_000,
): Promise<Conditioned> {
  let last = 'not read yet';
  return waitFor(
    `${type.kind} ${name}: ${cond}=${status}${reason ? ` (${reason})` : ''}`,
    async () => {
      const obj = await kube.get<Conditioned>(type, name, namespace);
      const c = condition(obj, cond);
      // On a timeout the error shows where the object stood, which is what one needs to debug it.
      last = c ? `${c.status} (${c.reason}): ${c.message}` : 'no such condition';
      const current = obj.status?.observedGeneration === obj.metadata.generation;
      return current && c?.status === status && (!reason || c.reason === reason) ? obj : undefined;
    },
    timeoutMs,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last seen ${cond}=${last}`);
  });
}

export async function eventsAbout(name: string): Promise<{ reason: string; note: string; type: string; series?: { count: number } }[]> {
  const list = await kube.list<{ reason: string; note: string; type: string; regarding: { name: string }; series?: { count: number } } & KubeObject>(
    EVENT_TYPE,
  );
  return list.items.filter((e) => e.regarding.name === name);
}

export async function allEventsText(): Promise<string> {
  const list = await kube.list<KubeObject>(EVENT_TYPE);
  return JSON.stringify(list.items);
}

// PostgreSQL as the stack's superuser, over verified TLS.
export function pgConfig(overrides: Partial<pg.ClientConfig> = {}): pg.ClientConfig {
  return {
    host: process.env.PGHOST,
    port: Number(process.env.PGPORT),
    user: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    database: process.env.PGDATABASE,
    ssl: { ca: readFileSync(process.env.PGSSLROOTCERT!, 'utf8'), rejectUnauthorized: true },
    ...overrides,
  };
}

export async function withPg<T>(fn: (c: pg.Client) => Promise<T>, overrides: Partial<pg.ClientConfig> = {}): Promise<T> {
  const client = new pg.Client(pgConfig(overrides));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A Steward operator process, run the way `make run` runs it, with its log captured. */
/** The image's ENTRYPOINT (Dockerfile), after `node`: the tests run Steward as it ships. */
function imageEntrypoint(): string[] {
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(REPO, 'Dockerfile'), 'utf8'))?.[1];
  return (JSON.parse(entrypoint ?? '[]') as string[]).slice(1);
}

/** The Node flags of the image's ENTRYPOINT. */
export function imageNodeFlags(): string[] {
  return imageEntrypoint().filter((a) => a.startsWith('--'));
}

/** The script the image runs (dist/main.js: src/ compiled by tsconfig.build.json, which the integration tests' global setup builds). */
export function imageScript(): string {
  const script = imageEntrypoint().find((a) => !a.startsWith('--'));
  if (!script) throw new Error('the Dockerfile ENTRYPOINT names no script');
  return join(REPO, script);
}

export class Steward {
  readonly logFile: string;
  readonly identity: string;
  private readonly child: ChildProcess;
  private exitCode: number | null | undefined;
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcess, logFile: string, identity: string) {
    this.child = child;
    this.logFile = logFile;
    this.identity = identity;
    this.exited = new Promise((resolveExit) =>
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolveExit(this.exitCode);
      }),
    );
  }

  static start(opts: { lease?: string; args?: string[]; env?: Record<string, string>; identity?: string; nodeFlags?: string[] } = {}): Steward {
    const dir = join(process.env.STEWARD_STACK_DIR ?? join(REPO, '.stack'), 'test-logs');
    mkdirSync(dir, { recursive: true });
    const identity = opts.identity ?? unique('steward');
    const logFile = join(dir, `${identity}.log`);
    const out = createWriteStream(logFile);
    const args = [
      // As the image runs it (Dockerfile's ENTRYPOINT): its Node flags, the compiled dist/main.js.
      ...imageNodeFlags(),
      ...(opts.nodeFlags ?? []),
      imageScript(),
      '--metrics-bind-address',
      '127.0.0.1:0',
      '--leader-election-id',
      opts.lease ?? unique('lease'),
      '--leader-election-namespace',
      'steward-system',
      ...(opts.args ?? []),
    ];
    const child = spawn(process.execPath, args, {
      cwd: REPO,
      env: { ...process.env, POD_NAME: identity, LOG_LEVEL: 'debug', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    return new Steward(child, logFile, identity);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  logs(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  logLines(): Record<string, unknown>[] {
    return this.logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async waitForLog(what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return waitFor(what, () => this.logLines().find(match), timeoutMs);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  waitForExit(): Promise<number | null> {
    return this.exited;
  }

  /** Its /metrics page, read from the address it logged at start. */
  async metricsText(): Promise<string> {
    const address = this.logLines().find((l) => l.msg === 'steward starting')?.http;
    return (await fetch(`http://${String(address)}/metrics`)).text();
  }
}

/** The sum of the values (the first capture) of the metrics lines `re` matches (it must be global). */
export function sumMetric(text: string, re: RegExp): number {
  return [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Steward's writes to the API server, the Lease aside (it is written while idle, by design), one line per method, resource and code. */
export const API_WRITES = /^rest_client_requests_total\{method="(?:POST|PUT|PATCH|DELETE)",resource="(?!leases")[^"]*",code="\d+"\} (\d+)$/gm;
/** Steward's GETs of Secrets. */
export const SECRET_GETS = /^rest_client_requests_total\{method="GET",resource="secrets",code="\d+"\} (\d+)$/gm;
/** The reconciles of one controller, whatever their result. */
export const reconcilesOf = (controller: string) =>
  new RegExp(`^controller_runtime_reconcile_total\\{controller="${controller}",result="[^"]+"\\} (\\d+)$`, 'gm');

/** The Secrets a test Warehouse `name` reads, in steward-system: `<name>-ca` (the stack's CA) and `<name>-creds` (the stack's login). */
export async function putWarehouseSecrets(name: string): Promise<void> {
  await putSecret('steward-system', `${name}-ca`, { 'ca.crt': stackCa() });
  await putSecret('steward-system', `${name}-creds`, { username: process.env.PGUSER!, password: process.env.PGPASSWORD! });
}

/** A Warehouse on the stack's PostgreSQL that reads the Secrets putWarehouseSecrets(name) put. */
export function stackWarehouseYaml(o: { name: string; database: string; policy?: string; port?: number | string }): string {
  return warehouseYaml({ ...o, caSecret: `${o.name}-ca`, credsSecret: `${o.name}-creds` });
}

const RBAC = (plural: string, kind: string): ResourceType => ({ group: 'rbac.authorization.k8s.io', version: 'v1', plural, kind, namespaced: false });

/** Lets `users` do `verbs` on DatasetAccesses (a ClusterRole and its binding, both named `name`); returns what takes it back. */
export async function allowUsers(name: string, users: string[], verbs: string[]): Promise<() => Promise<void>> {
  const role = RBAC('clusterroles', 'ClusterRole');
  const binding = RBAC('clusterrolebindings', 'ClusterRoleBinding');
  await kube.create(role, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name },
    rules: [{ apiGroups: ['steward.dev'], resources: ['datasetaccesses'], verbs }],
  } as KubeObject);
  await kube.create(binding, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
    subjects: users.map((user) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: user })),
  } as KubeObject);
  return async () => {
    await kube.delete(binding, name).catch(() => undefined);
    await kube.delete(role, name).catch(() => undefined);
  };
}

/** A Warehouse on the stack's PostgreSQL, its Secrets in steward-system. `policy` is YAML list items. */
export function warehouseYaml(o: {
  name: string;
  credsSecret: string;
  caSecret?: string;
  database?: string;
  port?: number | string;
  sslMode?: string;
  policy?: string;
}): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: Warehouse
metadata: {name: ${o.name}}
spec:
  postgres:
    host: localhost
    port: ${o.port ?? process.env.PGPORT}
    database: ${o.database ?? process.env.PGDATABASE}
    sslMode: ${o.sslMode ?? 'verify-full'}
    ${o.caSecret ? `caSecretRef: {namespace: steward-system, name: ${o.caSecret}}` : ''}
    credentialsSecretRef: {namespace: steward-system, name: ${o.credsSecret}}
${o.policy ? `  accessPolicy:\n${o.policy}\n` : ''}`;
}

/** A MaskedView manifest: `body` holds the view, from, joins, columns (indented two spaces). */
export function maskedViewYaml(o: { name: string; namespace: string; warehouse: string; body: string; readers: string[]; unmaskedRoles?: string[] }): string {
  return `
apiVersion: steward.dev/v1alpha1
kind: MaskedView
metadata: {name: ${o.name}, namespace: ${o.namespace}}
spec:
  warehouse: ${o.warehouse}
${o.body}
${o.unmaskedRoles ? `  unmaskedRoles: [${o.unmaskedRoles.join(', ')}]\n` : ''}  readers: [${o.readers.join(', ')}]
  owner: data-eng
`;
}

/** What kstatus (sigs.k8s.io/cli-utils, as used by Flux, Argo CD, kpt) makes of an object. */
export function kstatus(obj: unknown): { status: string; message: string } {
  const bin = spawnSync('bash', [join(REPO, 'test/stack/build-kstatus.sh')], { encoding: 'utf8' });
  if (bin.status !== 0) throw new Error(`cannot build kstatus: ${bin.stderr}`);
  const r = spawnSync(bin.stdout.trim(), [], { input: JSON.stringify(obj), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kstatus failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { status: string; message: string }[])[0]!;
}

/** A CA nobody trusts, made with openssl for this run. */
export function makeUnrelatedCa(): string {
  const dir = mkdtempSync(join(tmpdir(), 'steward-ca-'));
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=unrelated-ca', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return readFileSync(join(dir, 'ca.crt'), 'utf8');
}

export function stackCa(): string {
  return readFileSync(process.env.PGSSLROOTCERT!, 'utf8');
}

export function randomPassword(): string {
  return `pw-${randomBytes(18).toString('base64url')}`;
}
