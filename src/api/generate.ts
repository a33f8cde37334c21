// Writes crds/*.yaml from src/api. Run with `npm run gen:crds` after changing a schema.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS } from './index.ts';
import { renderCrdYaml, crdFileName } from './crd.ts';

// crds/ for kubectl and kustomize; the Helm chart's crds/ holds the same files (Helm installs them
// from there). A unit test fails when either drifts from src/api.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
for (const dir of ['crds', 'charts/steward/crds']) {
  mkdirSync(join(root, dir), { recursive: true });
  for (const def of KINDS) {
    writeFileSync(join(root, dir, crdFileName(def)), renderCrdYaml(def));
    console.log(`wrote ${dir}/${crdFileName(def)}`);
  }
}
