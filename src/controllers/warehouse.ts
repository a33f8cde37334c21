// Warehouse reconciler: connect with the requested sslMode, ask the server how the session is
// protected (pg_stat_ssl), make sure the audit table exists, and report it all as conditions.
// It recovers by itself: Secrets are watched (metadata only), and failures are retried with backoff.
import { warehouseKind, type Warehouse } from '../api/warehouse.ts';
import { resourceType } from '../api/schema.ts';
import type { ResourceType, KubeObject } from '../runtime/kube.ts';
import type { Outcome, ReconcileContext } from '../runtime/controller.ts';
import type { ConditionInput } from '../runtime/conditions.ts';
import { findCondition } from '../runtime/conditions.ts';
import type { AuditTrail } from '../audit/sink.ts';
import { classifyConnectionError } from '../drivers/postgres/connection.ts';
import { type WarehouseConnections, type WarehouseSession, WarehouseSecretError } from '../drivers/postgres/connector.ts';
import { requestedBy } from '../api/meta.ts';

export const WAREHOUSE_TYPE: ResourceType = resourceType(warehouseKind);

export interface WarehouseDeps {
  connections: WarehouseConnections;
  audit: AuditTrail;
}

const TLS_REASON = { 'verify-full': 'CertificateVerified', 'verify-ca': 'ChainVerified', require: 'EncryptedNotVerified' } as const;
const TLS_WHAT = {
  'verify-full': 'server certificate and host name verified',
  'verify-ca': 'server certificate chain verified (host name not checked: sslMode verify-ca)',
  require: 'encrypted, but the server certificate is not verified (sslMode require)',
} as const;

export function warehouseReconciler(deps: WarehouseDeps) {
  const auditTableReady = new WeakSet<object>();

  return async function reconcileWarehouse(wh: Warehouse, ctx: ReconcileContext): Promise<Outcome> {
    const target = `postgres://${wh.spec.postgres.host}:${wh.spec.postgres.port ?? 5432}/${wh.spec.postgres.database}`;
    const trail = deps.audit.scope({ request_id: ctx.requestId, kind: 'Warehouse', name: wh.metadata.name, actor: requestedBy(wh) });
    const audit = (outcome: 'success' | 'failure', action: string, error?: string, details?: Record<string, unknown>) =>
      trail.record({ action, resource: target, outcome, error, details });

    let session: WarehouseSession | undefined;
    try {
      session = await deps.connections.session(wh);
      const facts = await session.sessionFacts();
      if (!facts.ssl) {
        // Cannot happen with the TLS settings Steward uses; if it does, trust nothing.
        return failedOutcome(
          'Stalled',
          'NotEncrypted',
          `the server reports this session as unencrypted (pg_stat_ssl.ssl = false); Steward will not use it`,
          tlsUnknown('NotEncrypted', 'session not encrypted'),
        );
      }
      if (!auditTableReady.has(session)) {
        try {
          await session.ensureAuditTable();
          auditTableReady.add(session);
        } catch (err) {
          const message = session.scrub(errMessage(err));
          await audit('failure', 'audit_table.ensure', message);
          return failedOutcome('Stalled', 'AuditTableUnavailable', `cannot use the append-only audit table steward.audit_log: ${message}`);
        }
        await audit('success', 'audit_table.ensure', undefined, { table: 'steward.audit_log' }).then((r) => session!.auditTable.write(r));
      }

      const sslMode = (wh.spec.postgres.sslMode ?? 'verify-full') as keyof typeof TLS_REASON;
      const tlsMessage = `${facts.tlsVersion} ${facts.cipher}: ${TLS_WHAT[sslMode]}`;
      const wasReady = findCondition(wh.status?.conditions, 'Ready')?.status === 'True';
      if (!wasReady) {
        const record = await audit('success', 'warehouse.connect', undefined, {
          tls: facts.tlsVersion,
          cipher: facts.cipher,
          sslMode,
          serverVersion: facts.serverVersion,
        });
        await session.auditTable.write(record);
      }
      // What could not be audited while the warehouse did not answer is written now, marked delayed.
      await session.auditTable
        .flush()
        .catch((e: unknown) => ctx.logger.warn({ err: session?.scrub(errMessage(e)) }, 'could not write the delayed audit records yet'));
      // An idle session that ends (the server stops or drops it) re-checks the Warehouse at once.
      await session.watchHealth().catch(() => undefined);
      return {
        state: 'Ready',
        reason: 'Connected',
        message: `connected as ${facts.currentUser} to PostgreSQL ${facts.serverVersion} over ${tlsMessage}`,
        // No timestamp here: a status that changes on every resync would cost an API write while idle.
        status: { tls: { version: facts.tlsVersion, cipher: facts.cipher }, serverVersion: facts.serverVersion },
        conditions: [
          { type: 'TLSVerified', status: sslMode === 'require' ? 'False' : 'True', reason: TLS_REASON[sslMode], message: `pg_stat_ssl: ${tlsMessage}` },
        ],
        events: wasReady
          ? []
          : [{ type: 'Normal', reason: 'Connected', note: `Connected to ${target} over ${facts.tlsVersion} (${TLS_REASON[sslMode]})`, action: 'Connect' }],
      };
    } catch (err) {
      if (err instanceof WarehouseSecretError) {
        await auditOnChange(wh, err.reason, () => audit('failure', 'warehouse.connect', err.message));
        // A Secret the API server would not give is no fault of the Secret: it resolves by itself.
        return failedOutcome(err.reason === 'SecretUnreadable' ? 'Progressing' : 'Stalled', err.reason, err.message, tlsUnknown(err.reason, 'not connected'));
      }
      const failure = classifyConnectionError(err);
      // Node appends advice about its own trust store to TLS errors; it does not apply to a Warehouse.
      const detail = (session?.scrub(errMessage(err)) ?? errMessage(err)).replace(/; if the root CA is installed locally.*$/, '');
      // To the log now, and to the warehouse's table once it answers again (kept in order meanwhile).
      await auditOnChange(wh, failure, () => audit('failure', 'warehouse.connect', detail).then((r) => session?.auditTable.write(r).catch(() => undefined)));
      const [state, message, tls] = describeFailure(failure, wh, detail);
      return failedOutcome(state, failure, message, tls);
    }
  };
}

function describeFailure(failure: ReturnType<typeof classifyConnectionError>, wh: Warehouse, detail: string): [Outcome['state'], string, ConditionInput] {
  const p = wh.spec.postgres;
  const where = `${p.host}:${p.port ?? 5432}`;
  switch (failure) {
    case 'Unreachable':
      return ['Progressing', `cannot reach ${where}: ${detail}; retrying with backoff`, tlsUnknown('Unreachable', 'not connected')];
    case 'TLSVerificationFailed': {
      const ca = p.caSecretRef ? `the CA in Secret ${p.caSecretRef.namespace}/${p.caSecretRef.name}` : 'the system trust store';
      return [
        'Stalled',
        `the server certificate of ${where} does not verify against ${ca} (sslMode ${p.sslMode ?? 'verify-full'}): ${detail}. Put the CA that signed the server certificate in that Secret.`,
        { type: 'TLSVerified', status: 'False', reason: 'TLSVerificationFailed', message: detail },
      ];
    }
    case 'TLSUnavailable':
      return [
        'Stalled',
        `${where} does not offer TLS; Steward never connects in plaintext. Enable ssl on the server.`,
        { type: 'TLSVerified', status: 'False', reason: 'TLSUnavailable', message: detail },
      ];
    case 'AuthenticationFailed':
      return [
        'Stalled',
        `authentication failed at ${where}: ${detail}. Fix the username/password in Secret ${p.credentialsSecretRef.namespace}/${p.credentialsSecretRef.name}.`,
        tlsUnknown('NotConnected', 'not connected'),
      ];
    case 'DatabaseNotFound':
      return ['Stalled', `database ${p.database} does not exist at ${where}: ${detail}`, tlsUnknown('NotConnected', 'not connected')];
    default:
      return ['Progressing', `cannot connect to ${where}: ${detail}; retrying with backoff`, tlsUnknown('NotConnected', 'not connected')];
  }
}

function failedOutcome(state: Outcome['state'], reason: string, message: string, tls?: ConditionInput): Outcome {
  return {
    state,
    reason,
    message,
    conditions: tls ? [tls] : [],
    events: [{ type: 'Warning', reason, note: message, action: 'Connect' }],
  };
}

function tlsUnknown(reason: string, message: string): ConditionInput {
  return { type: 'TLSVerified', status: 'Unknown', reason, message };
}

/** Repeated identical failures (backoff retries) are audited once, when the reason first appears. */
async function auditOnChange(wh: Warehouse, reason: string, write: () => Promise<unknown>): Promise<void> {
  const ready = findCondition(wh.status?.conditions, 'Ready');
  if (ready?.status === 'False' && ready.reason === reason) return;
  await write();
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Secrets a Warehouse reads: a change to one of them re-reconciles the Warehouse. */
export function warehousesUsingSecret(warehouses: () => Warehouse[]) {
  return (secret: KubeObject): string[] => {
    const { namespace, name } = secret.metadata;
    return warehouses()
      .filter((wh) => {
        const p = wh.spec.postgres;
        return (
          (p.credentialsSecretRef.namespace === namespace && p.credentialsSecretRef.name === name) ||
          (p.caSecretRef?.namespace === namespace && p.caSecretRef?.name === name)
        );
      })
      .map((wh) => wh.metadata.name);
  };
}
