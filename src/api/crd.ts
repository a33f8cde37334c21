// Renders a KindDefinition into a CustomResourceDefinition. The output is checked in under crds/
// and a unit test fails when it drifts from src/api. Emitted as YAML 1.1, the dialect the API server's
// parser speaks, so that words such as `on` and `null` stay strings.
import { stringify } from 'yaml';
import { GROUP, VERSION, objectSchema, type KindDefinition } from './schema.ts';

/** TypeBox keeps bookkeeping under symbol keys; a JSON round trip leaves only the schema. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function renderCrd(def: KindDefinition): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'steward' } },
    spec: {
      group: GROUP,
      scope: def.scope,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['steward'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema: plain(objectSchema(def.spec, def.status, def.description, def.rootRules)) },
        },
      ],
    },
  };
}

export function renderCrdYaml(def: KindDefinition): string {
  return `# Generated from src/api by \`npm run gen:crds\`. Do not edit by hand.\n${stringify(renderCrd(def), { lineWidth: 0, version: '1.1' })}`;
}

export function crdFileName(def: KindDefinition): string {
  return `${GROUP}_${def.plural}.yaml`;
}
