import { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { resourceNames } from '../../contract/topology.ts';
import { backoffDelayMs } from '../../shared/backoff.ts';
import { classifyError, ErrorKind, FatalError, RetryableError, ThrottledError } from '../../shared/errors.ts';
import { parseIncoming } from '../../shared/messaging/envelope.ts';
import { QueueProducer } from '../../shared/messaging/producer.ts';
import { AttributeBudgetError, CALLER_ATTRIBUTE_BUDGET } from '../../shared/messaging/trace-context.ts';

describe('backoff', () => {
  it('grows, stays within [ceiling/2, ceiling], and is capped', () => {
    const policy = { baseMs: 1_000, capMs: 8_000 };
    expect(backoffDelayMs(1, policy, () => 0)).toBe(500);
    expect(backoffDelayMs(1, policy, () => 0.999)).toBe(999);
    expect(backoffDelayMs(3, policy, () => 0)).toBe(2_000);
    expect(backoffDelayMs(10, policy, () => 0.999)).toBeLessThanOrEqual(8_000);
    // Below the cap, the next delay never undercuts the previous one.
    for (let attempt = 1; attempt < 4; attempt += 1) {
      expect(backoffDelayMs(attempt + 1, policy, () => 0)).toBeGreaterThanOrEqual(
        backoffDelayMs(attempt, policy, () => 1),
      );
    }
    expect(backoffDelayMs(1, { ...policy, minMs: 900 }, () => 0)).toBe(900);
  });
});

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

describe('parseIncoming', () => {
  it('reads a fleet message with its trace context from attributes', () => {
    const parsed = parseIncoming({
      Body: JSON.stringify({ type: 'A', payload: { n: 1 } }),
      MessageAttributes: { traceparent: { DataType: 'String', StringValue: '00-abc-def-01' } },
    });
    expect(parsed).toEqual({
      origin: 'sqs',
      type: 'A',
      payload: { n: 1 },
      carrier: { traceparent: '00-abc-def-01' },
    });
  });

  it('unwraps an EventBridge envelope and takes the context from the reserved detail field', () => {
    const parsed = parseIncoming({
      Body: JSON.stringify({
        version: '0',
        id: 'ev-1',
        'detail-type': 'BulkJobSubmitted',
        source: 'adfleet',
        detail: { jobId: 'j', _trace: { traceparent: '00-t-s-01' } },
      }),
    });
    expect(parsed).toEqual({
      origin: 'eventbridge',
      type: 'BulkJobSubmitted',
      payload: { jobId: 'j' },
      carrier: { traceparent: '00-t-s-01' },
      eventId: 'ev-1',
    });
  });

  it('rejects what is neither', () => {
    expect(() => parseIncoming({ Body: 'nope' })).toThrow(/not JSON/);
    expect(() => parseIncoming({ Body: '[1]' })).toThrow(/not a JSON object/);
    expect(() => parseIncoming({ Body: '{"payload":{}}' })).toThrow(/no "type"/);
  });
});

describe('attribute budget', () => {
  it('refuses a message whose own attributes would crowd out the trace context', async () => {
    const sqs = new SQSClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' });
    const producer = new QueueProducer(sqs, resourceNames('unit'));
    const attributes = Object.fromEntries(
      Array.from({ length: CALLER_ATTRIBUTE_BUDGET + 1 }, (_, index) => [`a${index}`, 'v']),
    );
    // Refused before any request: the endpoint above does not exist.
    await expect(producer.send('bulk-item', { type: 'A', payload: {} }, { attributes })).rejects.toThrow(
      AttributeBudgetError,
    );
    await expect(producer.sendBatch('bulk-item', [{ type: 'A', payload: {}, attributes }])).rejects.toThrow(
      new RegExp(`at most ${CALLER_ATTRIBUTE_BUDGET} are left`),
    );
    sqs.destroy();
  });
});
