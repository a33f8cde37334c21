import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { KINDS } from '../../src/api/index.ts';
import { crdFileName, renderCrdYaml } from '../../src/api/crd.ts';

describe('generated CRDs', () => {
  const dirs = ['crds', 'charts/steward/crds'];
  it.each(dirs.flatMap((dir) => KINDS.map((k) => [dir, k.kind, k] as const)))(
    '%s matches src/api for %s (run `make crds` after a schema change)',
    (dir, _kind, def) => {
      const onDisk = readFileSync(new URL(`../../${dir}/${crdFileName(def)}`, import.meta.url), 'utf8');
      expect(onDisk).toBe(renderCrdYaml(def));
    },
  );

  it.each(dirs)('%s has a CRD for every kind and no other manifest (so `kubectl apply -f` takes it as it is)', (dir) => {
    const files = readdirSync(new URL(`../../${dir}/`, import.meta.url))
      .filter((f) => /\.(ya?ml|json)$/.test(f))
      .sort();
    expect(files).toEqual(KINDS.map(crdFileName).sort());
  });

  it('every kind is in the steward category, has a status subresource, Ready and Age columns', () => {
    for (const def of KINDS) {
      const crd = parse(renderCrdYaml(def), { version: '1.1' });
      expect(crd.spec.names.categories).toEqual(['steward']);
      expect(crd.spec.versions[0].subresources).toEqual({ status: {} });
      const columns = crd.spec.versions[0].additionalPrinterColumns.map((c: { name: string }) => c.name);
      expect(columns).toContain('Ready');
      expect(columns).toContain('Age');
      const conditions = crd.spec.versions[0].schema.openAPIV3Schema.properties.status.properties.conditions;
      expect(conditions['x-kubernetes-list-type']).toBe('map');
      expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    }
  });
});
