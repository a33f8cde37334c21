// The audit record: one per action on an external system, success, denial and failure alike.
// Field names follow the governance guide's minimal schema (ts, request_id, actor, action,
// resource, outcome, error) plus the Kubernetes object the action was for.
export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditRecord {
  ts: string;
  request_id: string;
  /** Who asked: the admission stamp of the object the action was for, else Steward itself. */
  actor: string;
  /** Who acted: Steward's identity. */
  executor?: string;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  error?: string;
  kind: string;
  namespace?: string;
  name: string;
  /** Non-secret facts about the action (what drift was found, which SQL ran). */
  details?: Record<string, unknown>;
}

/** What a caller supplies; ts and actor are filled in by the trail. */
export type AuditInput = Omit<AuditRecord, 'ts' | 'actor' | 'executor'> & { actor?: string };
