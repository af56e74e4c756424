/**
 * Retry timing for the Ads client. "Full jitter" (AWS Architecture Blog, "Exponential Backoff
 * and Jitter"): a random delay in [0, min(cap, base · 2^attempt)), which spreads the retries
 * of many workers that failed at the same moment. Two lines of arithmetic: a library would
 * cost more to wire than to write.
 */

export interface BackoffOptions {
  readonly baseMs: number;
  readonly capMs: number;
}

/** Delay before retry number `attempt` (0 for the first retry). */
export function backoffDelayMs(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/** Used when a 429 carries no (or an unreadable) Retry-After. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;

/** Retry-After as milliseconds from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfterMs(header: string | null | undefined, now: number = Date.now()): number {
  if (header === null || header === undefined || header.trim() === '') return DEFAULT_RETRY_AFTER_MS;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return DEFAULT_RETRY_AFTER_MS;
  return Math.max(0, date - now);
}
