import { z } from 'zod';
import type { Config } from '../../contract/config.ts';
import { type EventType, events, type MessageType, messages, type PayloadIn } from '../../contract/events.ts';
import { resourceNames } from '../../contract/topology.ts';
import type { AwsClients } from '../aws.ts';
import { FatalError } from '../errors.ts';
import { QueueProducer, type SendOptions } from './producer.ts';
import { EventPublisher } from './publisher.ts';

/**
 * The producing side of messaging, typed from the event catalog (contract/events.ts):
 * `send` puts a queue message on the queue the catalog names for its type, `publish` puts
 * an event on the bus. A payload is checked against its type's schema before it leaves the
 * process, so a producer bug is a FatalError at the producer, not a dead letter at the
 * consumer.
 */
export interface Messenger {
  send<T extends MessageType>(type: T, payload: PayloadIn<T>, options?: SendOptions): Promise<string>;
  /** Any number of messages of one type, in batched sends. */
  sendBatch<T extends MessageType>(
    type: T,
    payloads: readonly PayloadIn<T>[],
    options?: SendOptions,
  ): Promise<void>;
  publish<T extends EventType>(type: T, detail: PayloadIn<T>): Promise<void>;
  publishBatch<T extends EventType>(type: T, details: readonly PayloadIn<T>[]): Promise<void>;
}

function checked(type: string, schema: z.ZodType, payload: unknown): Record<string, unknown> {
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    throw new FatalError(
      `refusing to send an invalid ${type}: ${z.prettifyError(parsed.error).replaceAll('\n', ' ')}`,
    );
  }
  return parsed.data as Record<string, unknown>;
}

export function createMessenger(
  clients: AwsClients,
  config: Pick<Config, 'ADFLEET_RESOURCE_PREFIX'>,
): { messenger: Messenger; producer: QueueProducer } {
  const names = resourceNames(config.ADFLEET_RESOURCE_PREFIX);
  const producer = new QueueProducer(clients.sqs, names);
  const publisher = new EventPublisher(clients.events, names.bus);
  const messenger: Messenger = {
    send(type, payload, options) {
      const spec = messages[type];
      return producer.send(spec.queue, { type, payload: checked(type, spec.schema, payload) }, options);
    },
    sendBatch(type, payloads, options = {}) {
      const spec = messages[type];
      return producer.sendBatch(
        spec.queue,
        payloads.map((payload) => ({ type, payload: checked(type, spec.schema, payload), ...options })),
      );
    },
    publish(type, detail) {
      return publisher.publish(type, checked(type, events[type].schema, detail));
    },
    publishBatch(type, details) {
      return publisher.publishBatch(
        details.map((detail) => ({ detailType: type, detail: checked(type, events[type].schema, detail) })),
      );
    },
  };
  return { messenger, producer };
}
