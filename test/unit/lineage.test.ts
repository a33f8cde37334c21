import { describe, expect, it } from 'vitest';
import { lineageDiffers } from '../../src/controllers/maskedview.ts';

describe('lineageDiffers (whether a MaskedView resync sends lineage again)', () => {
  const planned = {
    dataset: 'curated.sales',
    columns: [
      { name: 'email', source: 'raw.customers.email', inputs: ['raw.customers.email'], masked: true, mask: 'email' },
      { name: 'id', source: 'raw.orders.id', inputs: ['raw.orders.id'], masked: false, mask: undefined },
    ],
  };

  it('the same lineage as the API server hands it back (keys sorted, no undefined) is not a change', () => {
    const fromApi = JSON.parse(
      '{"columns":[{"inputs":["raw.customers.email"],"mask":"email","masked":true,"name":"email","source":"raw.customers.email"},' +
        '{"inputs":["raw.orders.id"],"masked":false,"name":"id","source":"raw.orders.id"}],"dataset":"curated.sales"}',
    );
    expect(lineageDiffers(fromApi, planned as never)).toBe(false);
  });

  it('a column masked differently, or no lineage in status yet, is a change', () => {
    const changed = JSON.parse(JSON.stringify(planned));
    changed.columns[1].masked = true;
    expect(lineageDiffers(changed, planned as never)).toBe(true);
    expect(lineageDiffers(undefined, planned as never)).toBe(true);
  });
});
