/**
 * Capped exponential backoff with "equal jitter": the n-th delay is drawn from
 * [ceiling/2, ceiling] with ceiling = min(cap, base * 2^(n-1)). Half of the window is
 * random, which spreads a burst of failures (an outage hitting every message at once) so
 * they do not come back in lockstep; the other half guarantees each retry waits at least as
 * long as the one before — full jitter would not, and a dependency that is down wants
 * growing pauses.
 */
export interface BackoffPolicy {
  /** Ceiling of the first delay. */
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
  const half = ceiling / 2;
  return Math.max(policy.minMs ?? 0, Math.floor(half + random() * half));
}
