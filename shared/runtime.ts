import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AwsClients, createAwsClients } from './aws.ts';
import { backoffDelayMs } from './backoff.ts';
import { type Config, ConfigError, loadConfig } from './config.ts';
import { describeError } from './errors.ts';
import { createLogger, type Logger } from './logging.ts';
import { QueueProducer } from './messaging/producer.ts';
import { EventPublisher } from './messaging/publisher.ts';
import { type HandledEvent, QueueWorker } from './messaging/queue-worker.ts';
import { WorkerMetrics } from './metrics.ts';
import { telemetry } from './telemetry/start.ts';
import { resourceNames, topology } from './topology.ts';
import { createDispatch, type Fleet, type WorkerDefinition } from './worker.ts';

/**
 * The process around a worker: config, logger, telemetry, AWS clients, the queue worker,
 * health endpoints, signals and exit codes. Workers only define what they handle
 * (shared/worker.ts); every entrypoint is `runWorker(definition)`.
 */

export interface RunningWorker {
  readonly queueWorker: QueueWorker;
  readonly metrics: WorkerMetrics;
  readonly fleet: Fleet;
  /** Drains (see QueueWorker.stop), then closes the worker's resources. Idempotent. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Long-poll wait; overrides ADFLEET_POLL_WAIT_SECONDS. */
  readonly waitTimeSeconds?: number;
  readonly onHandled?: (event: HandledEvent) => void;
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

export function createFleet(clients: AwsClients, config: Config): { fleet: Fleet; producer: QueueProducer } {
  const names = resourceNames(config.ADFLEET_RESOURCE_PREFIX);
  const producer = new QueueProducer(clients.sqs, names);
  const publisher = new EventPublisher(clients.events, names.bus);
  const fleet: Fleet = {
    send: (queue, type, payload, options) => producer.send(queue, { type, payload }, options),
    sendBatch: (queue, messages) => producer.sendBatch(queue, messages),
    publish: (detailType, detail) => publisher.publish(detailType, detail),
    publishBatch: (events) => publisher.publishBatch(events),
  };
  return { fleet, producer };
}

/** Starts a worker in this process and returns once it polls. */
export async function startWorker<Deps>(
  definition: WorkerDefinition<Deps>,
  options: StartOptions,
): Promise<RunningWorker> {
  const { config } = options;
  const logger = options.logger.child({ worker: definition.name });
  const clients = createAwsClients(config);
  const names = resourceNames(config.ADFLEET_RESOURCE_PREFIX);
  const { fleet, producer } = createFleet(clients, config);
  const metrics = new WorkerMetrics(definition.name, logger);

  const deps = await untilAvailable('worker dependencies', logger, () =>
    definition.setup({ config, logger, fleet, names, metrics }),
  );
  const [queueUrl, deadLetterQueueUrl] = await untilAvailable('queue', logger, () =>
    Promise.all([producer.queueUrl(definition.queue), producer.deadLetterQueueUrl(definition.queue)]),
  );
  const spec = topology.queues[definition.queue];
  const queueWorker = new QueueWorker({
    queueName: names.queue(definition.queue),
    queueUrl,
    deadLetterQueueUrl,
    sqs: clients.sqs,
    producer,
    dispatch: createDispatch(definition, deps, fleet),
    logger,
    concurrency: config.ADFLEET_CONCURRENCY,
    visibilityTimeoutSeconds: spec.visibilityTimeoutSeconds,
    maxReceiveCount: spec.maxReceiveCount,
    waitTimeSeconds: options.waitTimeSeconds ?? config.ADFLEET_POLL_WAIT_SECONDS,
    onHandled: (event) => {
      metrics.record(event);
      options.onHandled?.(event);
    },
  });
  queueWorker.start();
  logger.info(
    { queue: names.queue(definition.queue), concurrency: config.ADFLEET_CONCURRENCY },
    'worker started',
  );

  let stopping: Promise<void> | undefined;
  return {
    queueWorker,
    metrics,
    fleet,
    stop() {
      stopping ??= (async () => {
        // Every step runs even if one before it failed.
        const steps: Array<[string, () => Promise<void> | void]> = [
          ['drain', () => queueWorker.stop(config.ADFLEET_DRAIN_TIMEOUT_MS)],
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

/** GET /healthz (the process is alive and not stopping) and /readyz (polling, SQS reachable). */
function startHealthServer(port: number, health: () => { alive: boolean; ready: boolean }): Server {
  const server = createServer((request, response) => {
    const state = health();
    const ok = request.url === '/healthz' ? state.alive : request.url === '/readyz' ? state.ready : undefined;
    if (ok === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(state));
  });
  server.listen(port, '127.0.0.1');
  server.unref();
  return server;
}

/**
 * The whole process: exits 1 with one message on bad configuration; on SIGTERM/SIGINT
 * drains, flushes telemetry and exits 0; a second signal exits at once.
 */
export async function runWorker<Deps>(definition: WorkerDefinition<Deps>): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${definition.name}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.LOG_LEVEL, name: definition.name });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    void telemetry.shutdown().finally(() => process.exit(1));
  });
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: describeError(reason) }, 'unhandled rejection');
    void telemetry.shutdown().finally(() => process.exit(1));
  });

  let stopping = false;
  let running: RunningWorker | undefined;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without draining');
      process.exit(1);
    }
    stopping = true;
    logger.info(
      { signal, drainTimeoutMs: config.ADFLEET_DRAIN_TIMEOUT_MS },
      'stopping: draining in-flight messages',
    );
    await running?.stop();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  if (config.ADFLEET_HEALTH_PORT > 0) {
    startHealthServer(config.ADFLEET_HEALTH_PORT, () => ({
      alive: !stopping,
      ready: !stopping && (running?.queueWorker.ready ?? false),
    }));
  }
  running = await startWorker(definition, { config, logger });
}
