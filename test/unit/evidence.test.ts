import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildReport, serializeSigned, signReport, verifyReport, type EvidenceItem } from '../../src/governance/evidence.ts';
import { embeddedReport, renderHtml, renderMarkdown } from '../../src/cli/report-render.ts';
import { literalCredentials } from '../../src/cli/report-gather.ts';
import type { KubeObject } from '../../src/runtime/kube.ts';

const key = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const item = (o: Partial<EvidenceItem>): EvidenceItem => ({
  id: 'tls-in-transit:analytics',
  control: 'TLS in transit',
  subject: 'Warehouse analytics',
  check: 'pg_stat_ssl',
  result: '3 connections, all TLS',
  verdict: 'pass',
  source: 'postgres:analytics',
  at: '2027-01-01T00:00:00.000Z',
  ...o,
});
const sample = () =>
  buildReport(
    [
      item({ owner: 'data-platform', cadence: 'AccessReview governance/q: cron "0 9 1 */3 *"' }),
      item({ id: 'masking:a/b', control: 'Masking', verdict: 'fail', result: 'raw values of email are visible' }),
      item({ id: 'lineage:a/b', control: 'Lineage', verdict: 'not evaluated', result: 'the view is not Ready' }),
    ],
    ['Warehouse analytics'],
    new Date('2027-01-01T00:00:00Z'),
  );

describe('evidence report', () => {
  it('counts verdicts, hashes each item, and lists the controls without an owner or a cadence', () => {
    const r = sample();
    expect(r.summary).toEqual({ pass: 1, fail: 1, notEvaluated: 1 });
    expect(r.items.every((i) => /^[0-9a-f]{64}$/.test(i.sha256!))).toBe(true);
    expect(r.unowned).toEqual([
      { control: 'Lineage', missing: ['owner', 'review cadence'] },
      { control: 'Masking', missing: ['owner', 'review cadence'] },
    ]);
  });

  it('verify accepts what was signed and rejects any one byte changed, anywhere in the file', () => {
    const pem = key();
    const text = serializeSigned(signReport(sample(), pem));
    expect(verifyReport(text)).toMatchObject({ ok: true });
    // Every byte position, changed: a value, a key, a space, the signature, the newline at the end.
    let accepted = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      const changed = text.slice(0, i) + String.fromCharCode(c === 0x41 ? 0x42 : 0x41) + text.slice(i + 1);
      if (verifyReport(changed).ok) accepted++;
    }
    expect(accepted).toBe(0);
    // A verdict turned to pass, with the item's hash recomputed: the signature still says no.
    const forged = JSON.parse(text);
    forged.report.items[1].verdict = 'pass';
    expect(verifyReport(serializeSigned(forged))).toMatchObject({ ok: false });
  });

  it('a pinned public key: another key, however valid its signature, is refused', () => {
    const mine = key();
    const theirs = key();
    const text = serializeSigned(signReport(sample(), theirs));
    expect(verifyReport(text)).toMatchObject({ ok: true }); // proves the report unchanged, not who signed
    const pinned = createPublicKey(mine).export({ type: 'spki', format: 'pem' }).toString();
    expect(verifyReport(text, pinned)).toMatchObject({ ok: false, why: expect.stringContaining('not the trusted key') });
  });

  it('Markdown and HTML carry the signed report; verify renders again and compares every byte', () => {
    const signed = signReport(sample(), key());
    for (const render of [renderMarkdown, renderHtml]) {
      const page = render(signed);
      const found = embeddedReport(page)!;
      expect(verifyReport(found.json)).toMatchObject({ ok: true });
      expect(found.render!(signed)).toBe(page);
      const edited = page.replace('1 fail', '0 fail');
      expect(edited).not.toBe(page);
      expect(embeddedReport(edited)!.render!(signed)).not.toBe(edited);
    }
    expect(renderHtml(signed)).toContain('<p id="summary">Summary: <strong>1 pass</strong>, <strong>1 fail</strong>, <strong>1 not evaluated</strong></p>');
  });
});

describe('literal credentials in manifests', () => {
  const deployment = (env: { name: string; value?: string }[]): KubeObject =>
    ({
      kind: 'Deployment',
      metadata: { name: 'etl', namespace: 'analytics' },
      spec: { template: { spec: { containers: [{ name: 'app', env }] } } },
    }) as unknown as KubeObject;
  it('finds a managed credential, a literal password, what secretlint recognizes; references and plain values pass; values are never shown', async () => {
    // Made at run time, as a real one would be: nothing credential-shaped sits in the source.
    const managed = randomBytes(12).toString('base64url');
    const literal = randomBytes(9).toString('base64url');
    const dbUrl = `postgresql://etl:${randomBytes(9).toString('hex')}@db:5432/analytics`;
    const token = `ghp_${randomBytes(18).toString('hex').slice(0, 36)}`;
    const found = await literalCredentials(
      [
        deployment([
          { name: 'DB_PASS', value: managed },
          { name: 'PGPASSWORD', value: literal },
          { name: 'DATABASE_URL', value: dbUrl },
          { name: 'LOG_LEVEL', value: 'info' },
          { name: 'PASSWORD_FROM_SECRET' },
        ]),
        { kind: 'ConfigMap', metadata: { name: 'cfg', namespace: 'analytics' }, data: { 'app.ini': `password=${managed}` } } as unknown as KubeObject,
        {
          kind: 'ConfigMap',
          metadata: { name: 'ci', namespace: 'analytics' },
          data: { notes: 'nothing to see', gh: token, region: 'us-east-1' },
        } as unknown as KubeObject,
      ],
      [managed],
    );
    expect(found).toEqual([
      'Deployment analytics/etl container app env DB_PASS: a Steward-managed credential',
      'Deployment analytics/etl container app env PGPASSWORD: a literal value for a credential',
      'ConfigMap analytics/cfg data.app.ini: a Steward-managed credential',
      // The pattern side is secretlint's recommended preset, not a home-made list.
      'Deployment analytics/etl container app env DATABASE_URL: PostgreSQLConnection (secretlint)',
      'ConfigMap analytics/ci data.gh: GITHUB_TOKEN (secretlint)',
    ]);
    expect(found.join(' ')).not.toContain(managed);
    for (const secret of [literal, dbUrl, token]) expect(found.join(' ')).not.toContain(secret);
  });
});
