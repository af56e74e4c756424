import type { Message } from '@aws-sdk/client-sqs';
import { InvalidMessageError } from '../errors.ts';
import { attributesToCarrier, type Carrier, TRACE_DETAIL_FIELD } from './trace-context.ts';

/**
 * The two shapes a message body takes on a fleet queue:
 *
 *  - sent by a worker or the CLI: `{"type": "BackfillChunk", "payload": {...}}`, trace
 *    context in the message attributes;
 *  - delivered by an EventBridge rule: the event envelope
 *    `{"version", "id", "detail-type", "source", "time", "detail": {..., "_trace": {...}}}`,
 *    trace context in `detail._trace` (EventBridge delivery carries no attributes).
 *
 * Both become one `IncomingMessage`; validating the payload against its type's schema is
 * the dispatcher's job.
 */
export interface OutgoingMessage<Payload = unknown> {
  readonly type: string;
  readonly payload: Payload;
}

export interface IncomingMessage {
  readonly origin: 'sqs' | 'eventbridge';
  readonly type: string;
  readonly payload: unknown;
  readonly carrier: Carrier;
  /** EventBridge event id, for events. */
  readonly eventId?: string;
}

export function encodeBody(message: OutgoingMessage): string {
  return JSON.stringify({ type: message.type, payload: message.payload });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEventEnvelope(body: Record<string, unknown>): boolean {
  return typeof body['detail-type'] === 'string' && typeof body.source === 'string' && 'detail' in body;
}

/** Parses a received SQS message, or throws InvalidMessageError saying what is wrong with it. */
export function parseIncoming(message: Pick<Message, 'Body' | 'MessageAttributes'>): IncomingMessage {
  const raw = message.Body ?? '';
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    throw new InvalidMessageError(`body is not JSON: ${JSON.stringify(raw.slice(0, 80))}`);
  }
  if (!isRecord(body)) throw new InvalidMessageError('body is not a JSON object');

  const fromAttributes = attributesToCarrier(message.MessageAttributes);
  if (isEventEnvelope(body)) {
    if (!isRecord(body.detail)) throw new InvalidMessageError('event detail is not an object');
    const { [TRACE_DETAIL_FIELD]: traceField, ...detail } = body.detail;
    const fromDetail: Carrier = {};
    if (isRecord(traceField)) {
      for (const [key, value] of Object.entries(traceField)) {
        if (typeof value === 'string') fromDetail[key] = value;
      }
    }
    return {
      origin: 'eventbridge',
      type: body['detail-type'] as string,
      payload: detail,
      // Attributes win: a deferred copy of an event carries its consumer's context there.
      carrier: fromAttributes.traceparent === undefined ? fromDetail : fromAttributes,
      ...(typeof body.id === 'string' ? { eventId: body.id } : {}),
    };
  }
  if (typeof body.type !== 'string' || body.type === '') {
    throw new InvalidMessageError('body has no "type": neither a fleet message nor an EventBridge event');
  }
  return { origin: 'sqs', type: body.type, payload: body.payload, carrier: fromAttributes };
}
