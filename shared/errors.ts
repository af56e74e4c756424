import { type Dependency, isPostgresOutage, NETWORK_ERROR_CODES, outageOf } from './dependencies.ts';

/**
 * One error vocabulary for the fleet. A handler (or a client it calls) throws one of these,
 * or anything else, and `classifyError` decides what the queue worker does with the message:
 *
 *  - retryable   → the message comes back later, after capped, jittered exponential backoff;
 *  - throttled   → the message comes back after the delay the thrower gave (e.g. Retry-After),
 *                  without spending the dead-letter budget;
 *  - fatal       → the message goes to the queue's DLQ at once, with the reason;
 *  - unavailable → a dependency is down (the error was tagged by its client, dependencies.ts):
 *                  the message is released without spending its budget, and the
 *                  dependency's circuit breaker hears of it (shared/breakers.ts).
 *
 * Errors we did not make ourselves (AWS SDK, pg, ioredis, fetch) are classified by the code
 * tables below; anything unknown is treated as retryable, because retrying a bug a few
 * times costs little while dead-lettering a blip loses work until someone redrives it.
 */

export const ErrorKind = {
  Retryable: 'retryable',
  Throttled: 'throttled',
  Fatal: 'fatal',
  Unavailable: 'unavailable',
} as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

/** Transient: try again later with backoff. */
export class RetryableError extends Error {
  override readonly name: string = 'RetryableError';
}

/** Never going to succeed: dead-letter at once with this message as the reason. */
export class FatalError extends Error {
  override readonly name: string = 'FatalError';
}

/** The message failed validation before any handler saw it. */
export class InvalidMessageError extends FatalError {
  override readonly name: string = 'InvalidMessageError';
}

/** Over a rate limit: come back after `retryAfterMs`; never counts towards the DLQ. */
export class ThrottledError extends Error {
  override readonly name: string = 'ThrottledError';
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterMs = Math.max(0, Math.ceil(retryAfterMs));
  }
}

/**
 * Postgres SQLSTATEs that mean "try again": serialization and deadlock (40xxx), connection
 * exceptions (08xxx), too many connections, shutdown, lock not available, query cancelled
 * by statement_timeout, read-only transaction (25006: a failover's replica answering before
 * it is promoted). Everything else in class 22/23/42 is a bug or bad data.
 */
const RETRYABLE_PG_CODES = new Set([
  '25006',
  '40001',
  '40P01',
  '53000',
  '53100',
  '53200',
  '53300',
  '55P03',
  '57014',
  '57P01',
  '57P02',
  '57P03',
  '58000',
  '58030',
]);
const RETRYABLE_PG_CLASSES = ['08'];

/** AWS error names that mean the call may succeed later. */
const RETRYABLE_AWS_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'RequestLimitExceeded',
  'ServiceUnavailable',
  'InternalError',
  'InternalFailure',
  'RequestTimeout',
  'TimeoutError',
]);

export interface Classification {
  readonly kind: ErrorKind;
  /** For throttled errors: when to try again. */
  readonly retryAfterMs?: number;
  /** For unavailable: the dependency that is down. */
  readonly dependency?: Dependency;
  readonly reason: string;
}

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** Decides what happens to a message whose handler threw `error`. */
export function classifyError(error: unknown): Classification {
  const reason = describeError(error);
  const dependency = outageOf(error);
  if (dependency !== undefined) return { kind: ErrorKind.Unavailable, dependency, reason };
  if (error instanceof ThrottledError) {
    return { kind: ErrorKind.Throttled, retryAfterMs: error.retryAfterMs, reason };
  }
  if (error instanceof FatalError) return { kind: ErrorKind.Fatal, reason };
  if (error instanceof RetryableError) return { kind: ErrorKind.Retryable, reason };

  if (error instanceof Error) {
    if (error.name === 'AbortError' || error.name === 'TimeoutError') {
      return { kind: ErrorKind.Retryable, reason };
    }
    if (RETRYABLE_AWS_NAMES.has(error.name)) return { kind: ErrorKind.Retryable, reason };
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== undefined && (status >= 500 || status === 429)) {
      return { kind: ErrorKind.Retryable, reason };
    }
    // fetch wraps socket errors: the code sits on the cause.
    const code = codeOf(error) ?? codeOf(error.cause);
    if (code !== undefined) {
      if (NETWORK_ERROR_CODES.has(code)) return { kind: ErrorKind.Retryable, reason };
      if (/^[0-9A-Z]{5}$/.test(code)) {
        const retryable =
          RETRYABLE_PG_CODES.has(code) || RETRYABLE_PG_CLASSES.some((cls) => code.startsWith(cls));
        return { kind: retryable ? ErrorKind.Retryable : ErrorKind.Fatal, reason };
      }
    }
    // node-postgres' own connection failures (reset, terminated) carry no code.
    if (isPostgresOutage(error)) return { kind: ErrorKind.Retryable, reason };
    if (error instanceof SyntaxError || error instanceof TypeError || error instanceof RangeError) {
      // A programming or data error: retrying will not change the outcome... unless it is
      // fetch's "TypeError: fetch failed" around a network error, handled above by cause.
      if (error.message === 'fetch failed') return { kind: ErrorKind.Retryable, reason };
      return { kind: ErrorKind.Fatal, reason };
    }
  }
  return { kind: ErrorKind.Retryable, reason };
}
