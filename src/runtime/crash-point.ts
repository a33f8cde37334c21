// Crash points: fault injection for the tests that prove a multi-step change resumes after a crash.
// With STEWARD_CRASH_AT=<point>@<namespace>/<name> set, the process kills itself with SIGKILL (no
// shutdown hooks, no flushes: what a node failure or an OOM kill does) the moment that object's
// reconcile passes that point. Unset, as it is in every deployment, it costs one string comparison.
// Named per object so that other objects the same process reconciles never trip it.

const armed = process.env.STEWARD_CRASH_AT;

/** Kills the process at once when STEWARD_CRASH_AT names this point for this object. */
export function crashPoint(point: string, object: string): void {
  if (armed !== undefined && armed === `${point}@${object}`) process.kill(process.pid, 'SIGKILL');
}
