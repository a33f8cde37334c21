// Secrets a Steward object owns (an ownerReference with controller: true to it): read, written and
// deleted only when they are its own. A Secret of the same name that is not is never overwritten:
// SecretNotOwned says so, and the caller tells the user how to resolve it.
import { isNotFound, type KubeClient, type KubeObject } from '../../runtime/kube.ts';
import { SECRET_TYPE, type SecretObject } from '../../runtime/secrets.ts';

export interface SecretOwner {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export class SecretNotOwned extends Error {}

const encode = (data: Record<string, string>) => Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]));
const decode = (data: Record<string, string> | undefined) =>
  Object.fromEntries(Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

function ownedBy(secret: KubeObject, owner: SecretOwner): boolean {
  return (secret.metadata.ownerReferences ?? []).some((r) => r.uid === owner.uid && r.controller === true);
}

export class OwnedSecrets {
  private readonly client: KubeClient;
  constructor(client: KubeClient) {
    this.client = client;
  }

  /** The Secret's values when it exists and is the owner's; undefined when it does not exist. Throws SecretNotOwned. */
  async read(namespace: string, name: string, owner: SecretOwner): Promise<Record<string, string> | undefined> {
    try {
      const secret = await this.client.get<SecretObject>(SECRET_TYPE, name, namespace);
      if (!ownedBy(secret, owner)) throw new SecretNotOwned(`Secret ${namespace}/${name} exists and is not ${owner.kind} ${namespace}/${owner.name}'s`);
      return decode(secret.data);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Creates the Secret, or replaces its values when it is the owner's and they differ. Returns whether it wrote. Throws SecretNotOwned. */
  async write(namespace: string, name: string, owner: SecretOwner, data: Record<string, string>): Promise<boolean> {
    let existing: SecretObject | undefined;
    try {
      existing = await this.client.get<SecretObject>(SECRET_TYPE, name, namespace);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (existing && !ownedBy(existing, owner))
      throw new SecretNotOwned(`Secret ${namespace}/${name} exists and is not ${owner.kind} ${namespace}/${owner.name}'s`);
    const current = decode(existing?.data);
    if (existing && Object.keys(data).length === Object.keys(current).length && Object.entries(data).every(([k, v]) => current[k] === v)) return false;
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        ...(existing ? { resourceVersion: existing.metadata.resourceVersion } : {}),
        labels: { 'app.kubernetes.io/managed-by': 'steward' },
        ownerReferences: [{ ...owner, controller: true, blockOwnerDeletion: true }],
      },
      type: 'Opaque',
      data: encode(data),
    } as SecretObject;
    // A replace carries the resourceVersion read above: a concurrent writer makes it a conflict, retried.
    if (existing) await this.client.replace(SECRET_TYPE, body);
    else await this.client.create(SECRET_TYPE, body, namespace);
    return true;
  }

  /** Deletes the Secret if it is the owner's (a missing one is fine). */
  async remove(namespace: string, name: string, owner: SecretOwner): Promise<void> {
    try {
      const secret = await this.client.get<SecretObject>(SECRET_TYPE, name, namespace);
      if (!ownedBy(secret, owner)) return;
      await this.client.delete(SECRET_TYPE, name, namespace);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
