// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does: the holder
// renews spec.renewTime; a candidate takes the Lease once renewTime + leaseDurationSeconds has passed.
// Writes carry the resourceVersion read, so two candidates racing for one Lease cannot both win.
import type { Logger } from 'pino';
import { isConflict, isNotFound, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';
import { errorMessage, sleep } from './informer.ts';
import { microTime } from './events.ts';

export const LEASE_TYPE: ResourceType = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true };

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger: Logger;
  onLeadershipChange?: (leading: boolean) => void;
}

export class LeaderElector {
  private leading = false;
  private readonly abort = new AbortController();
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: { holder?: string; renewTime?: string; seenAt: number } = { seenAt: 0 };

  private readonly client: KubeClient;
  private readonly options: LeaderElectionOptions;

  constructor(client: KubeClient, options: LeaderElectionOptions) {
    this.client = client;
    this.options = options;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process holds the Lease (or when stopped before that: then false). */
  async acquire(): Promise<boolean> {
    while (!this.abort.signal.aborted) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.options.logger.info({ lease: `${this.options.namespace}/${this.options.name}`, identity: this.options.identity }, 'became leader');
        this.options.onLeadershipChange?.(true);
        return true;
      }
      await sleep(this.retryPeriodMs * (1 + Math.random() * 0.2), this.abort.signal);
    }
    return false;
  }

  /**
   * Keeps renewing until renewal fails for longer than renewDeadline, or stop(); then resolves.
   * Losing the Lease is final for this process: the caller should stop working and exit.
   */
  async holdUntilLost(): Promise<void> {
    let lastRenew = Date.now();
    while (!this.abort.signal.aborted) {
      await sleep(this.retryPeriodMs, this.abort.signal);
      if (this.abort.signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.options.logger.error('lost leadership: could not renew the lease within the renew deadline');
        this.options.onLeadershipChange?.(false);
        return;
      }
    }
  }

  /** Stops campaigning; if leading, hands the Lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.abort.abort();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(LEASE_TYPE, this.options.name, this.options.namespace);
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      await this.client.replace(LEASE_TYPE, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: microTime(Date.now()) },
      } as Lease);
      this.options.logger.info('released the lease');
    } catch (err) {
      this.options.logger.warn({ err: errorMessage(err) }, 'could not release the lease; a standby takes over when it expires');
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const desired = {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: microTime(now),
    };
    try {
      let lease: Lease;
      try {
        lease = await this.client.get<Lease>(LEASE_TYPE, this.options.name, this.options.namespace);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.client.create(LEASE_TYPE, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.options.name, namespace: this.options.namespace },
          spec: { ...desired, acquireTime: microTime(now), leaseTransitions: 0 },
        } as Lease);
        return true;
      }
      const spec = lease.spec ?? {};
      // Judge expiry by our own clock from when we first saw this renewTime (clock skew safe).
      if (spec.holderIdentity !== this.observed.holder || spec.renewTime !== this.observed.renewTime) {
        this.observed = { holder: spec.holderIdentity, renewTime: spec.renewTime, seenAt: now };
      }
      const heldByOther = spec.holderIdentity && spec.holderIdentity !== this.options.identity;
      const durationMs = (spec.leaseDurationSeconds ?? 15) * 1000;
      if (heldByOther && now < this.observed.seenAt + durationMs) return false;
      const takingOver = spec.holderIdentity !== this.options.identity;
      await this.client.replace(LEASE_TYPE, {
        ...lease,
        spec: {
          ...spec,
          ...desired,
          acquireTime: takingOver ? microTime(now) : spec.acquireTime,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
        },
      } as Lease);
      return true;
    } catch (err) {
      if (!isConflict(err)) this.options.logger.warn({ err: errorMessage(err) }, 'lease update failed');
      return false;
    }
  }
}
