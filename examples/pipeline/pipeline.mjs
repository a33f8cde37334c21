// A pipeline that survives credential rotation: the guide's "example 2" done right. It reads its
// credentials from the files of a mounted Secret (the directory Kubernetes projects a Secret volume
// into: username, password, host, port, database, sslmode) at every connection, never only at
// start-up, and after an authentication failure it reads them again and retries once. Environment
// variables and subPath mounts never see a rotated Secret; a mounted directory does, a kubelet sync
// later, which is what the SecretRotation's grace period covers.
//
//   CREDENTIALS_DIR=/var/run/secrets/db PGSSLROOTCERT=/etc/ssl/db-ca.crt node pipeline.mjs
//
// Every INTERVAL_MS it connects, runs QUERY, and disconnects. Each failure is printed as one JSON line;
// on SIGTERM or SIGINT it prints a summary line {"summary":{queries,failures,logins}} and exits.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

const dir = process.env.CREDENTIALS_DIR ?? '/var/run/secrets/db';
const interval = Number(process.env.INTERVAL_MS ?? 100);
const query = process.env.QUERY ?? 'SELECT 1';
const ca = process.env.PGSSLROOTCERT ? readFileSync(process.env.PGSSLROOTCERT, 'utf8') : undefined;

function credentials() {
  // The kubelet swaps a Secret volume's files at once by repointing its ..data link: resolve it once,
  // so that one connection's keys all come from the same version of the Secret.
  const base = existsSync(join(dir, '..data')) ? realpathSync(join(dir, '..data')) : dir;
  const read = (key) => readFileSync(join(base, key), 'utf8').trim();
  const sslmode = read('sslmode');
  return {
    user: read('username'),
    password: read('password'),
    host: read('host'),
    port: Number(read('port')),
    database: read('database'),
    ssl: sslmode === 'require' ? { rejectUnauthorized: false } : { rejectUnauthorized: true, ca },
    connectionTimeoutMillis: 5_000,
  };
}

const AUTH_FAILED = new Set(['28P01', '28000']);
let queries = 0;
let failures = 0;
const logins = new Set();

async function once() {
  for (let attempt = 1; ; attempt++) {
    const config = credentials();
    const client = new pg.Client(config);
    try {
      await client.connect();
      await client.query(query);
      logins.add(config.user);
      return;
    } catch (err) {
      // The password changed under us: the mounted file has (or soon has) the new one. Read it again, once.
      if (attempt === 1 && AUTH_FAILED.has(err.code)) continue;
      throw Object.assign(err, { login: config.user });
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

let stopping = false;
const stop = () => {
  stopping = true;
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

while (!stopping) {
  const started = Date.now();
  queries++;
  try {
    await once();
  } catch (err) {
    failures++;
    // The error, never the credential: pg's messages do not carry the password.
    console.log(JSON.stringify({ failure: { at: new Date().toISOString(), login: err.login, code: err.code, message: err.message } }));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, interval - (Date.now() - started))));
}
console.log(JSON.stringify({ summary: { queries, failures, logins: [...logins] } }));
