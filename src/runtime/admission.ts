// An HTTPS endpoint for admission webhooks (admission.k8s.io/v1 AdmissionReview): the API server
// POSTs each request; /mutate answers allowed with a JSON patch, /validate allowed or refused with a
// reason. Knows no domain: what to patch is the `mutate` function's, what to allow the `validate`'s.
// Its certificate and key are read from a directory (tls.crt, tls.key: a Secret mounted there) and
// read again when they change, so a renewed certificate is served without a restart.
import { readFileSync, statSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parseAddress } from './http.ts';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: string;
  userInfo: { username: string; groups?: string[] };
  object?: unknown;
  oldObject?: unknown;
  namespace?: string;
  name?: string;
  /** A dry run: the webhook must have no side effects (its configuration says sideEffects: NoneOnDryRun). */
  dryRun?: boolean;
}

export type Mutate = (request: AdmissionRequest) => { op: string; path: string; value?: unknown }[];

/** What a validating webhook answers: allowed, or refused with an HTTP code and a reason the user reads. */
export type Verdict = { allowed: true } | { allowed: false; code: number; message: string };
export type Validate = (request: AdmissionRequest) => Promise<Verdict>;

export interface AdmissionHandlers {
  mutate: Mutate;
  /** Served at /validate when given. */
  validate?: Validate;
}

const MAX_BODY = 3 * 1024 * 1024; // the API server's own request limit is about this

export function startAdmissionServer(address: string, certDir: string, handlers: AdmissionHandlers, logger: Logger): Promise<https.Server> {
  const { mutate, validate } = handlers;
  const files = { cert: join(certDir, 'tls.crt'), key: join(certDir, 'tls.key') };
  let loadedAt = 0;
  const load = () => {
    loadedAt = Math.max(statSync(files.cert).mtimeMs, statSync(files.key).mtimeMs);
    return { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  };
  const server = https.createServer({ ...load(), minVersion: 'TLSv1.2' }, (req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || !(path === '/mutate' || (path === '/validate' && validate)))
      return reply(404, { error: validate ? 'POST /mutate or /validate' : 'POST /mutate' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let review: { apiVersion?: string; request?: AdmissionRequest };
      try {
        review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return reply(400, { error: 'not JSON' });
      }
      const request = review.request;
      if (!request?.uid) return reply(400, { error: 'not an AdmissionReview request' });
      const answer = (response: Record<string, unknown>) =>
        reply(200, { apiVersion: review.apiVersion ?? 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, ...response } });
      if (path === '/validate') {
        void validate!(request).then(
          (verdict) => answer(verdict.allowed ? { allowed: true } : { allowed: false, status: { code: verdict.code, message: verdict.message } }),
          (err: unknown) => {
            // Fail closed: what could not be judged is refused.
            logger.error(
              { err: err instanceof Error ? err.message : String(err), kind: request.kind?.kind, name: request.name },
              'admission: could not validate',
            );
            answer({
              allowed: false,
              status: { code: 500, message: `Steward could not judge this request: ${err instanceof Error ? err.message : String(err)}` },
            });
          },
        );
        return;
      }
      const response: Record<string, unknown> = { allowed: true };
      try {
        const patch = mutate(request);
        if (patch.length) {
          response.patchType = 'JSONPatch';
          response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
        }
      } catch (err) {
        // Fail closed: an object Steward could not stamp is refused, not admitted unstamped.
        logger.error({ err: err instanceof Error ? err.message : String(err), kind: request.kind?.kind, name: request.name }, 'admission: could not stamp');
        response.allowed = false;
        response.status = { code: 500, message: `Steward could not stamp who asked: ${err instanceof Error ? err.message : String(err)}` };
      }
      answer(response);
    });
  });
  // A renewed certificate (the Secret's files replaced) is picked up on the next connection.
  server.on('secureConnection', () => {
    try {
      if (Math.max(statSync(files.cert).mtimeMs, statSync(files.key).mtimeMs) > loadedAt) server.setSecureContext(load());
    } catch (err) {
      logger.warn({ err: String(err) }, 'admission: cannot reload the certificate; serving the one loaded');
    }
  });
  const { host, port } = parseAddress(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
