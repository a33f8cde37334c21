// Secrets a Steward object owns (an ownerReference with controller: true to it): read, written and
// deleted only when they are its own. A Secret of the same name that is not is never overwritten:
// SecretNotOwned says so, and the caller tells the user how to resolve it.
// What was last read or written is kept per resourceVersion, and used while the metadata watch
// reports that same version (or, for a Secret known to be absent, reports none): an idle resync
// costs no GET. Anything the watch does not confirm is read again.
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

/** What is known of one Secret: absent, or its version, whether it is the owner's, and its values. */
type Known = { absent: true } | { absent: false; resourceVersion: string; ownerUid: string | undefined; data: Record<string, string> };

const controllerUid = (secret: KubeObject) => secret.metadata.ownerReferences?.find((r) => r.controller === true)?.uid;

export class OwnedSecrets {
  private readonly client: KubeClient;
  private readonly currentVersion: (namespace: string, name: string) => string | undefined;
  /** namespace/name -> what is known, and the name of the owner that asked (to forget it with the owner). */
  private readonly known = new Map<string, Known & { askedBy: string }>();

  /** `currentVersion`: the resourceVersion the metadata watch last saw (undefined: it has not seen the Secret). */
  constructor(client: KubeClient, currentVersion: (namespace: string, name: string) => string | undefined = () => undefined) {
    this.client = client;
    this.currentVersion = currentVersion;
  }

  /** The Secret as known, when the watch confirms it; otherwise read now. */
  private async look(namespace: string, name: string, owner: SecretOwner): Promise<Known> {
    const key = `${namespace}/${name}`;
    const current = this.currentVersion(namespace, name);
    const known = this.known.get(key);
    if (known && (known.absent ? current === undefined : known.resourceVersion === current)) return known;
    this.known.delete(key);
    try {
      const secret = await this.client.get<SecretObject>(SECRET_TYPE, name, namespace);
      return this.remember(namespace, name, owner, secret);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return this.remember(namespace, name, owner, undefined);
    }
  }

  private remember(namespace: string, name: string, owner: SecretOwner, secret: SecretObject | undefined): Known {
    const known: Known = secret
      ? { absent: false, resourceVersion: secret.metadata.resourceVersion!, ownerUid: controllerUid(secret), data: decode(secret.data) }
      : { absent: true };
    this.known.set(`${namespace}/${name}`, { ...known, askedBy: owner.name });
    return known;
  }

  private notOwned(namespace: string, name: string, owner: SecretOwner): SecretNotOwned {
    return new SecretNotOwned(`Secret ${namespace}/${name} exists and is not ${owner.kind} ${namespace}/${owner.name}'s`);
  }

  /** The Secret's values when it exists and is the owner's; undefined when it does not exist. Throws SecretNotOwned. */
  async read(namespace: string, name: string, owner: SecretOwner): Promise<Record<string, string> | undefined> {
    const known = await this.look(namespace, name, owner);
    if (known.absent) return undefined;
    if (known.ownerUid !== owner.uid) throw this.notOwned(namespace, name, owner);
    return known.data;
  }

  /** Creates the Secret, or replaces its values when it is the owner's and they differ. Returns whether it wrote. Throws SecretNotOwned. */
  async write(namespace: string, name: string, owner: SecretOwner, data: Record<string, string>): Promise<boolean> {
    const existing = await this.look(namespace, name, owner);
    if (!existing.absent && existing.ownerUid !== owner.uid) throw this.notOwned(namespace, name, owner);
    const current = existing.absent ? {} : existing.data;
    if (!existing.absent && Object.keys(data).length === Object.keys(current).length && Object.entries(data).every(([k, v]) => current[k] === v)) return false;
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        ...(existing.absent ? {} : { resourceVersion: existing.resourceVersion }),
        labels: { 'app.kubernetes.io/managed-by': 'steward' },
        ownerReferences: [{ ...owner, controller: true, blockOwnerDeletion: true }],
      },
      type: 'Opaque',
      data: encode(data),
    } as SecretObject;
    // A replace carries the resourceVersion known: a concurrent writer makes it a conflict, retried
    // (and what is known is dropped, so the retry reads the Secret again).
    this.known.delete(`${namespace}/${name}`);
    const written = existing.absent
      ? await this.client.create<SecretObject>(SECRET_TYPE, body, namespace)
      : await this.client.replace<SecretObject>(SECRET_TYPE, body);
    this.remember(namespace, name, owner, written);
    return true;
  }

  /** Deletes the Secret if it is the owner's (a missing one is fine). */
  async remove(namespace: string, name: string, owner: SecretOwner): Promise<void> {
    const known = await this.look(namespace, name, owner);
    if (known.absent || known.ownerUid !== owner.uid) return;
    this.known.delete(`${namespace}/${name}`);
    try {
      await this.client.delete(SECRET_TYPE, name, namespace);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.remember(namespace, name, owner, undefined);
  }

  /** Drops what is known of the Secrets an owner (now deleted) asked about. */
  forgetOwner(namespace: string, ownerName: string): void {
    for (const [key, known] of this.known) if (key.startsWith(`${namespace}/`) && known.askedBy === ownerName) this.known.delete(key);
  }
}
