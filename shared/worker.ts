import { z } from 'zod';
import type { Config } from '../contract/config.ts';
import { handlerDeadlineSeconds } from '../contract/deadlines.ts';
import { catalog, type MessageType, type messages, type Payload } from '../contract/events.ts';
import type { QueueName, ResourceNames, topology } from '../contract/topology.ts';
import type { Probe } from './breakers.ts';
import type { Dependency } from './dependencies.ts';
import { InvalidMessageError } from './errors.ts';
import type { Logger } from './logging.ts';
import type { Messenger } from './messaging/messenger.ts';
import type { Dispatch, MessageInfo } from './messaging/queue-worker.ts';
import type { WorkerMetrics } from './metrics.ts';

/**
 * What a worker is: the queue it consumes and one handler for each catalog type that
 * reaches that queue (contract/events.ts: events routed to it by the topology's rules,
 * messages whose queue it is). The compiler holds a definition to exactly that set, and
 * the dispatcher validates each payload against the catalog's schema before its handler
 * runs. Everything else — config, telemetry, polling, retries, dead letters, draining —
 * is the chassis' (shared/runtime/).
 */

/** Catalog events the topology routes to queue Q. */
type RoutedTo<Q extends QueueName> = Extract<
  (typeof topology.rules)[number],
  { readonly target: Q }
>['detailTypes'][number];
/** Catalog messages sent to queue Q. */
type SentTo<Q extends QueueName> = {
  [T in MessageType]: (typeof messages)[T]['queue'] extends Q ? T : never;
}[MessageType];
/** Every type that arrives on queue Q. */
export type InboundType<Q extends QueueName> = RoutedTo<Q> | SentTo<Q>;

export interface WorkerResources {
  readonly config: Config;
  readonly logger: Logger;
  readonly messenger: Messenger;
  readonly names: ResourceNames;
  /** For worker-specific gauges (e.g. profile-sync freshness), written with the chassis' counters. */
  readonly metrics: WorkerMetrics;
}

export interface HandlerContext<Deps> {
  readonly deps: Deps;
  readonly logger: Logger;
  /**
   * Aborted when the worker's drain deadline passes (the message is then released) or the
   * type's handler deadline passes (contract/deadlines.ts; the message then counts as failed).
   */
  readonly signal: AbortSignal;
  readonly message: MessageInfo;
  readonly messenger: Messenger;
}

export type Handler<T extends InboundType<QueueName>, Deps> = (
  payload: Payload<T>,
  context: HandlerContext<Deps>,
) => Promise<void>;

/** A catalog-typed worker, as each worker declares itself. */
export interface WorkerDefinition<Q extends QueueName, Deps> {
  /** The queue it consumes; the service is named after it. */
  readonly queue: Q;
  readonly handlers: { readonly [T in InboundType<Q>]: Handler<T, Deps> };
  /** Opens what handlers share (pools, clients); awaited before polling starts. */
  setup(resources: WorkerResources): Promise<Deps>;
  /** Closes what setup opened; runs after the drain. */
  teardown?(deps: Deps): Promise<void>;
  /**
   * How to tell that each dependency the handlers need (besides SQS and EventBridge, which
   * the chassis probes) answers again: its circuit breaker's half-open probe. A dependency
   * listed here that is down pauses the worker (shared/breakers.ts).
   */
  probes?(deps: Deps): Partial<Record<Dependency, Probe>>;
}

/** One message type as the chassis runs it: its schema and its handler. */
export interface MessageHandler<Deps> {
  readonly schema: z.ZodType;
  /** How long the handler may run (contract/deadlines.ts for catalog types). */
  readonly deadlineMs?: number;
  handle(payload: unknown, context: HandlerContext<Deps>): Promise<void>;
}

/**
 * A worker as the chassis runs it (shared/runtime/): each handler with its schema.
 * `defineWorker` builds one from the catalog; the chassis' own tests and benchmarks build
 * one with ad-hoc types through `on`.
 */
export interface WorkerSpec<Deps> {
  readonly queue: QueueName;
  readonly handlers: Readonly<Record<string, MessageHandler<Deps>>>;
  setup(resources: WorkerResources): Promise<Deps>;
  teardown?(deps: Deps): Promise<void>;
  probes?(deps: Deps): Partial<Record<Dependency, Probe>>;
}

// biome-ignore lint/suspicious/noExplicitAny: the runtime takes any worker
export type AnyWorkerSpec = WorkerSpec<any>;

export function defineWorker<Q extends QueueName, Deps>(
  definition: WorkerDefinition<Q, Deps>,
): WorkerSpec<Deps> {
  const handlers = Object.entries(
    definition.handlers as Readonly<Record<string, Handler<InboundType<Q>, Deps>>>,
  ).map(([type, handle]) => [
    type,
    {
      schema: catalog[type as InboundType<Q>].schema,
      handle: handle as MessageHandler<Deps>['handle'],
      deadlineMs: handlerDeadlineSeconds(type as InboundType<Q>) * 1000,
    },
  ]);
  return {
    queue: definition.queue,
    handlers: Object.fromEntries(handlers),
    setup: definition.setup,
    ...(definition.teardown === undefined ? {} : { teardown: definition.teardown }),
    ...(definition.probes === undefined ? {} : { probes: definition.probes }),
  };
}

/** A message type outside the catalog (the chassis' own tests and benchmarks). */
export function on<Schema extends z.ZodType, Deps>(
  schema: Schema,
  handle: (payload: z.output<Schema>, context: HandlerContext<Deps>) => Promise<void>,
  options: { readonly deadlineMs?: number } = {},
): MessageHandler<Deps> {
  return { schema, handle: handle as MessageHandler<Deps>['handle'], ...options };
}

/** Routes a parsed message to its type's handler after validating the payload. */
export function createDispatch<Deps>(spec: WorkerSpec<Deps>, deps: Deps, messenger: Messenger): Dispatch {
  return async (incoming, message, signal, logger) => {
    const handler = Object.hasOwn(spec.handlers, incoming.type) ? spec.handlers[incoming.type] : undefined;
    if (handler === undefined) {
      throw new InvalidMessageError(`unknown message type "${incoming.type}" on the ${spec.queue} queue`);
    }
    const parsed = handler.schema.safeParse(incoming.payload);
    if (!parsed.success) {
      throw new InvalidMessageError(
        `invalid ${incoming.type}: ${z.prettifyError(parsed.error).replaceAll('\n', ' ')}`,
      );
    }
    await handler.handle(parsed.data, { deps, logger, signal, message, messenger });
  };
}
