// The preamble every controller that works in a Warehouse shares (see connectWarehouse).
import type pg from 'pg';
import type { Warehouse } from '../api/warehouse.ts';
import type { Outcome } from '../runtime/controller.ts';
import { findCondition, isTrue } from '../runtime/conditions.ts';
import type { ConnectionSettings } from '../drivers/postgres/connection.ts';
import { WarehouseSecretError, type WarehouseConnections } from '../drivers/postgres/connector.ts';

/** A Warehouse a reconciler may work in: Ready, with a pool built from its Secrets. */
export interface ConnectedWarehouse {
  wh: Warehouse;
  pool: pg.Pool;
  settings: ConnectionSettings;
}

/**
 * The preamble every controller that works in a Warehouse shares, so that each says the same thing
 * for the same cause: the Warehouse does not exist (WarehouseNotFound), is not Ready, or its Secrets
 * do not give a connection (WarehouseNotReady, with why). All three wait (Progressing): they resolve
 * without a change to the object itself. `nothing` says what did not happen ("nothing granted").
 */
export async function connectWarehouse(
  deps: { warehouse: (name: string) => Warehouse | undefined; connections: WarehouseConnections },
  name: string,
  nothing: string,
): Promise<ConnectedWarehouse | { outcome: Outcome }> {
  const wh = deps.warehouse(name);
  if (!wh) return { outcome: { state: 'Progressing', reason: 'WarehouseNotFound', message: `Warehouse ${name} does not exist; ${nothing}` } };
  if (!isTrue(wh.status?.conditions, 'Ready')) {
    const why = findCondition(wh.status?.conditions, 'Ready');
    return {
      outcome: {
        state: 'Progressing',
        reason: 'WarehouseNotReady',
        message: `waiting for Warehouse ${name}${why ? `: ${why.reason}: ${why.message}` : ''}; ${nothing}`,
      },
    };
  }
  try {
    return { wh, ...(await deps.connections.pool(wh)) };
  } catch (err) {
    if (err instanceof WarehouseSecretError) return { outcome: { state: 'Progressing', reason: 'WarehouseNotReady', message: `${err.message}; ${nothing}` } };
    throw err;
  }
}
