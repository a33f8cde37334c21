// SecretRotation reconciler. A rotation runs four idempotent steps, keyed by a rotation id:
//   1. pending: a new password from the CSPRNG, kept with the id and the login in a Secret the
//      SecretRotation owns (<name>-rotation-pending), which nothing consumes: after a crash at any
//      point the same rotation resumes from it, with the same id and password;
//   2. set: the login gets the password's SCRAM verifier (skipped when the password already logs in);
//   3. test: log in as the login with it over the Warehouse's own TLS settings;
//   4. finish: publish it to the target Secret, and record the rotation in status; the pending
//      Secret is deleted once status names the rotation as finished.
// Nothing is published that has not logged in. alternating sets the password on the login that is
// not published, so the published one keeps working; after the grace period the previous login gets
// an unknown password, VALID UNTIL, and its sessions end (retire).
import { randomUUID } from 'node:crypto';
import { secretRotationKind, ROTATE_REQUESTED_ANNOTATION, type SecretRotation } from '../api/secretrotation.ts';
import { resourceType } from '../api/schema.ts';
import type { AuditTrail } from '../audit/sink.ts';
import { refusedRole } from '../governance/reserved.ts';
import {
  DEFAULT_GRACE_PERIOD,
  alternateLoginComment,
  alternateLoginName,
  loginToRotate,
  nextRotationAt,
  rotationPolicyDenial,
} from '../governance/rotation.ts';
import { type OwnedSecrets, SecretNotOwned, type SecretOwner } from '../drivers/kubernetes/owned-secret.ts';
import type { PostgresLoginDriver } from '../drivers/postgres/login-driver.ts';
import { AwsSecretNotOwned, type PostgresSecretValue, type SecretsManagerTarget } from '../drivers/aws/secrets-manager.ts';
import { generatePassword } from '../drivers/postgres/scram.ts';
import { StaleObservation, stalled, type Outcome, type ReconcileContext } from '../runtime/controller.ts';
import { crashPoint } from '../runtime/crash-point.ts';
import { parseDuration } from '../runtime/duration.ts';
import type { KubeObject, ResourceType } from '../runtime/kube.ts';
import { connectWarehouse, type WarehouseDeps } from './warehouse-preamble.ts';
import { requestedBy } from '../api/meta.ts';

export const SECRET_ROTATION_TYPE: ResourceType = resourceType(secretRotationKind);

/** What single means for consumers, said in its status and events. */
const SINGLE_WARNING = ' (strategy single: clients holding the old password fail until they read the new one)';

/** After this many failed attempts in a row a rotation is Stalled (it keeps being retried at the longest backoff). */
const ATTEMPTS_BEFORE_STALLED = 5;

export interface SecretRotationDeps extends WarehouseDeps {
  audit: AuditTrail;
  secrets: OwnedSecrets;
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  /** Every SecretRotation, to find two that rotate the same login. */
  rotations: () => SecretRotation[];
  /** The awsSecretsManager target; without it such a target is refused as unsupported. */
  awsSecrets?: SecretsManagerTarget;
}

/** The Secret that holds a rotation under way: never a target, never consumed. */
export function pendingSecretName(name: string): string {
  return `${name.slice(0, 230)}-rotation-pending`;
}

interface Pending {
  rotationId: string;
  login: string;
  password: string;
  startedAt: string;
}

function ownerOf(sr: SecretRotation): SecretOwner {
  return { apiVersion: 'steward.dev/v1alpha1', kind: 'SecretRotation', name: sr.metadata.name, uid: sr.metadata.uid! };
}

/** The oldest SecretRotation of the same login in the same Warehouse, when it is not this one. */
function olderRotationOfRole(sr: SecretRotation, all: SecretRotation[]): SecretRotation | undefined {
  const key = (o: SecretRotation) => `${o.metadata.creationTimestamp ?? ''} ${o.metadata.namespace}/${o.metadata.name}`;
  const same = all.filter((o) => !o.metadata.deletionTimestamp && o.spec.warehouse === sr.spec.warehouse && o.spec.role === sr.spec.role);
  const first = same.sort((a, b) => key(a).localeCompare(key(b)))[0];
  return first && first.metadata.uid !== sr.metadata.uid ? first : undefined;
}

/** What a consumer needs to connect, as the Secret's keys (the password only ever here and in the pending Secret). */
function credentialData(endpoint: ReturnType<PostgresLoginDriver['endpoint']>, login: string, password: string): Record<string, string> {
  const { host, port, database, sslMode } = endpoint;
  const uri = `postgresql://${encodeURIComponent(login)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(database)}?sslmode=${sslMode}`;
  return { username: login, password, host, port: String(port), database, sslmode: sslMode, uri };
}

/** The Secrets Manager value, in the shape of AWS's own PostgreSQL rotation. */
function awsSecretValue(endpoint: ReturnType<PostgresLoginDriver['endpoint']>, login: string, password: string): PostgresSecretValue {
  return { engine: 'postgres', host: endpoint.host, port: endpoint.port, username: login, password, dbname: endpoint.database };
}

/** A target that is not this SecretRotation's own: Stalled, saying how to resolve it. */
function notOwnedRefusal(err: unknown): Outcome | undefined {
  if (err instanceof AwsSecretNotOwned) return stalled('SecretNotOwned', `${err.message}; nothing was rotated`, 'Rotate');
  if (err instanceof SecretNotOwned)
    return stalled(
      'SecretNotOwned',
      `${err.message}: Steward never overwrites a Secret it does not own. Delete it, or name another target; nothing was rotated`,
      'Rotate',
    );
  return undefined;
}

export function secretRotationReconciler(deps: SecretRotationDeps) {
  return async function reconcileSecretRotation(sr: SecretRotation, ctx: ReconcileContext): Promise<Outcome> {
    const { namespace, name } = { namespace: sr.metadata.namespace!, name: sr.metadata.name };
    const { role, strategy = 'alternating', targets } = sr.spec;
    if (targets.awsSecretsManager && !deps.awsSecrets) {
      return stalled(
        'UnsupportedTarget',
        'the awsSecretsManager target is not implemented yet in this release; nothing was rotated (remove it to rotate into the Kubernetes Secret alone)',
        'Rotate',
      );
    }
    const older = olderRotationOfRole(sr, deps.rotations());
    if (older)
      return stalled(
        'RotationConflict',
        `SecretRotation ${older.metadata.namespace}/${older.metadata.name} already rotates role ${role} in Warehouse ${sr.spec.warehouse}; nothing was rotated`,
        'Rotate',
      );
    const connected = await connectWarehouse(deps, sr.spec.warehouse, 'nothing rotated');
    if ('outcome' in connected) return connected.outcome;
    const { wh, drivers } = connected;
    const logins = drivers.logins;
    const denial = rotationPolicyDenial(wh.spec.accessPolicy, { name: namespace, labels: deps.namespaceLabels(namespace) ?? {} }, role);
    if (denial) return stalled('PolicyDenied', `${denial}; nothing was rotated. Ask the Warehouse owner to name the role in spec.accessPolicy.`, 'Rotate');

    const alternate = alternateLoginName(role);
    const facts = await logins.observe(role, alternate);
    if (!facts.role)
      return stalled('PrincipalNotFound', `role ${role} does not exist in Warehouse ${wh.metadata.name}; Steward never creates the login it rotates`, 'Rotate');
    const refused = refusedRole(facts.role) ?? (facts.role.refusedMembership ? `role ${role} is a member of ${facts.role.refusedMembership}` : undefined);
    if (refused) return stalled('PolicyDenied', `${refused}: its password is never rotated into a Secret, whatever the accessPolicy says`, 'Rotate');
    if (!facts.role.canLogin) return stalled('NotALogin', `role ${role} cannot log in (NOLOGIN): there is no password to rotate`, 'Rotate');
    const comment = alternateLoginComment(namespace, name, role);
    if (strategy === 'alternating' && facts.alternate && facts.alternate.comment !== comment)
      return stalled(
        'LoginConflict',
        `role ${alternate} exists and is not this SecretRotation's alternate login (its comment says otherwise); nothing was rotated`,
        'Rotate',
      );

    const owner = ownerOf(sr);
    const secretName = targets.kubernetesSecret?.name;
    const aws =
      targets.awsSecretsManager && deps.awsSecrets ? { ...targets.awsSecretsManager, target: deps.awsSecrets, owner: `${namespace}/${name}` } : undefined;
    const where = [secretName && `Secret ${secretName}`, aws && `AWS secret ${aws.secretId}`].filter(Boolean).join(' and ');
    const pendingName = pendingSecretName(name);
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'SecretRotation', namespace, name, actor: requestedBy(sr) });
    const status = sr.status ?? {};
    let pendingData: Record<string, string> | undefined;
    let published: Record<string, string> | undefined;
    try {
      pendingData = await deps.secrets.read(namespace, pendingName, owner);
      if (secretName) published = await deps.secrets.read(namespace, secretName, owner);
      else if (aws) {
        await aws.target.checkOwned(aws.region, aws.secretId, aws.owner);
        const current = await aws.target.current(aws.region, aws.secretId);
        published = current && { username: current.username, password: current.password };
      }
    } catch (err) {
      const refusal = notOwnedRefusal(err);
      if (refusal) return refusal;
      throw err;
    }
    const now = ctx.now;
    const grace = parseDuration(sr.spec.gracePeriod ?? DEFAULT_GRACE_PERIOD);
    // Only fields the status schema has: the API server prunes any other, and a field written and
    // pruned at every resync would be an API write per SecretRotation per resync.
    const fields: Record<string, unknown> = {};
    const events: NonNullable<Outcome['events']> = [];

    // A rotation that finished (status names it) leaves its pending Secret behind until now.
    if (pendingData && pendingData.rotationId === status.lastRotationId) {
      await deps.secrets.remove(namespace, pendingName, owner);
      pendingData = undefined;
    }

    // Retire the login published before, once its grace period is over.
    // From the grace period as the spec says it now: shortening it takes effect at once.
    const retireAt =
      status.previousLogin && status.lastRotatedAt ? Date.parse(status.lastRotatedAt) + grace : status.retireAt ? Date.parse(status.retireAt) : undefined;
    if (status.previousLogin && retireAt !== undefined) fields.retireAt = new Date(retireAt).toISOString();
    if (status.previousLogin && retireAt !== undefined && retireAt <= now.getTime() && !pendingData) {
      const ended = await logins.retire(status.previousLogin, trail, status.lastRotationId ?? ctx.requestId);
      events.push({
        type: 'Normal',
        reason: 'LoginRetired',
        note: `retired ${status.previousLogin} after its grace period; ended ${ended} session(s)`,
        action: 'Rotate',
      });
      fields.previousLogin = null;
      fields.retireAt = null;
    }
    const inGrace = fields.previousLogin !== null && status.previousLogin !== undefined && retireAt !== undefined && retireAt > now.getTime();

    // Is a rotation due? Scheduled, asked for, or the published credential no longer logs in.
    const requested = sr.metadata.annotations?.[ROTATE_REQUESTED_ANNOTATION];
    const last = status.lastRotatedAt ? new Date(status.lastRotatedAt) : undefined;
    const next = nextRotationAt(sr.spec.schedule, last, new Date(sr.metadata.creationTimestamp ?? now.toISOString()));
    let why: string | undefined;
    if (!pendingData) {
      if (!published || !last) why = 'first rotation';
      else if (requested && requested !== status.lastRequestedAt) why = `requested at ${requested}`;
      else if (next.getTime() <= now.getTime()) why = 'scheduled';
      else {
        const test = await logins.test(published.username ?? '', published.password ?? '');
        if (!test.ok && test.failure === 'AuthenticationFailed') {
          why = 'the published credential no longer logs in';
          const note = `the password of ${published.username} was changed outside Steward: the published credential no longer logs in; rotating to restore a working one`;
          events.push({ type: 'Warning', reason: 'PasswordChangedOutOfBand', note, action: 'Rotate' });
          await trail.record(
            { action: 'login.drift', resource: `${wh.metadata.name}/role:${published.username}`, outcome: 'failure', error: note },
            drivers.auditTable,
          );
        } else if (!test.ok) throw new Error(`cannot check the published credential: ${test.message}`);
      }
    }
    const nextAt = (lastAt: Date) => nextRotationAt(sr.spec.schedule, lastAt, lastAt).toISOString();
    if (!pendingData && !why) {
      const wake = Math.min(next.getTime(), inGrace ? retireAt! : Infinity) - Date.now();
      return {
        state: 'Ready',
        reason: 'Rotated',
        message: `${status.activeLogin} is published to ${where}; next rotation at ${next.toISOString()}${strategy === 'single' ? SINGLE_WARNING : ''}`,
        status: { ...fields, nextRotationAt: next.toISOString() },
        events,
        requeueAfterMs: Math.max(1, wake),
      };
    }
    // alternating: the login to change is the one published before the last rotation; while it is in
    // its grace period, consumers may still be using it, so the rotation waits for the retirement.
    if (!pendingData && strategy === 'alternating' && inGrace) {
      return {
        state: 'Progressing',
        reason: 'GracePeriod',
        message: `a rotation is due (${why}) and waits until ${fields.retireAt}, when ${status.previousLogin}'s grace period ends: its password is still in use`,
        status: fields,
        events,
        requeueAfterMs: Math.max(1, retireAt! - Date.now()),
      };
    }

    // 1. pending: made once, resumed after a crash.
    const pending: Pending = pendingData
      ? { rotationId: pendingData.rotationId!, login: pendingData.login!, password: pendingData.password!, startedAt: pendingData.startedAt! }
      : {
          rotationId: randomUUID(),
          login: loginToRotate(strategy, role, status.activeLogin),
          password: generatePassword(sr.spec.password?.length ?? 32),
          startedAt: now.toISOString(),
        };
    // The AWS secret's tag is checked when there is something to write (an idle resync asks AWS nothing).
    if (aws && secretName) {
      try {
        await aws.target.checkOwned(aws.region, aws.secretId, aws.owner);
      } catch (err) {
        const refusal = notOwnedRefusal(err);
        if (refusal) return { ...refusal, events };
        throw err;
      }
    }
    const rotationTrail = deps.audit.scope({ request_id: pending.rotationId, kind: 'SecretRotation', namespace, name, actor: requestedBy(sr) });
    const attempts = status.rotation?.id === pending.rotationId ? status.rotation.attempts : 0;
    const key = `${namespace}/${name}`;
    try {
      if (!pendingData) {
        await deps.secrets.write(namespace, pendingName, owner, { ...pending });
      }
      const awsValue = aws && awsSecretValue(logins.endpoint(), pending.login, pending.password);
      if (aws) await aws.target.stagePending(aws.region, aws.secretId, aws.owner, pending.rotationId, awsValue!);
      if (!pendingData) {
        await rotationTrail.record(
          { action: 'rotation.start', resource: `${wh.metadata.name}/role:${pending.login}`, outcome: 'success', details: { reason: why, strategy } },
          drivers.auditTable,
        );
      }
      crashPoint('secretrotation.pending', key);
      // 2. set (unless the password already logs in: the step ran before a crash), 3. test.
      if (pending.login === alternate) await logins.ensureAlternate(role, alternate, comment, facts, rotationTrail);
      let test = await logins.test(pending.login, pending.password);
      if (!test.ok) {
        await logins.setPassword(pending.login, pending.password, rotationTrail, pending.rotationId);
        crashPoint('secretrotation.set', key);
        test = await logins.test(pending.login, pending.password);
      }
      if (!test.ok) throw new Error(`the new password of ${pending.login} did not log in (${test.failure}: ${test.message}); nothing was published`);
      crashPoint('secretrotation.test', key);
      // 4. finish: publish, then status says it is done (the pending Secret goes at the next reconcile).
      if (secretName) await deps.secrets.write(namespace, secretName, owner, credentialData(logins.endpoint(), pending.login, pending.password));
      if (aws) await aws.target.promote(aws.region, aws.secretId, pending.rotationId, awsValue!);
      await rotationTrail.record(
        {
          action: 'rotation.finish',
          resource: `${wh.metadata.name}/role:${pending.login}`,
          outcome: 'success',
          details: { targets: where, previous: status.activeLogin ?? null },
        },
        drivers.auditTable,
      );
      crashPoint('secretrotation.finish', key);
    } catch (err) {
      if (err instanceof StaleObservation) throw err;
      const message = drivers.scrub((err instanceof Error ? err.message : String(err)).split(pending.password).join('[REDACTED]'));
      await rotationTrail
        .record({ action: 'rotation.step', resource: `${wh.metadata.name}/role:${pending.login}`, outcome: 'failure', error: message }, drivers.auditTable)
        .catch(() => undefined);
      const rotation = { id: pending.rotationId, login: pending.login, startedAt: pending.startedAt, attempts: attempts + 1, lastError: message };
      const advice = `rotation ${pending.rotationId} failed (attempt ${attempts + 1}): ${message}. The published credential is unchanged; retrying with backoff`;
      if (attempts + 1 >= ATTEMPTS_BEFORE_STALLED) return { ...stalled('RotationFailed', advice, 'Rotate'), status: { ...fields, rotation } };
      return { state: 'Progressing', reason: 'RotationFailed', message: advice, status: { ...fields, rotation }, events };
    }
    const previous =
      strategy === 'alternating' && status.activeLogin !== pending.login ? (status.activeLogin ?? (pending.login === alternate ? role : undefined)) : undefined;
    const finishedAt = new Date();
    events.push({
      type: 'Normal',
      reason: 'Rotated',
      note: `rotated ${pending.login} (${why ?? 'resumed'}) and published it to ${where}${previous ? `; ${previous} stays valid for ${sr.spec.gracePeriod ?? DEFAULT_GRACE_PERIOD}` : ''}${strategy === 'single' ? SINGLE_WARNING : ''}`,
      action: 'Rotate',
    });
    return {
      state: 'Ready',
      reason: 'Rotated',
      message: `${pending.login} is published to ${where}${strategy === 'single' ? SINGLE_WARNING : ''}`,
      status: {
        ...fields,
        activeLogin: pending.login,
        lastRotatedAt: finishedAt.toISOString(),
        lastRotationId: pending.rotationId,
        nextRotationAt: nextAt(finishedAt),
        lastRequestedAt: requested ?? status.lastRequestedAt ?? null,
        rotation: null,
        ...(previous ? { previousLogin: previous, retireAt: new Date(finishedAt.getTime() + grace).toISOString() } : { previousLogin: null, retireAt: null }),
      },
      events,
      // Again at once: the pending Secret goes, and the next deadline is set.
      requeueAfterMs: 1,
    };
  };
}

/** SecretRotations of a Warehouse: reconciled again when its policy or readiness changes. */
export function rotationsOfWarehouse(rotations: () => SecretRotation[]) {
  return (wh: KubeObject): string[] =>
    rotations()
      .filter((r) => r.spec.warehouse === wh.metadata.name)
      .map((r) => `${r.metadata.namespace}/${r.metadata.name}`);
}
