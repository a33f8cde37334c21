// When a DatasetAccess ends: spec.expiresAt, or spec.duration counted from the first grant, capped by
// the policy's maxDuration (also counted from the first grant). Before the first grant, "now" stands
// in for it, so the deadline shown to the user is the one that will apply.
import { parseDuration } from '../runtime/duration.ts';

export interface ExpiryInput {
  expiresAt?: string;
  duration?: string;
  grantedAt?: string;
  maxDurationMs?: number;
  now: Date;
}

export interface Expiry {
  at?: Date;
  /** True when the policy's maxDuration shortened what was asked. */
  capped: boolean;
}

export function effectiveExpiry(input: ExpiryInput): Expiry {
  const start = input.grantedAt ? new Date(input.grantedAt) : input.now;
  const asked = input.expiresAt ? new Date(input.expiresAt) : input.duration ? new Date(start.getTime() + parseDuration(input.duration)) : undefined;
  if (input.maxDurationMs === undefined) return { at: asked, capped: false };
  const cap = new Date(start.getTime() + input.maxDurationMs);
  if (!asked || cap < asked) return { at: cap, capped: true };
  return { at: asked, capped: false };
}
