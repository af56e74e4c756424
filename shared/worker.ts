import { z } from 'zod';
import type { Config } from './config.ts';
import { InvalidMessageError } from './errors.ts';
import type { Logger } from './logging.ts';
import type { BatchEntry, SendOptions } from './messaging/producer.ts';
import type { FleetEvent } from './messaging/publisher.ts';
import type { Dispatch, MessageInfo } from './messaging/queue-worker.ts';
import type { WorkerMetrics } from './metrics.ts';
import type { QueueName, ResourceNames } from './topology.ts';

/**
 * What a worker is: the queue it consumes, the message types it accepts (each with its
 * schema, validated before any handler runs) and its handlers. Everything else — config,
 * telemetry, polling, retries, dead letters, draining — is the chassis' (shared/runtime.ts).
 */

/** Producing side of the fleet, bound to this stage's queues and bus. */
export interface Fleet {
  send(queue: QueueName, type: string, payload: unknown, options?: SendOptions): Promise<string>;
  sendBatch(queue: QueueName, messages: readonly BatchEntry[]): Promise<void>;
  publish(detailType: string, detail: Readonly<Record<string, unknown>>): Promise<void>;
  publishBatch(events: readonly FleetEvent[]): Promise<void>;
}

export interface WorkerResources {
  readonly config: Config;
  readonly logger: Logger;
  readonly fleet: Fleet;
  readonly names: ResourceNames;
  /** For worker-specific gauges (e.g. profile-sync freshness), written with the chassis' counters. */
  readonly metrics: WorkerMetrics;
}

export interface HandlerContext<Deps> {
  readonly deps: Deps;
  readonly logger: Logger;
  /** Aborted when the worker's drain deadline passes; the message is then released. */
  readonly signal: AbortSignal;
  readonly message: MessageInfo;
  readonly fleet: Fleet;
}

export interface MessageHandler<Schema extends z.ZodType, Deps> {
  readonly schema: Schema;
  handle(payload: z.output<Schema>, context: HandlerContext<Deps>): Promise<void>;
}

/** One message type: its schema and its handler (the payload is typed from the schema). */
export function on<Schema extends z.ZodType, Deps>(
  schema: Schema,
  handle: (payload: z.output<Schema>, context: HandlerContext<Deps>) => Promise<void>,
): MessageHandler<Schema, Deps> {
  return { schema, handle };
}

export interface WorkerDefinition<Deps> {
  /** Service name: `profile-sync`, `bulk-item`, `backfill-chunk`. */
  readonly name: string;
  readonly queue: QueueName;
  // biome-ignore lint/suspicious/noExplicitAny: each handler has its own schema type
  readonly handlers: Readonly<Record<string, MessageHandler<any, Deps>>>;
  /** Opens what handlers share (pools, clients); awaited before polling starts. */
  setup(resources: WorkerResources): Promise<Deps>;
  /** Closes what setup opened; runs after the drain. */
  teardown?(deps: Deps): Promise<void>;
}

export function defineWorker<Deps>(definition: WorkerDefinition<Deps>): WorkerDefinition<Deps> {
  return definition;
}

/** Routes a parsed message to its type's handler after validating the payload. */
export function createDispatch<Deps>(definition: WorkerDefinition<Deps>, deps: Deps, fleet: Fleet): Dispatch {
  return async (incoming, message, signal, logger) => {
    const handler = Object.hasOwn(definition.handlers, incoming.type)
      ? definition.handlers[incoming.type]
      : undefined;
    if (handler === undefined) {
      throw new InvalidMessageError(
        `unknown message type "${incoming.type}" on the ${definition.queue} queue`,
      );
    }
    const parsed = handler.schema.safeParse(incoming.payload);
    if (!parsed.success) {
      throw new InvalidMessageError(
        `invalid ${incoming.type}: ${z.prettifyError(parsed.error).replaceAll('\n', ' ')}`,
      );
    }
    await handler.handle(parsed.data, { deps, logger, signal, message, fleet });
  };
}
