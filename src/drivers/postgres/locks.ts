// The one way Steward takes advisory locks: per transaction, in the global order of lockOrder()
// (everything but schemas first, schemas last, each sorted), so two transactions never deadlock.
// The locks live in PostgreSQL, so the order holds across Steward processes and across kinds.
import type pg from 'pg';
import { type LockKey, lockName, lockOrder } from '../../governance/grants.ts';

export class ObjectLocks {
  private readonly client: pg.ClientBase;
  private readonly held = new Set<string>();
  private schemaHeld = false;

  constructor(client: pg.ClientBase) {
    this.client = client;
  }

  /** Takes the keys not held yet, in order; throws LockOrderError for a key that would break it. */
  async take(keys: readonly LockKey[]): Promise<void> {
    for (const key of lockOrder(this.held, this.schemaHeld, keys)) {
      await this.client.query("SELECT pg_advisory_xact_lock(hashtextextended('steward:' || $1, 0))", [lockName(key)]);
      this.held.add(lockName(key));
      if (key.kind === 'schema') this.schemaHeld = true;
    }
  }
}
