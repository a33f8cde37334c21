// Every kind Steward serves, in one list: the CRD generator, the drift test and the docs read it.
import { warehouseKind } from './warehouse.ts';
import { datasetAccessKind } from './datasetaccess.ts';
import { objectStoreKind } from './objectstore.ts';
import { maskedViewKind } from './maskedview.ts';
import { secretRotationKind } from './secretrotation.ts';
import { accessReviewKind } from './accessreview.ts';
import type { KindDefinition } from './schema.ts';

export const KINDS: readonly KindDefinition[] = [warehouseKind, objectStoreKind, datasetAccessKind, maskedViewKind, secretRotationKind, accessReviewKind];

export { GROUP, VERSION, API_VERSION } from './schema.ts';
export { warehouseKind, objectStoreKind, datasetAccessKind, maskedViewKind, secretRotationKind, accessReviewKind };
