// What every PostgreSQL driver holds: the Warehouse's pool, and the Warehouse's name, which every
// audit record's resource starts with (`<warehouse>/<object>`).
import type pg from 'pg';

export abstract class WarehouseDriver {
  protected readonly pool: pg.Pool;
  protected readonly warehouse: string;

  constructor(pool: pg.Pool, warehouse: string) {
    this.pool = pool;
    this.warehouse = warehouse;
  }

  /** An audit record's resource: `object` in this Warehouse. */
  protected resource(object: string): string {
    return `${this.warehouse}/${object}`;
  }
}
