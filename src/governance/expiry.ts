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

/** RFC 3339 as people write it: no milliseconds when there are none. */
export const rfc3339 = (d: Date) => d.toISOString().replace('.000Z', 'Z');

export interface AccessDeadline extends Expiry {
  /** The deadline has passed. */
  expired: boolean;
  /** The deadline for status and policies (RFC 3339), or null without one. */
  expiresAt: string | null;
}

/** An access's effective deadline (effectiveExpiry) at `now`, for either target of a DatasetAccess. */
export function accessDeadline(
  spec: { expiresAt?: string; duration?: string },
  grantedAt: string | undefined,
  maxDurationMs: number | undefined,
  now: Date,
): AccessDeadline {
  const expiry = effectiveExpiry({ expiresAt: spec.expiresAt, duration: spec.duration, grantedAt, maxDurationMs, now });
  return { ...expiry, expired: expiry.at !== undefined && expiry.at.getTime() <= now.getTime(), expiresAt: expiry.at ? rfc3339(expiry.at) : null };
}
