// SecretRotation's pure decisions: names, schedule, the login a rotation changes, the policy; and the
// password and verifier made on the client (the stack proves PostgreSQL accepts the verifier: a login
// with the password succeeds in test/integration/secretrotation.test.ts).
import { describe, expect, it } from 'vitest';
import { alternateLoginName, loginToRotate, nextRotationAt, rotationPolicyDenial } from '../../src/governance/rotation.ts';
import { refusedRole } from '../../src/governance/reserved.ts';
import { generatePassword, scramVerifier } from '../../src/drivers/postgres/scram.ts';
import type { AccessRule } from '../../src/api/warehouse.ts';

const ns = { name: 'pipelines', labels: {} };
const rule = (principals?: string[]): AccessRule => ({
  namespaces: { matchNames: ['pipelines'] },
  schemas: ['app'],
  privileges: ['SELECT'],
  ...(principals ? { principals } : {}),
});

describe('alternate login', () => {
  it("is one of Steward's roles, at most 63 bytes, and distinct for roles that share a long prefix", () => {
    const long = 'x'.repeat(63);
    expect(alternateLoginName('etl_service')).toMatch(/^stw_alt_etl_service_[0-9a-f]{8}$/);
    expect(Buffer.byteLength(alternateLoginName(long))).toBeLessThanOrEqual(63);
    expect(alternateLoginName(`${long.slice(0, 62)}a`)).not.toBe(alternateLoginName(`${long.slice(0, 62)}b`));
    // A tenant naming it as the role of a rotation or a principal is refused: it is Steward's.
    expect(
      refusedRole({ name: alternateLoginName('etl'), oid: 20000, superuser: false, bypassRls: false, createRole: false, comment: null, isSteward: false }),
    ).toMatch(/Steward's own/);
  });

  it('alternates, starting with the alternate login so the role keeps its password through the grace period', () => {
    const alt = alternateLoginName('etl');
    expect(loginToRotate('alternating', 'etl', undefined)).toBe(alt);
    expect(loginToRotate('alternating', 'etl', alt)).toBe('etl');
    expect(loginToRotate('alternating', 'etl', 'etl')).toBe(alt);
    expect(loginToRotate('single', 'etl', 'etl')).toBe('etl');
    expect(loginToRotate('single', 'etl', undefined)).toBe('etl');
  });
});

describe('schedule', () => {
  const created = new Date('2027-01-01T00:00:00Z');
  it('every: at creation first, then the interval after the last rotation', () => {
    expect(nextRotationAt({ every: '720h' }, undefined, created)).toEqual(created);
    expect(nextRotationAt({ every: '720h' }, new Date('2027-01-02T10:00:00Z'), created)).toEqual(new Date('2027-02-01T10:00:00Z'));
  });
  it('cron: the next match after the last rotation, in UTC', () => {
    // 2027-01-02 is a Saturday; "0 3 * * 0" is Sundays at 03:00 UTC.
    expect(nextRotationAt({ cron: '0 3 * * 0' }, new Date('2027-01-02T10:00:00Z'), created)).toEqual(new Date('2027-01-03T03:00:00Z'));
    expect(nextRotationAt({ cron: '0 3 * * 0' }, new Date('2027-01-03T03:00:00Z'), created)).toEqual(new Date('2027-01-10T03:00:00Z'));
  });
});

describe('rotation policy', () => {
  it('default deny, and a rule must name the role: a rule open to any principal does not hand out every login', () => {
    expect(rotationPolicyDenial(undefined, ns, 'etl')).toMatch(/default deny/);
    expect(rotationPolicyDenial([rule()], ns, 'etl')).toMatch(/names role etl/);
    expect(rotationPolicyDenial([rule(['analytics_*'])], ns, 'etl')).toMatch(/names role etl/);
    expect(rotationPolicyDenial([rule(['etl*'])], ns, 'etl_service')).toBeUndefined();
    expect(rotationPolicyDenial([rule(['etl'])], { name: 'other', labels: {} }, 'etl')).toMatch(/namespace other/);
  });
});

describe('passwords and verifiers', () => {
  it('passwords are the asked length over letters and digits, and differ', () => {
    const a = generatePassword(32);
    expect(a).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(generatePassword(32)).not.toBe(a);
    expect(new Set(Array.from({ length: 200 }, () => generatePassword(16))).size).toBe(200);
  });
  it('the verifier has the SCRAM-SHA-256 form PostgreSQL stores, a fresh salt each time, and never the password', () => {
    const v = scramVerifier('correct horse');
    expect(v).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/);
    expect(v).not.toContain('correct horse');
    expect(scramVerifier('correct horse')).not.toBe(v);
    // Deterministic for a given salt: the same keys the server derives from the same password.
    const salt = Buffer.from('0123456789abcdef');
    expect(scramVerifier('pw', salt)).toBe(scramVerifier('pw', salt));
    expect(scramVerifier('pw', salt)).not.toBe(scramVerifier('pw2', salt));
  });
});
