import { describe, expect, it } from 'vitest';
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
});
