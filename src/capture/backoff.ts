/** Restart delays: exponential in the number of failures in a row, capped, spread by jitter. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  jitter: number;
}

export function backoffDelay(failuresInRow: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, failuresInRow - 1));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}
