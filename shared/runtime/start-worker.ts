import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeEventBusCommand } from '@aws-sdk/client-eventbridge';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import type { Config } from '../../contract/config.ts';
import { resourceNames, topology } from '../../contract/topology.ts';
import { createAwsClients } from '../aws.ts';
import { backoffDelayMs } from '../backoff.ts';
import { DependencyBreakers } from '../breakers.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { createMessenger, type Messenger } from '../messaging/messenger.ts';
import { type HandledEvent, QueueWorker } from '../messaging/queue-worker.ts';
import { WorkerMetrics } from '../metrics.ts';
import { type AnyWorkerSpec, createDispatch } from '../worker.ts';
import { Heartbeat } from './heartbeat.ts';

/**
 * A worker in this process: its AWS clients, its messenger, its dependencies (setup), the
 * queue worker and the steps of a stop. The process around it — signals, exit codes,
 * health endpoints — is run-worker.ts; tests and the demo start workers in-process here.
 */

export interface RunningWorker {
  readonly queueWorker: QueueWorker;
  /** This process's row in worker_heartbeats; undefined when ADFLEET_HEARTBEAT_INTERVAL_MS is 0. */
  readonly heartbeat: Heartbeat | undefined;
  readonly metrics: WorkerMetrics;
  readonly messenger: Messenger;
  /** Drains (see QueueWorker.stop), then closes the worker's resources. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Long-poll wait; overrides ADFLEET_POLL_WAIT_SECONDS. */
  readonly waitTimeSeconds?: number;
  readonly onHandled?: (event: HandledEvent) => void;
  /**
   * Visibility timeout of each receive (the heartbeat extends it by as much every third of
   * it); defaults to the queue's in the topology. Tests of handlers that outlast it use a short one.
   */
  readonly visibilityTimeoutSeconds?: number;
}

/** Retries a start-up step until its dependency answers: a worker that starts before the emulator or the database comes up waits, not crash-loops. */
async function untilAvailable<T>(what: string, logger: Logger, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      const delay = backoffDelayMs(attempt, { baseMs: 500, capMs: 15_000, minMs: 250 });
      logger.warn({ err: describeError(error), retryInMs: delay }, `${what} not available yet`);
      await sleep(delay);
    }
  }
}

/** Starts a worker in this process and returns once it polls. */
export async function startWorker(definition: AnyWorkerSpec, options: StartOptions): Promise<RunningWorker> {
  const { config } = options;
  const logger = options.logger.child({ worker: definition.queue });
  const clients = createAwsClients(config);
  const names = resourceNames(config.ADFLEET_RESOURCE_PREFIX);
  const { messenger, producer } = createMessenger(clients, config);
  const metrics = new WorkerMetrics(definition.queue, logger);

  const deps = await untilAvailable('worker dependencies', logger, () =>
    definition.setup({ config, logger, messenger, names, metrics }),
  );
  const [queueUrl, deadLetterQueueUrl] = await untilAvailable('queue', logger, () =>
    Promise.all([producer.queueUrl(definition.queue), producer.deadLetterQueueUrl(definition.queue)]),
  );
  const spec = topology.queues[definition.queue];
  const breakers = new DependencyBreakers(
    {
      sqs: () =>
        clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] })),
      eventbridge: () => clients.events.send(new DescribeEventBusCommand({ Name: names.bus })),
      ...definition.probes?.(deps),
    },
    logger,
  );
  metrics.watchDependencies(() => breakers.open.length);
  const queueWorker = new QueueWorker({
    queueName: names.queue(definition.queue),
    queueUrl,
    deadLetterQueueUrl,
    sqs: clients.sqs,
    producer,
    dispatch: createDispatch(definition, deps, messenger),
    logger,
    concurrency: config.ADFLEET_CONCURRENCY,
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? spec.visibilityTimeoutSeconds,
    maxReceiveCount: spec.maxReceiveCount,
    waitTimeSeconds: options.waitTimeSeconds ?? config.ADFLEET_POLL_WAIT_SECONDS,
    breakers,
    handlerDeadlineMs: (type) =>
      Object.hasOwn(definition.handlers, type) ? definition.handlers[type]?.deadlineMs : undefined,
    onHandled: (event) => {
      metrics.record(event);
      heartbeat?.record(event);
      options.onHandled?.(event);
    },
  });
  const heartbeat =
    config.ADFLEET_HEARTBEAT_INTERVAL_MS > 0
      ? new Heartbeat({
          databaseUrl: config.DATABASE_URL,
          service: definition.queue,
          intervalMs: config.ADFLEET_HEARTBEAT_INTERVAL_MS,
          logger,
          state: () => {
            const reasons = queueWorker.notReadyReasons();
            return {
              ready: reasons.length === 0,
              notReadyReason: reasons.length === 0 ? null : reasons.join('; '),
              inFlight: queueWorker.inFlight,
              lastPollAt: queueWorker.lastReceiveAt,
            };
          },
        })
      : undefined;
  queueWorker.start();
  heartbeat?.start();
  logger.info(
    { queue: names.queue(definition.queue), concurrency: config.ADFLEET_CONCURRENCY },
    'worker started',
  );

  let stopping: Promise<void> | undefined;
  return {
    queueWorker,
    heartbeat,
    metrics,
    messenger,
    stop() {
      stopping ??= (async () => {
        // Every step runs even if one before it failed.
        const steps: Array<[string, () => Promise<void> | void]> = [
          ['heartbeat: draining', () => heartbeat?.draining()],
          ['drain', () => queueWorker.stop(config.ADFLEET_DRAIN_TIMEOUT_MS)],
          ['heartbeat', () => heartbeat?.stop()],
          ['teardown', () => definition.teardown?.(deps)],
          ['metrics', () => metrics.close()],
          ['aws clients', () => clients.destroy()],
        ];
        for (const [name, step] of steps) {
          try {
            await step();
          } catch (error) {
            logger.error({ err: describeError(error) }, `stop: ${name} failed`);
          }
        }
        logger.info('worker stopped');
      })();
      return stopping;
    },
  };
}
