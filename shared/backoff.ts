/**
 * Capped exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS
 * Architecture Blog): delay = random(0, min(cap, base * 2^(attempt-1))). Full jitter
 * spreads a burst of failures (a dependency outage hitting every message at once) over the
 * whole window instead of bringing them back in lockstep.
 */
export interface BackoffPolicy {
  /** Delay ceiling for the first retry. */
  readonly baseMs: number;
  /** No delay is longer than this. */
  readonly capMs: number;
  /** A floor, so a retry never comes back at once (e.g. 1 s for SQS visibility). */
  readonly minMs?: number;
}

export const MESSAGE_RETRY_BACKOFF = {
  baseMs: 2_000,
  capMs: 15 * 60_000,
  minMs: 1_000,
} as const satisfies BackoffPolicy;

export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  return Math.max(policy.minMs ?? 0, Math.floor(random() * ceiling));
}
