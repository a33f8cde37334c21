// Passwords and their SCRAM-SHA-256 verifiers, made here so that the plaintext never reaches
// PostgreSQL: ALTER ROLE ... PASSWORD gets the verifier, which PostgreSQL stores as it is (RFC 7677,
// the format of pg_authid.rolpassword). The password's alphabet is ASCII letters and digits, which
// SASLprep leaves as they are, so the verifier matches what a client derives from the same text.
import { createHash, createHmac, pbkdf2Sync, randomBytes, randomInt } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** PostgreSQL's default scram_iterations. */
const ITERATIONS = 4096;

/** A password from the CSPRNG: `length` characters, each uniform over 62 (5.95 bits each; 32 give 190 bits). */
export function generatePassword(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

/** The SCRAM-SHA-256 verifier of a password, with a fresh salt. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
