import type { MessageAttributeValue } from '@aws-sdk/client-sqs';
import { type Context, context, propagation, ROOT_CONTEXT, type TextMapGetter } from '@opentelemetry/api';

/**
 * Where trace context travels:
 *  - SQS: `traceparent`/`tracestate` message attributes;
 *  - EventBridge: one reserved field of `detail`, because EventBridge → SQS delivery drops
 *    attributes and the SQS body is the event envelope.
 */
export const TRACE_DETAIL_FIELD = '_trace';

/** SQS allows 10 attributes per message. */
export const SQS_MAX_MESSAGE_ATTRIBUTES = 10;

/** Attributes the fleet itself may put on a message; a caller's own share what is left. */
export const FLEET_ATTRIBUTES = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  /** How often a throttled message was deferred (re-sent with a delay). */
  deferrals: 'adfleet-deferrals',
  /** How often the message was released (outage, drain) by re-sending it: see queue-worker.ts. */
  releases: 'adfleet-releases',
  /** On a dead-lettered copy: why, from which queue, after how many receives. */
  deadLetter: 'adfleet-dead-letter',
} as const;

export const CALLER_ATTRIBUTE_BUDGET = SQS_MAX_MESSAGE_ATTRIBUTES - Object.keys(FLEET_ATTRIBUTES).length;

export type MessageAttributes = Record<string, MessageAttributeValue>;
export type Carrier = Record<string, string>;

export class AttributeBudgetError extends Error {
  override readonly name = 'AttributeBudgetError';
}

/** Refuses — loudly — a message whose own attributes would crowd out the trace context. */
export function assertAttributeBudget(attributes: Readonly<Record<string, unknown>>) {
  const own = Object.keys(attributes).filter(
    (name) => !Object.values<string>(FLEET_ATTRIBUTES).includes(name),
  );
  if (own.length > CALLER_ATTRIBUTE_BUDGET) {
    throw new AttributeBudgetError(
      `message has ${own.length} attributes (${own.join(', ')}); SQS allows ${SQS_MAX_MESSAGE_ATTRIBUTES} and ` +
        `the fleet reserves ${SQS_MAX_MESSAGE_ATTRIBUTES - CALLER_ATTRIBUTE_BUDGET} for trace context and ` +
        `delivery bookkeeping, so at most ${CALLER_ATTRIBUTE_BUDGET} are left`,
    );
  }
}

/** The active trace context as a plain carrier (`traceparent`, `tracestate`). */
export function currentCarrier(ctx: Context = context.active()): Carrier {
  const carrier: Carrier = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** String values as SQS String attributes. */
export function stringAttributes(values: Readonly<Record<string, string>>): MessageAttributes {
  return Object.fromEntries(
    Object.entries(values).map(([name, value]) => [name, { DataType: 'String', StringValue: value }]),
  );
}

export function carrierToAttributes(carrier: Carrier): MessageAttributes {
  return stringAttributes(carrier);
}

export function attributesToCarrier(attributes: MessageAttributes | undefined): Carrier {
  const carrier: Carrier = {};
  for (const name of [FLEET_ATTRIBUTES.traceparent, FLEET_ATTRIBUTES.tracestate]) {
    const value = attributes?.[name]?.StringValue;
    if (value !== undefined) carrier[name] = value;
  }
  return carrier;
}

const carrierGetter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The producer's context from a carrier; the root context when there is none. */
export function extractContext(carrier: Carrier): Context {
  return propagation.extract(ROOT_CONTEXT, carrier, carrierGetter);
}
