// `steward lineage`: the column-level lineage of every MaskedView in the cluster, as one report
// (JSON by default, or a readable table with -o text). Read-only: it reads MaskedView statuses.
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import type { MaskedView } from '../api/maskedview.ts';
import { KubeClient } from '../runtime/kube.ts';
import { maskedViewKind } from '../api/maskedview.ts';
import { resourceType } from '../api/schema.ts';

const MASKED_VIEW_TYPE = resourceType(maskedViewKind);

export async function runLineage(argv: string[], out: Writable, err: Writable): Promise<number> {
  let format: string;
  try {
    format = parseArgs({ args: argv, options: { output: { type: 'string', short: 'o', default: 'json' } } }).values.output!;
  } catch (e) {
    err.write(`steward lineage: ${(e as Error).message}\n`);
    return 2;
  }
  let client: KubeClient;
  try {
    client = KubeClient.fromDefault({ userAgent: 'steward-lineage' });
  } catch (e) {
    err.write(`steward lineage: cannot reach the cluster: ${(e as Error).message}\n`);
    return 3;
  }
  try {
    const views = (await client.list<MaskedView>(MASKED_VIEW_TYPE)).items;
    const report = {
      generated_at: new Date().toISOString(),
      views: views.map((v) => ({
        namespace: v.metadata.namespace,
        name: v.metadata.name,
        warehouse: v.spec.warehouse,
        dataset: v.status?.lineage?.dataset ?? `${v.spec.view.schema}.${v.spec.view.name}`,
        owner: v.spec.owner,
        ready: v.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown',
        columns: v.status?.lineage?.columns ?? [],
      })),
    };
    if (format === 'text') {
      for (const v of report.views) {
        out.write(`${v.warehouse}/${v.dataset}  (MaskedView ${v.namespace}/${v.name}, owner ${v.owner}, ready ${v.ready})\n`);
        for (const c of v.columns) out.write(`  ${c.name.padEnd(20)} <- ${c.source}${c.masked ? `   [masked: ${c.mask}]` : ''}\n`);
      }
    } else {
      out.write(`${JSON.stringify(report, null, 2)}\n`);
    }
    return 0;
  } catch (e) {
    err.write(`steward lineage: ${(e as Error).message}\n`);
    return 3;
  } finally {
    client.close();
  }
}
