import { describe, expect, it } from 'vitest';
import { classifyConnectionError, fingerprint, poolConfig, type ConnectionSettings } from '../../src/drivers/postgres/connection.ts';

const base: ConnectionSettings = { host: 'db.example', port: 5432, database: 'analytics', sslMode: 'verify-full', ca: 'PEM', username: 'u', password: 'p' };

describe('TLS settings by sslMode', () => {
  it('verify-full checks chain and host name', () => {
    const ssl = poolConfig(base).ssl as Record<string, unknown>;
    expect(ssl.rejectUnauthorized).toBe(true);
    expect(ssl.ca).toBe('PEM');
    expect(ssl.checkServerIdentity).toBeUndefined();
    expect(ssl.servername).toBe('db.example');
  });
  it('verify-ca checks the chain only', () => {
    const ssl = poolConfig({ ...base, sslMode: 'verify-ca' }).ssl as { rejectUnauthorized: boolean; checkServerIdentity: () => unknown };
    expect(ssl.rejectUnauthorized).toBe(true);
    expect(ssl.checkServerIdentity()).toBeUndefined();
  });
  it('require encrypts without verifying', () => {
    expect(poolConfig({ ...base, sslMode: 'require' }).ssl).toEqual({ rejectUnauthorized: false });
  });
  it('a pool is never configured without TLS', () => {
    for (const sslMode of ['verify-full', 'verify-ca', 'require'] as const) expect(poolConfig({ ...base, sslMode }).ssl).toBeTruthy();
  });
});

describe('fingerprint', () => {
  it('changes with the password and does not contain it', () => {
    const a = fingerprint(base);
    const b = fingerprint({ ...base, password: 'other' });
    expect(a).not.toBe(b);
    expect(a).not.toContain('p"');
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('classifyConnectionError', () => {
  it.each([
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' }, 'Unreachable'],
    [{ code: 'SELF_SIGNED_CERT_IN_CHAIN', message: 'self-signed certificate in certificate chain' }, 'TLSVerificationFailed'],
    [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: "Hostname/IP does not match certificate's altnames" }, 'TLSVerificationFailed'],
    [{ message: 'The server does not support SSL connections' }, 'TLSUnavailable'],
    [{ code: '28P01', message: 'password authentication failed for user "x"' }, 'AuthenticationFailed'],
    [{ code: '3D000', message: 'database "nope" does not exist' }, 'DatabaseNotFound'],
    [{ message: 'timeout expired' }, 'Unreachable'],
    [{ message: 'something else' }, 'ConnectionFailed'],
  ])('%j -> %s', (err, expected) => expect(classifyConnectionError(err)).toBe(expected));
});
