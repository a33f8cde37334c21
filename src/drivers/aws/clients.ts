// The AWS clients of an ObjectStore: S3 for its bucket, IAM for the principals' roles. Built once per
// ObjectStore and credentials (a new Secret version, endpoint or region means new clients); the SDK
// is imported at the first ObjectStore, so a cluster without one never loads it. Credentials come
// from the Secret the ObjectStore names, or from the SDK's default chain (IRSA, instance profile,
// environment). Every call is reported by service and operation (onCall: the metrics, which the
// tests read to prove an idle resync writes nothing).
import { createHash } from 'node:crypto';
import type { IAMClient } from '@aws-sdk/client-iam';
import type { S3Client } from '@aws-sdk/client-s3';
import type { ObjectStore } from '../../api/objectstore.ts';
import { partitionOf } from '../../governance/s3-policy.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { SecretNotFoundError, SecretReader, SecretUnreadableError } from '../../runtime/secrets.ts';

export class StoreCredentialsError extends Error {
  readonly reason: 'CredentialsSecretNotFound' | 'CredentialsSecretInvalid' | 'SecretUnreadable';
  constructor(reason: StoreCredentialsError['reason'], message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface StoreClients {
  iam: IAMClient;
  s3: S3Client;
  /** The message with the ObjectStore's secret values taken out. */
  scrub(message: string): string;
  /** Who Steward is with these credentials (STS GetCallerIdentity, asked once): its own role is never grantable. */
  identity(): Promise<string>;
  destroy(): void;
}

const IAM_REGION: Record<string, string> = { aws: 'us-east-1', 'aws-cn': 'cn-north-1', 'aws-us-gov': 'us-gov-west-1' };

export class ObjectStoreConnections {
  private readonly secrets: SecretReader;
  private readonly built = new Map<string, { fingerprint: string; clients: StoreClients }>();
  private readonly onCall: (service: 'iam' | 's3', operation: string) => void;

  /** `onCall` is told of every AWS call, by service and operation (the metrics' steward_aws_calls_total). */
  constructor(
    kube: KubeClient,
    secretVersion: (namespace: string, name: string) => string | undefined,
    onCall: (service: 'iam' | 's3', operation: string) => void = () => undefined,
  ) {
    this.secrets = new SecretReader(kube, secretVersion);
    this.onCall = onCall;
  }

  async clients(store: ObjectStore): Promise<StoreClients> {
    const { region, endpoint, credentialsSecretRef: ref } = store.spec.s3;
    let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
    if (ref) {
      let data: Record<string, string>;
      try {
        data = await this.secrets.read(ref.namespace, ref.name);
      } catch (err) {
        if (err instanceof SecretNotFoundError)
          throw new StoreCredentialsError('CredentialsSecretNotFound', `${err.message}: create it with the keys accessKeyId and secretAccessKey`);
        if (err instanceof SecretUnreadableError) throw new StoreCredentialsError('SecretUnreadable', err.message);
        throw err;
      }
      if (!data.accessKeyId || !data.secretAccessKey)
        throw new StoreCredentialsError('CredentialsSecretInvalid', `Secret ${ref.namespace}/${ref.name} must hold the keys accessKeyId and secretAccessKey`);
      credentials = { accessKeyId: data.accessKeyId, secretAccessKey: data.secretAccessKey, ...(data.sessionToken ? { sessionToken: data.sessionToken } : {}) };
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([region, endpoint ?? '', credentials ?? null]))
      .digest('hex');
    const known = this.built.get(store.metadata.name);
    if (known?.fingerprint === fingerprint) return known.clients;
    const [{ IAMClient }, { S3Client }, { STSClient, GetCallerIdentityCommand }] = await Promise.all([
      import('@aws-sdk/client-iam'),
      import('@aws-sdk/client-s3'),
      import('@aws-sdk/client-sts'),
    ]);
    const common = { ...(endpoint ? { endpoint } : {}), ...(credentials ? { credentials } : {}), maxAttempts: 3 };
    // IAM is global, signed for its partition's home region (an S3-compatible store serves both on its endpoint).
    const iam = new IAMClient({ ...common, region: IAM_REGION[partitionOf(region)] ?? 'us-east-1' });
    const s3 = new S3Client({ ...common, region, forcePathStyle: Boolean(endpoint) });
    const sts = new STSClient({ ...common, region });
    const counting = (service: 'iam' | 's3') => (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => (args: unknown) => {
      this.onCall(service, String(context.commandName ?? 'unknown').replace(/Command$/, ''));
      return next(args);
    };
    // The SDK's middleware types are a union of overloads per step; an initialize-step counter is all this is.
    type Add = (middleware: unknown, options: { step: 'initialize'; name: string }) => void;
    (iam.middlewareStack.add as unknown as Add).call(iam.middlewareStack, counting('iam'), { step: 'initialize', name: 'stewardCallCounter' });
    (s3.middlewareStack.add as unknown as Add).call(s3.middlewareStack, counting('s3'), { step: 'initialize', name: 'stewardCallCounter' });
    const secretValues = credentials ? [credentials.secretAccessKey, credentials.sessionToken, credentials.accessKeyId].filter((v): v is string => !!v) : [];
    let identity: Promise<string> | undefined;
    const clients: StoreClients = {
      iam,
      s3,
      scrub: (message) => secretValues.reduce((m, v) => m.split(v).join('[redacted]'), message),
      identity: () => {
        identity ??= sts.send(new GetCallerIdentityCommand({})).then((r) => r.Arn ?? '');
        // A failure is not remembered: the next reconcile asks again.
        identity.catch(() => (identity = undefined));
        return identity;
      },
      destroy: () => {
        iam.destroy();
        s3.destroy();
        sts.destroy();
      },
    };
    known?.clients.destroy();
    this.built.set(store.metadata.name, { fingerprint, clients });
    return clients;
  }

  forget(name: string): void {
    const known = this.built.get(name);
    known?.clients.destroy();
    this.built.delete(name);
  }
}
