// Where the API server is and how to authenticate to it, without loading @kubernetes/client-node
// (about 85 MB of resident memory, for the generated API Steward does not use). Read as kubectl and
// client-node do: $KUBECONFIG (its first file), else ~/.kube/config, else the in-cluster service
// account. Certificates, bearer tokens (a token file is re-read, so projected tokens that the
// kubelet rotates keep working) and basic auth are handled here; a user that authenticates through
// an exec plugin or an auth provider (EKS, GKE, OIDC) is handed to client-node, loaded only then.
import { existsSync, readFileSync, statSync } from 'node:fs';
import type https from 'node:https';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';

/** What a request needs to reach the API server: its address, and its credentials applied to the request. */
export interface ClusterAccess {
  server: URL;
  applyTo(options: https.RequestOptions): Promise<void>;
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

interface NamedCluster {
  name: string;
  cluster: {
    server: string;
    'certificate-authority'?: string;
    'certificate-authority-data'?: string;
    'insecure-skip-tls-verify'?: boolean;
    'tls-server-name'?: string;
  };
}
interface NamedUser {
  name: string;
  user?: {
    'client-certificate'?: string;
    'client-certificate-data'?: string;
    'client-key'?: string;
    'client-key-data'?: string;
    token?: string;
    tokenFile?: string;
    username?: string;
    password?: string;
    exec?: unknown;
    'auth-provider'?: unknown;
  };
}
interface KubeConfigFile {
  clusters?: NamedCluster[];
  users?: NamedUser[];
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  'current-context'?: string;
}

/**
 * The cluster of $KUBECONFIG, ~/.kube/config or the pod's service account, in that order. Of a
 * $KUBECONFIG listing several files, the first is read (client-node merges them; Steward's own
 * deployments never list more than one).
 */
export function loadClusterAccess(env: NodeJS.ProcessEnv = process.env, serviceAccountDir = SERVICE_ACCOUNT): ClusterAccess {
  const file = env.KUBECONFIG?.split(':').find(Boolean) ?? resolve(homedir(), '.kube', 'config');
  if (existsSync(file)) return fromKubeconfig(file);
  if (env.KUBERNETES_SERVICE_HOST) return inCluster(env, serviceAccountDir);
  throw new Error(`no kubeconfig at ${file} and not in a cluster (KUBERNETES_SERVICE_HOST is unset)`);
}

/** The kubeconfig's current context, with another server address (tests put a proxy in front). */
export function fromKubeconfig(file: string, server?: string): ClusterAccess {
  const config = parse(readFileSync(file, 'utf8')) as KubeConfigFile;
  const context = config.contexts?.find((c) => c.name === config['current-context'])?.context;
  if (!context) throw new Error(`kubeconfig ${file}: no current context`);
  const cluster = config.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster?.server) throw new Error(`kubeconfig ${file}: cluster ${context.cluster} has no server`);
  const user = config.users?.find((u) => u.name === context.user)?.user ?? {};
  const base = dirname(file);
  const bytes = (data: string | undefined, path: string | undefined) =>
    data ? Buffer.from(data, 'base64') : path ? readFileSync(resolve(base, path)) : undefined;
  const ca = bytes(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = bytes(user['client-certificate-data'], user['client-certificate']);
  const key = bytes(user['client-key-data'], user['client-key']);
  const token = user.tokenFile ? fileToken(resolve(base, user.tokenFile)) : user.token ? () => user.token! : undefined;
  const basic = user.username ? `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}` : undefined;
  const plugin = user.exec || user['auth-provider'] ? clientNodeAuth(file) : undefined;
  return {
    server: new URL(server ?? cluster.server),
    async applyTo(o) {
      if (plugin) return plugin(o);
      Object.assign(o, {
        ca,
        cert,
        key,
        rejectUnauthorized: !cluster['insecure-skip-tls-verify'],
        ...(cluster['tls-server-name'] ? { servername: cluster['tls-server-name'] } : {}),
      });
      const authorization = token ? `Bearer ${token()}` : basic;
      if (authorization) (o.headers as Record<string, string>).Authorization = authorization;
    },
  };
}

function inCluster(env: NodeJS.ProcessEnv, dir: string): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const ca = readFileSync(`${dir}/ca.crt`);
  const token = fileToken(`${dir}/token`);
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    async applyTo(o) {
      Object.assign(o, { ca, rejectUnauthorized: true });
      (o.headers as Record<string, string>).Authorization = `Bearer ${token()}`;
    },
  };
}

/** A token read from a file, again whenever the file changes (the kubelet rotates projected tokens). */
function fileToken(path: string): () => string {
  let seen = { mtimeMs: -1, token: '' };
  return () => {
    const { mtimeMs } = statSync(path);
    if (mtimeMs !== seen.mtimeMs) seen = { mtimeMs, token: readFileSync(path, 'utf8').trim() };
    return seen.token;
  };
}

/** Exec plugins and auth providers: client-node's implementation, loaded on first use. */
function clientNodeAuth(file: string): (o: https.RequestOptions) => Promise<void> {
  let loaded: Promise<{ applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }> | undefined;
  return async (o) => {
    loaded ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromFile(file);
      return kc;
    });
    await (await loaded).applyToHTTPSOptions(o);
  };
}
