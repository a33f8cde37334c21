// Reads a Secret's data on demand. Steward never caches Secret values in an informer: it watches
// Secrets' metadata only, and reads the values when a reconcile needs them and the watch says they
// changed (SecretReader).
import { KubeApiError, isNotFound, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';

export const SECRET_TYPE: ResourceType = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export class SecretNotFoundError extends Error {}

/** The Kubernetes API did not answer a read of a Secret: nothing is known about the Secret itself. */
export class SecretUnreadableError extends Error {}

/** The Secret's keys, base64-decoded, and its resourceVersion. Throws SecretNotFoundError when it does not exist. */
export async function readSecret(client: KubeClient, namespace: string, name: string): Promise<{ data: Record<string, string>; resourceVersion?: string }> {
  try {
    const secret = await client.get<SecretObject>(SECRET_TYPE, name, namespace);
    return {
      data: Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])),
      resourceVersion: secret.metadata.resourceVersion,
    };
  } catch (err) {
    if (isNotFound(err)) throw new SecretNotFoundError(`Secret ${namespace}/${name} not found`);
    if (err instanceof KubeApiError) throw err;
    // No answer at all (refused, reset, timed out): say that, not that the Secret is missing.
    throw new SecretUnreadableError(`cannot read Secret ${namespace}/${name}: the Kubernetes API did not answer (${(err as Error).message})`);
  }
}

/**
 * Secret values read once per resourceVersion: `currentVersion` is what the metadata watch last saw
 * (undefined when it has not seen the Secret). A value is read again only when the watch reports a
 * different version, so an idle resync costs no GET; values live in memory as long as the pools that
 * use them do, and no longer than the Secret does (a deleted Secret has no current version).
 */
export class SecretReader {
  private readonly client: KubeClient;
  private readonly currentVersion: (namespace: string, name: string) => string | undefined;
  private readonly known = new Map<string, { resourceVersion: string; data: Record<string, string> }>();

  constructor(client: KubeClient, currentVersion: (namespace: string, name: string) => string | undefined = () => undefined) {
    this.client = client;
    this.currentVersion = currentVersion;
  }

  async read(namespace: string, name: string): Promise<Record<string, string>> {
    const key = `${namespace}/${name}`;
    const current = this.currentVersion(namespace, name);
    const known = this.known.get(key);
    if (current !== undefined && known?.resourceVersion === current) return known.data;
    this.known.delete(key);
    const { data, resourceVersion } = await readSecret(this.client, namespace, name);
    if (resourceVersion) this.known.set(key, { resourceVersion, data });
    return data;
  }
}
