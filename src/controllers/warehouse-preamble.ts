// The preamble every controller that works in a Warehouse shares (see connectWarehouse).
import type { Warehouse } from '../api/warehouse.ts';
import type { Outcome } from '../runtime/controller.ts';
import { waitingFor } from './dependency.ts';
import { isTrue } from '../runtime/conditions.ts';
import { WarehouseSecretError, type WarehouseDrivers } from '../drivers/postgres/connector.ts';

/** What a controller that works in Warehouses needs: the cached Warehouses, and their drivers. */
export interface WarehouseDeps {
  warehouse: (name: string) => Warehouse | undefined;
  /** The drivers of a Warehouse (drivers/postgres/connector.ts; in memory in the reconciler tests). Throws WarehouseSecretError. */
  connections: { drivers(wh: Warehouse): Promise<WarehouseDrivers> };
}

/** A Warehouse a reconciler may work in, with its drivers. */
export interface ConnectedWarehouse {
  wh: Warehouse;
  drivers: WarehouseDrivers;
}

/**
 * The preamble every controller that works in a Warehouse shares, so that each says the same thing
 * for the same cause: the Warehouse does not exist (WarehouseNotFound), is not Ready, or its Secrets
 * do not give a connection (WarehouseNotReady, with why). All three wait (Progressing): they resolve
 * without a change to the object itself. `nothing` says what did not happen ("nothing granted").
 * Deletion asks for `mustBeReady: false`: taking grants away needs a connection, not a Ready Warehouse.
 */
export async function connectWarehouse(
  deps: WarehouseDeps,
  name: string,
  nothing: string,
  { mustBeReady = true } = {},
): Promise<ConnectedWarehouse | { outcome: Outcome }> {
  const found = waitingFor('Warehouse', `Warehouse ${name}`, deps.warehouse(name), nothing, mustBeReady);
  if ('outcome' in found) return found;
  const wh = found.dep;
  try {
    return { wh, drivers: await deps.connections.drivers(wh) };
  } catch (err) {
    if (err instanceof WarehouseSecretError) return { outcome: { state: 'Progressing', reason: 'WarehouseNotReady', message: `${err.message}; ${nothing}` } };
    throw err;
  }
}

/**
 * A controller's read ahead (ControllerOptions.readAhead): the objects grouped by Warehouse, and for
 * each Ready one, `prime` with their targets. Warehouses are read in parallel; one that fails does
 * not hold up the others, and the first failure is rethrown for the controller to log.
 */
export async function readAheadByWarehouse<T>(
  deps: WarehouseDeps,
  objects: readonly T[],
  warehouseOf: (o: T) => string | undefined,
  prime: (drivers: WarehouseDrivers, wh: Warehouse, objects: T[]) => Promise<void>,
): Promise<void> {
  const byWarehouse = new Map<string, T[]>();
  for (const o of objects) {
    const name = warehouseOf(o);
    if (name === undefined) continue;
    // Pushed, not copied: a copy per object is quadratic in a Warehouse's accesses.
    const list = byWarehouse.get(name);
    if (list) list.push(o);
    else byWarehouse.set(name, [o]);
  }
  const results = await Promise.allSettled(
    [...byWarehouse].map(async ([name, list]) => {
      const wh = deps.warehouse(name);
      if (!wh || !isTrue(wh.status?.conditions, 'Ready')) return;
      await prime(await deps.connections.drivers(wh), wh, list);
    }),
  );
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}
