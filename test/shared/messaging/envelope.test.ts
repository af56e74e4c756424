import { describe, expect, it } from 'vitest';
import { parseIncoming } from '../../../shared/messaging/envelope.ts';
import {
  eventBridgeBody,
  fleetMessageBody,
  SANDBOX_PROFILE_IDS,
  sqsMessage,
} from '../../support/factories.ts';

describe('parseIncoming', () => {
  it('reads a fleet message with its trace context from attributes', () => {
    const requestId = '6f1c2b9e-3d4a-4f5b-8c7d-0e1f2a3b4c5d';
    const requestedAt = '2026-12-01T03:00:00.000Z';
    const body = fleetMessageBody('SyncProfile', { requestId, requestedAt, trigger: { kind: 'schedule' } });
    const parsed = parseIncoming(sqsMessage(body, { traceparent: '00-abc-def-01' }));
    expect(parsed).toEqual({
      origin: 'sqs',
      type: 'SyncProfile',
      payload: { profileId: SANDBOX_PROFILE_IDS[0], requestId, requestedAt, trigger: { kind: 'schedule' } },
      carrier: { traceparent: '00-abc-def-01' },
    });
  });

  it('unwraps an EventBridge envelope and takes the context from the reserved detail field', () => {
    const body = eventBridgeBody('BulkJobSubmitted', {}, { traceparent: '00-t-s-01' });
    const { id, detail } = JSON.parse(body) as { id: string; detail: { jobId: string } };
    expect(parseIncoming(sqsMessage(body))).toEqual({
      origin: 'eventbridge',
      type: 'BulkJobSubmitted',
      payload: { jobId: detail.jobId },
      carrier: { traceparent: '00-t-s-01' },
      eventId: id,
    });
  });

  it('rejects what is neither', () => {
    expect(() => parseIncoming({ Body: 'nope' })).toThrow(/not JSON/);
    expect(() => parseIncoming({ Body: '[1]' })).toThrow(/not a JSON object/);
    expect(() => parseIncoming({ Body: '{"payload":{}}' })).toThrow(/no "type"/);
  });
});
