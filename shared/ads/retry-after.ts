/**
 * Retry-After of a 429, as milliseconds from `now`: delta-seconds or an HTTP date
 * (RFC 9110 §10.2.3). Amazon sends seconds; the date form costs one line to honour.
 */

/** Used when a 429 carries no (or an unreadable) Retry-After. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;

export function parseRetryAfterMs(header: string | null | undefined, now: number = Date.now()): number {
  if (header === null || header === undefined || header.trim() === '') return DEFAULT_RETRY_AFTER_MS;
  const value = header.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return DEFAULT_RETRY_AFTER_MS;
  return Math.max(0, date - now);
}
