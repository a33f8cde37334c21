// ObjectStore reconciler: reach the bucket with its credentials, and report what protects it, each
// as a condition that says what it saw: EncryptionAtRest (GetBucketEncryption), TLSOnly (a bucket
// policy that denies requests without TLS), PublicAccessBlocked. Ready says the bucket answers; a
// protection missing is reported False, never passed silently. Read-only: Steward never changes a
// bucket. The SDK is imported at the first ObjectStore.
import { objectStoreKind, type ObjectStore } from '../api/objectstore.ts';
import { resourceType } from '../api/schema.ts';
import type { ConditionInput } from '../runtime/conditions.ts';
import type { Outcome, ReconcileContext } from '../runtime/controller.ts';
import { parseDuration } from '../runtime/duration.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import { StoreCredentialsError, type StoreClients } from '../drivers/aws/clients.ts';

export const OBJECT_STORE_TYPE: ResourceType = resourceType(objectStoreKind);

export interface ObjectStoreDeps {
  stores: { clients(store: ObjectStore): Promise<StoreClients> };
}

/** The clients of an ObjectStore, or the Outcome that says why there are none (shared with DatasetAccess). */
export async function storeClients(deps: ObjectStoreDeps, store: ObjectStore, nothing: string): Promise<StoreClients | { outcome: Outcome }> {
  try {
    return await deps.stores.clients(store);
  } catch (err) {
    if (err instanceof StoreCredentialsError)
      return { outcome: { state: err.reason === 'SecretUnreadable' ? 'Progressing' : 'Stalled', reason: err.reason, message: `${err.message}; ${nothing}` } };
    throw err;
  }
}

export function objectStoreReconciler(deps: ObjectStoreDeps) {
  return async function reconcileObjectStore(store: ObjectStore, _ctx: ReconcileContext): Promise<Outcome> {
    const { bucket } = store.spec.s3;
    const resync = store.spec.resyncPeriod ? parseDuration(store.spec.resyncPeriod) : undefined;
    const clients = await storeClients(deps, store, 'the bucket is not checked and nothing is granted on it');
    if ('outcome' in clients) return clients.outcome;
    const { observeBucket, BucketNotFound } = await import('../drivers/aws/bucket.ts');
    let facts: Awaited<ReturnType<typeof observeBucket>>;
    try {
      facts = await observeBucket(clients.s3, bucket);
    } catch (err) {
      if (err instanceof BucketNotFound)
        return {
          state: 'Stalled',
          reason: 'BucketNotFound',
          message: `bucket ${bucket} does not exist (or Steward's credentials cannot see it); nothing is granted on it`,
        };
      const message = clients.scrub(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
      return { state: 'Progressing', reason: 'BucketUnreachable', message: `cannot check bucket ${bucket}: ${message}; retrying`, requeueAfterMs: resync };
    }
    const enc = facts.encryption;
    const conditions: ConditionInput[] = [
      enc
        ? {
            type: 'EncryptionAtRest',
            status: 'True',
            reason: enc.algorithm === 'AES256' ? 'SSES3' : 'SSEKMS',
            message: `default encryption ${enc.algorithm}${enc.kmsKeyId ? ` with KMS key ${enc.kmsKeyId}` : ''}${enc.bucketKeyEnabled ? ', bucket key enabled' : ''}`,
          }
        : {
            type: 'EncryptionAtRest',
            status: 'False',
            reason: 'NoDefaultEncryption',
            message: 'the bucket has no default encryption (GetBucketEncryption found none): set one (SSE-S3 or SSE-KMS)',
          },
      {
        type: 'TLSOnly',
        status: facts.tlsOnly.ok ? 'True' : 'False',
        reason: facts.tlsOnly.ok ? 'DeniesInsecureTransport' : 'InsecureTransportAllowed',
        message: facts.tlsOnly.found,
      },
      {
        type: 'PublicAccessBlocked',
        status: facts.publicAccessBlock.ok ? 'True' : 'False',
        reason: facts.publicAccessBlock.ok ? 'Blocked' : 'NotBlocked',
        message: facts.publicAccessBlock.found,
      },
    ];
    const missing = conditions.filter((c) => c.status === 'False').map((c) => c.type);
    return {
      state: 'Ready',
      reason: 'Connected',
      message: `bucket ${bucket} answers${missing.length ? `; not protected: ${missing.join(', ')} (see those conditions)` : '; encrypted at rest, TLS only, public access blocked'}`,
      status: { encryption: enc ?? { algorithm: 'None' }, tlsOnly: facts.tlsOnly.ok },
      conditions,
      requeueAfterMs: resync,
    };
  };
}

/** The ObjectStores a DatasetAccess's s3.bucket names: those whose spec.s3.bucket it is (more than one is a conflict). */
export function storesOfBucket(stores: () => ObjectStore[]) {
  return (bucket: string): ObjectStore[] => stores().filter((s) => s.spec.s3.bucket === bucket);
}

export function accessesOfStore(accesses: () => { metadata: KubeObject['metadata']; spec: { s3?: { bucket: string } } }[]) {
  return (store: KubeObject): string[] =>
    accesses()
      .filter((a) => a.spec.s3?.bucket === (store as ObjectStore).spec.s3.bucket)
      .map((a) => `${a.metadata.namespace}/${a.metadata.name}`);
}

/** ObjectStores whose credentials are in this Secret: checked again (with the new credentials) when it changes. */
export function storesUsingSecret(stores: () => ObjectStore[]) {
  return (secret: KubeObject): string[] => {
    const { namespace, name } = secret.metadata;
    return stores()
      .filter((s) => s.spec.s3.credentialsSecretRef?.namespace === namespace && s.spec.s3.credentialsSecretRef?.name === name)
      .map((s) => s.metadata.name);
  };
}
