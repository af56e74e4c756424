import { describe, expect, it } from 'vitest';
import { isPostgresOutage, tagOutage } from '../../shared/dependencies.ts';
import { classifyError, ErrorKind, FatalError, RetryableError, ThrottledError } from '../../shared/errors.ts';

describe('classifyError', () => {
  it('maps the fleet vocabulary and foreign errors to retry, throttle or dead-letter', () => {
    expect(classifyError(new RetryableError('x')).kind).toBe(ErrorKind.Retryable);
    expect(classifyError(new FatalError('x')).kind).toBe(ErrorKind.Fatal);
    expect(classifyError(new ThrottledError('x', 1_500))).toMatchObject({
      kind: ErrorKind.Throttled,
      retryAfterMs: 1_500,
    });
    expect(classifyError(Object.assign(new Error('deadlock'), { code: '40P01' })).kind).toBe(
      ErrorKind.Retryable,
    );
    expect(classifyError(Object.assign(new Error('conn'), { code: '08006' })).kind).toBe(ErrorKind.Retryable);
    expect(classifyError(Object.assign(new Error('unique'), { code: '23505' })).kind).toBe(ErrorKind.Fatal);
    expect(
      classifyError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } })).kind,
    ).toBe(ErrorKind.Retryable);
    expect(classifyError(Object.assign(new Error('x'), { name: 'ThrottlingException' })).kind).toBe(
      ErrorKind.Retryable,
    );
    expect(classifyError(new TypeError('undefined is not a function')).kind).toBe(ErrorKind.Fatal);
    expect(classifyError('a string').kind).toBe(ErrorKind.Retryable);
  });

  it('retries a failover (25006 read-only) and a reset connection, and calls them Postgres outages', () => {
    const readOnly = Object.assign(new Error('cannot execute UPDATE in a read-only transaction'), {
      code: '25006',
    });
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const terminated = new Error('Connection terminated unexpectedly');
    for (const error of [readOnly, reset, terminated]) {
      expect(classifyError(error).kind).toBe(ErrorKind.Retryable);
      expect(isPostgresOutage(error)).toBe(true);
    }
    // A statement timeout or a held lock is the message's own failure, not an outage.
    expect(isPostgresOutage(Object.assign(new Error('canceling statement'), { code: '57014' }))).toBe(false);
    expect(isPostgresOutage(Object.assign(new Error('lock'), { code: '55P03' }))).toBe(false);
  });

  it('classifies an outage-tagged error, even a fatal one, as unavailable with its dependency', () => {
    const refused = tagOutage(new FatalError('LWA refused the credentials'), 'ads-credentials');
    expect(classifyError(refused)).toMatchObject({
      kind: ErrorKind.Unavailable,
      dependency: 'ads-credentials',
    });
    const wrapped = new RetryableError('sync failed', {
      cause: tagOutage(new Error('ECONNREFUSED'), 'postgres'),
    });
    expect(classifyError(wrapped)).toMatchObject({ kind: ErrorKind.Unavailable, dependency: 'postgres' });
  });
});
