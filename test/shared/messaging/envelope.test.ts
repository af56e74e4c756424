import { describe, expect, it } from 'vitest';
import { parseIncoming } from '../../../shared/messaging/envelope.ts';

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
