// The evidence report as data: each control's live check and verdict, a SHA-256 per item, and an
// Ed25519 signature over the whole. Pure: gathering the facts is the CLI's (src/cli/report.ts),
// rendering them is report-render.ts. The serialized form is canonical (sorted keys, two-space
// indent), so `verify` can demand the file be byte for byte what Steward wrote: change one byte
// anywhere (a value, a space) and it fails.
import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';

export const REPORT_SCHEMA = 'steward.dev/evidence-report/v1';

/** Missing or stale proof is "not evaluated", never "pass". */
export type Verdict = 'pass' | 'fail' | 'not evaluated';

export interface EvidenceItem {
  /** Stable per control and subject, e.g. `raw-tables-locked:raw.customers`. */
  id: string;
  /** The control, in the guide's words. */
  control: string;
  /** What the item is about: a table, a view, a Secret, a bucket. */
  subject: string;
  /** The query or API call that gathered the proof, shown as run. */
  check: string;
  /** What the check saw, in a sentence. */
  result: string;
  verdict: Verdict;
  /** Where the proof came from: `postgres:<warehouse>`, `kubernetes`, `s3:<bucket>`, `iam`. */
  source: string;
  /** When the proof was gathered (ISO 8601). */
  at: string;
  /** Who owns the control (the steward.dev/owner annotation), when the cluster says. */
  owner?: string;
  /** How often the control is reviewed (an AccessReview's or SecretRotation's schedule), when the cluster says. */
  cadence?: string;
  /** sha256 of the item's canonical JSON without this field. */
  sha256?: string;
}

export interface EvidenceReport {
  schema: typeof REPORT_SCHEMA;
  generatedAt: string;
  /** What the report covers: Warehouses and ObjectStores by name. */
  subjects: string[];
  summary: { pass: number; fail: number; notEvaluated: number };
  items: EvidenceItem[];
  /** Controls whose owner or review cadence the cluster does not say: the guide's "unowned controls". */
  unowned: { control: string; missing: string[] }[];
}

export interface SignedReport {
  report: EvidenceReport;
  signature: { algorithm: 'Ed25519'; publicKey: string; keyId: string; value: string };
}

/** JSON with keys sorted at every depth and a two-space indent: the one form Steward writes. */
export function canonicalJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.keys(v as Record<string, unknown>)
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return `${JSON.stringify(sorted(value), null, 2)}\n`;
}

export function itemHash(item: EvidenceItem): string {
  const { sha256: _, ...rest } = item;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** The controls that name no owner or no cadence, once each. */
function unownedControls(items: readonly EvidenceItem[]): EvidenceReport['unowned'] {
  const byControl = new Map<string, Set<string>>();
  for (const i of items) {
    const missing = byControl.get(i.control) ?? new Set<string>();
    if (!i.owner) missing.add('owner');
    if (!i.cadence) missing.add('review cadence');
    byControl.set(i.control, missing);
  }
  return [...byControl]
    .filter(([, m]) => m.size > 0)
    .map(([control, m]) => ({ control, missing: [...m].sort() }))
    .sort((a, b) => a.control.localeCompare(b.control));
}

/** The report from its items: hashes, summary and the unowned controls filled in, items in a stable order. */
export function buildReport(items: readonly EvidenceItem[], subjects: readonly string[], generatedAt: Date): EvidenceReport {
  const hashed = [...items].sort((a, b) => a.id.localeCompare(b.id)).map((i) => ({ ...i, sha256: itemHash(i) }));
  return {
    schema: REPORT_SCHEMA,
    generatedAt: generatedAt.toISOString(),
    subjects: [...subjects].sort(),
    summary: {
      pass: hashed.filter((i) => i.verdict === 'pass').length,
      fail: hashed.filter((i) => i.verdict === 'fail').length,
      notEvaluated: hashed.filter((i) => i.verdict === 'not evaluated').length,
    },
    items: hashed,
    unowned: unownedControls(hashed),
  };
}

const keyId = (publicKeyPem: string) => createHash('sha256').update(publicKeyPem).digest('hex').slice(0, 16);

/** Signs the report's canonical bytes with an Ed25519 private key (PKCS#8 PEM). */
export function signReport(report: EvidenceReport, privateKeyPem: string): SignedReport {
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is ${privateKey.asymmetricKeyType}, not Ed25519`);
  const publicKey = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const value = edSign(null, Buffer.from(canonicalJson(report)), privateKey).toString('base64');
  return { report, signature: { algorithm: 'Ed25519', publicKey, keyId: keyId(publicKey), value } };
}

export const serializeSigned = (signed: SignedReport): string => canonicalJson(signed);

export type Verification = { ok: true; signed: SignedReport; keyId: string } | { ok: false; why: string };

/**
 * Checks a signed report's JSON: exactly the bytes Steward writes, every item's hash, and the
 * signature, with the embedded key or, when given, the key the auditor trusts (an embedded key alone
 * proves the report unchanged since signing, not who signed it).
 */
export function verifyReport(text: string, trustedPublicKeyPem?: string): Verification {
  let signed: SignedReport;
  try {
    signed = JSON.parse(text) as SignedReport;
  } catch (e) {
    return { ok: false, why: `not JSON: ${(e as Error).message}` };
  }
  if (signed?.report?.schema !== REPORT_SCHEMA || signed.signature?.algorithm !== 'Ed25519')
    return { ok: false, why: `not a ${REPORT_SCHEMA} signed with Ed25519` };
  if (serializeSigned(signed) !== text) return { ok: false, why: 'the file is not byte for byte what Steward wrote (it was edited or reformatted)' };
  if (!Array.isArray(signed.report.items) || typeof signed.signature.value !== 'string')
    return { ok: false, why: 'the report is not in the shape Steward writes' };
  for (const item of signed.report.items)
    if (!item || typeof item !== 'object' || item.sha256 !== itemHash(item))
      return { ok: false, why: `item ${item.id}: its sha256 does not match its content` };
  let key: KeyObject;
  try {
    key = createPublicKey(trustedPublicKeyPem ?? signed.signature.publicKey);
  } catch (e) {
    return { ok: false, why: `the public key is unreadable: ${(e as Error).message}` };
  }
  // The envelope is checked too: the key as Steward exports it, its id, the signature in canonical base64.
  const embedded = (() => {
    try {
      return createPublicKey(signed.signature.publicKey).export({ type: 'spki', format: 'pem' }).toString();
    } catch {
      return undefined;
    }
  })();
  if (embedded !== signed.signature.publicKey || keyId(embedded) !== signed.signature.keyId)
    return { ok: false, why: 'the signature block was changed (its key or key id)' };
  if (Buffer.from(signed.signature.value, 'base64').toString('base64') !== signed.signature.value)
    return { ok: false, why: 'the signature is not canonical base64' };
  if (trustedPublicKeyPem && keyId(key.export({ type: 'spki', format: 'pem' }).toString()) !== signed.signature.keyId)
    return { ok: false, why: `signed with key ${signed.signature.keyId}, not the trusted key` };
  let good: boolean;
  try {
    good = edVerify(null, Buffer.from(canonicalJson(signed.report)), key, Buffer.from(signed.signature.value, 'base64'));
  } catch (e) {
    return { ok: false, why: `the signature cannot be checked: ${(e as Error).message}` };
  }
  return good ? { ok: true, signed, keyId: signed.signature.keyId } : { ok: false, why: 'the signature does not match the report' };
}
