// The Secrets Manager target of a SecretRotation. One version per rotation, its VersionId the
// rotation id (the ClientRequestToken), so a retried step never makes a second one. Stages are moved
// explicitly: the new version is put as AWSPENDING, and once its password has logged in AWSCURRENT
// moves to it (AWSPREVIOUS to the version before) and AWSPENDING leaves it. A secret's very first
// version is made AWSCURRENT by Secrets Manager itself, so for a new secret nothing is put until the
// password has logged in. Only secrets tagged as this SecretRotation's are written; credentials come
// from the SDK's default chain (IRSA, instance profile, environment), the endpoint from
// AWS_ENDPOINT_URL where one is set (S3-compatible and test servers). The SDK is imported at first use.
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/** The tag that marks a secret as a SecretRotation's: its value is <namespace>/<name>. */
export const OWNER_TAG = 'steward.dev/owner';

export class AwsSecretNotOwned extends Error {}

/** The JSON shape of AWS's own PostgreSQL rotation functions. */
export interface PostgresSecretValue {
  engine: 'postgres';
  host: string;
  port: number;
  username: string;
  password: string;
  dbname: string;
}

interface Described {
  owner: string | undefined;
  /** VersionId -> its stages. */
  versions: Record<string, string[]>;
}

export class SecretsManagerTarget {
  private readonly clients = new Map<string, Promise<{ client: SecretsManagerClient; sdk: typeof import('@aws-sdk/client-secrets-manager') }>>();
  private readonly onCall: (operation: string) => void;

  constructor(onCall: (operation: string) => void = () => undefined) {
    this.onCall = onCall;
  }

  private async sdk(region: string) {
    let c = this.clients.get(region);
    if (!c) {
      c = import('@aws-sdk/client-secrets-manager').then((sdk) => ({ sdk, client: new sdk.SecretsManagerClient({ region, maxAttempts: 3 }) }));
      this.clients.set(region, c);
    }
    return c;
  }

  private async send<T>(region: string, make: (sdk: typeof import('@aws-sdk/client-secrets-manager')) => { constructor: { name: string } }): Promise<T> {
    const { client, sdk } = await this.sdk(region);
    const command = make(sdk);
    this.onCall(command.constructor.name.replace(/Command$/, ''));
    return (client.send as (c: unknown) => Promise<T>)(command);
  }

  private async describe(region: string, secretId: string): Promise<Described | undefined> {
    try {
      const d = await this.send<{ Tags?: { Key?: string; Value?: string }[]; VersionIdsToStages?: Record<string, string[]> }>(
        region,
        (sdk) => new sdk.DescribeSecretCommand({ SecretId: secretId }),
      );
      return { owner: d.Tags?.find((t) => t.Key === OWNER_TAG)?.Value, versions: d.VersionIdsToStages ?? {} };
    } catch (err) {
      if ((err as { name?: string }).name === 'ResourceNotFoundException') return undefined;
      throw err;
    }
  }

  /** Throws AwsSecretNotOwned when the secret exists and is not `owner`'s (<namespace>/<name>). A secret that does not exist is fine. */
  async checkOwned(region: string, secretId: string, owner: string): Promise<void> {
    const d = await this.describe(region, secretId);
    if (d && d.owner !== owner)
      throw new AwsSecretNotOwned(
        `AWS secret ${secretId} exists and is not tagged ${OWNER_TAG}=${owner}: Steward never overwrites a secret that is not its own. To adopt it, tag it so (aws secretsmanager tag-resource --secret-id ${secretId} --tags Key=${OWNER_TAG},Value=${owner}), or name another secretId`,
      );
  }

  /** Step 1: the secret (made, tagged, without a value, if it does not exist) and the rotation's version as AWSPENDING. */
  async stagePending(region: string, secretId: string, owner: string, rotationId: string, value: PostgresSecretValue): Promise<void> {
    let d = await this.describe(region, secretId);
    if (!d) {
      await this.send(
        region,
        (sdk) =>
          new sdk.CreateSecretCommand({ Name: secretId, Tags: [{ Key: OWNER_TAG, Value: owner }], Description: `managed by steward: SecretRotation ${owner}` }),
      );
      d = { owner, versions: {} };
    }
    if (d.owner !== owner) throw new AwsSecretNotOwned(`AWS secret ${secretId} is not tagged ${OWNER_TAG}=${owner}`);
    const hasCurrent = Object.values(d.versions).some((s) => s.includes('AWSCURRENT'));
    // A first version would be AWSCURRENT at once: it waits for the test (promote puts it).
    if (d.versions[rotationId] || !hasCurrent) return;
    await this.send(
      region,
      (sdk) =>
        new sdk.PutSecretValueCommand({
          SecretId: secretId,
          ClientRequestToken: rotationId,
          SecretString: JSON.stringify(value),
          VersionStages: ['AWSPENDING'],
        }),
    );
  }

  /** Step 4: AWSCURRENT to the rotation's version (AWSPREVIOUS follows to the one before), AWSPENDING off it. Idempotent. */
  async promote(region: string, secretId: string, rotationId: string, value: PostgresSecretValue): Promise<void> {
    const d = await this.describe(region, secretId);
    if (!d) throw new Error(`AWS secret ${secretId} disappeared during the rotation`);
    const stages = d.versions[rotationId];
    if (!stages) {
      // A new secret's first version: AWSCURRENT by itself.
      await this.send(
        region,
        (sdk) => new sdk.PutSecretValueCommand({ SecretId: secretId, ClientRequestToken: rotationId, SecretString: JSON.stringify(value) }),
      );
      return;
    }
    if (!stages.includes('AWSCURRENT')) {
      const current = Object.entries(d.versions).find(([, s]) => s.includes('AWSCURRENT'))?.[0];
      await this.send(
        region,
        (sdk) =>
          new sdk.UpdateSecretVersionStageCommand({
            SecretId: secretId,
            VersionStage: 'AWSCURRENT',
            MoveToVersionId: rotationId,
            ...(current ? { RemoveFromVersionId: current } : {}),
          }),
      );
    }
    if (stages.includes('AWSPENDING'))
      await this.send(
        region,
        (sdk) => new sdk.UpdateSecretVersionStageCommand({ SecretId: secretId, VersionStage: 'AWSPENDING', RemoveFromVersionId: rotationId }),
      );
  }

  /** The AWSCURRENT value, named by its stage (a read without one can be stale on some servers), or undefined when there is none. */
  async current(region: string, secretId: string): Promise<PostgresSecretValue | undefined> {
    try {
      const r = await this.send<{ SecretString?: string }>(region, (sdk) => new sdk.GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }));
      return r.SecretString ? (JSON.parse(r.SecretString) as PostgresSecretValue) : undefined;
    } catch (err) {
      if ((err as { name?: string }).name === 'ResourceNotFoundException') return undefined;
      throw err;
    }
  }
}
