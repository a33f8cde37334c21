// Reads a Secret's data on demand. Steward never caches Secret values in an informer: it watches
// Secrets' metadata only, and reads the values when a reconcile needs them.
import { isNotFound, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';

export const SECRET_TYPE: ResourceType = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export class SecretNotFoundError extends Error {}

/** The Secret's keys, base64-decoded. Throws SecretNotFoundError when it does not exist. */
export async function readSecret(client: KubeClient, namespace: string, name: string): Promise<Record<string, string>> {
  try {
    const secret = await client.get<SecretObject>(SECRET_TYPE, name, namespace);
    return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  } catch (err) {
    if (isNotFound(err)) throw new SecretNotFoundError(`Secret ${namespace}/${name} not found`);
    throw err;
  }
}
