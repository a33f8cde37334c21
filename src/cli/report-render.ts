// The evidence report as Markdown and as one self-contained HTML page (no script, no external
// resource: an auditor opens and prints it). Each embeds the signed JSON it was rendered from, so
// `steward report verify` checks the signature and then renders again and compares byte for byte:
// a change to the page's text is caught as surely as a change to the JSON.
import { serializeSigned, type EvidenceItem, type SignedReport } from '../governance/evidence.ts';

const MD_MARK = '<!-- steward-evidence-report ';
const HTML_OPEN = '<script type="application/json" id="steward-evidence-report" data-encoding="base64">';

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const escapeMd = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const verdictMark = { pass: 'PASS', fail: 'FAIL', 'not evaluated': 'NOT EVALUATED' } as const;

function byControl(items: readonly EvidenceItem[]): [string, EvidenceItem[]][] {
  const groups = new Map<string, EvidenceItem[]>();
  for (const i of items) groups.set(i.control, [...(groups.get(i.control) ?? []), i]);
  return [...groups];
}

export function renderMarkdown(signed: SignedReport): string {
  const r = signed.report;
  const lines = [
    '# Steward evidence report',
    '',
    `Generated ${r.generatedAt} for ${r.subjects.join(', ')}.`,
    '',
    `**Summary: ${r.summary.pass} pass, ${r.summary.fail} fail, ${r.summary.notEvaluated} not evaluated.**`,
    '',
    `Signed with Ed25519 key ${signed.signature.keyId}; check it with \`steward report verify FILE\`.`,
    '',
  ];
  for (const [control, items] of byControl(r.items)) {
    lines.push(
      `## ${control}`,
      '',
      '| Verdict | Subject | Result | Check | Source | At | Owner | Cadence | SHA-256 |',
      '|---|---|---|---|---|---|---|---|---|',
    );
    for (const i of items)
      lines.push(
        `| ${verdictMark[i.verdict]} | ${escapeMd(i.subject)} | ${escapeMd(i.result)} | \`${escapeMd(i.check)}\` | ${escapeMd(i.source)} | ${i.at} | ${escapeMd(i.owner ?? '(none)')} | ${escapeMd(i.cadence ?? '(none)')} | ${i.sha256!.slice(0, 12)} |`,
      );
    lines.push('');
  }
  lines.push('## Unowned controls', '');
  if (r.unowned.length === 0) lines.push('Every control names an owner and a review cadence.');
  for (const u of r.unowned) lines.push(`- ${u.control}: no ${u.missing.join(', no ')}`);
  lines.push('', `${MD_MARK}${Buffer.from(serializeSigned(signed)).toString('base64')} -->`, '');
  return lines.join('\n');
}

export function renderHtml(signed: SignedReport): string {
  const r = signed.report;
  const rows = (items: EvidenceItem[]) =>
    items
      .map(
        (i) =>
          `<tr class="${i.verdict.replace(' ', '-')}"><td class="verdict">${verdictMark[i.verdict]}</td><td>${escapeHtml(i.subject)}</td><td>${escapeHtml(i.result)}</td><td><code>${escapeHtml(i.check)}</code></td><td>${escapeHtml(i.source)}<br>${i.at}</td><td>${escapeHtml(i.owner ?? '(none)')}<br>${escapeHtml(i.cadence ?? '(none)')}</td><td><code>${i.sha256!.slice(0, 16)}</code></td></tr>`,
      )
      .join('\n');
  const sections = byControl(r.items)
    .map(
      ([control, items]) =>
        `<section><h2>${escapeHtml(control)}</h2>\n<table><thead><tr><th>Verdict</th><th>Subject</th><th>Result</th><th>Check</th><th>Source, time</th><th>Owner, cadence</th><th>SHA-256</th></tr></thead><tbody>\n${rows(items)}\n</tbody></table></section>`,
    )
    .join('\n');
  const unowned = r.unowned.length
    ? `<ul>${r.unowned.map((u) => `<li>${escapeHtml(u.control)}: no ${escapeHtml(u.missing.join(', no '))}</li>`).join('')}</ul>`
    : '<p>Every control names an owner and a review cadence.</p>';
  const embedded = Buffer.from(serializeSigned(signed)).toString('base64');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Steward evidence report ${r.generatedAt}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse;width:100%;margin-bottom:1.5em;font-size:.85em}
th,td{border:1px solid #bbb;padding:.3em .5em;vertical-align:top;text-align:left}code{font-size:.9em;word-break:break-all}
tr.pass .verdict{background:#d4f7d4}tr.fail .verdict{background:#f9d0d0}tr.not-evaluated .verdict{background:#eee}
#summary{font-size:1.2em;border:2px solid #111;padding:.6em;display:inline-block}@media print{section{break-inside:avoid}}
</style></head>
<body>
<h1>Steward evidence report</h1>
<p>Generated ${r.generatedAt} for ${escapeHtml(r.subjects.join(', '))}.</p>
<p id="summary">Summary: <strong>${r.summary.pass} pass</strong>, <strong>${r.summary.fail} fail</strong>, <strong>${r.summary.notEvaluated} not evaluated</strong></p>
<p>Signed with Ed25519 key <code>${signed.signature.keyId}</code>; check it with <code>steward report verify FILE</code>.</p>
${sections}
<section><h2>Unowned controls</h2>${unowned}</section>
${HTML_OPEN}${embedded}</script>
</body></html>
`;
}

/** The signed JSON a rendered report carries, and the renderer that made it; the JSON itself when given JSON. */
export function embeddedReport(text: string): { json: string; render?: (s: SignedReport) => string } | undefined {
  if (text.startsWith('{')) return { json: text };
  const h = text.indexOf(HTML_OPEN);
  if (text.startsWith('<!DOCTYPE html>') && h >= 0) {
    const end = text.indexOf('</script>', h);
    return end < 0 ? undefined : { json: Buffer.from(text.slice(h + HTML_OPEN.length, end), 'base64').toString('utf8'), render: renderHtml };
  }
  const m = text.lastIndexOf(MD_MARK);
  if (m >= 0) {
    const end = text.indexOf(' -->', m);
    return end < 0 ? undefined : { json: Buffer.from(text.slice(m + MD_MARK.length, end), 'base64').toString('utf8'), render: renderMarkdown };
  }
  return undefined;
}
