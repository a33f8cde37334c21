// Writes crds/*.yaml from src/api. Run with `npm run gen:crds` after changing a schema.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS } from './index.ts';
import { renderCrdYaml, crdFileName } from './crd.ts';

const crdsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds');
mkdirSync(crdsDir, { recursive: true });
for (const def of KINDS) {
  writeFileSync(join(crdsDir, crdFileName(def)), renderCrdYaml(def));
  console.log(`wrote crds/${crdFileName(def)}`);
}
