import { type Config, ConfigError, loadConfig } from '../../contract/config.ts';
import { describeError } from '../errors.ts';
import { createLogger } from '../logging.ts';
import { telemetry } from '../telemetry/start.ts';
import type { AnyWorkerSpec } from '../worker.ts';
import { startHealthServer } from './health-server.ts';
import { type RunningWorker, startWorker } from './start-worker.ts';

/**
 * The whole process: exits 1 with one message on bad configuration; on SIGTERM/SIGINT
 * drains, flushes telemetry and exits 0; a second signal exits at once.
 */
export async function runWorker(definition: AnyWorkerSpec): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${definition.queue}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.LOG_LEVEL, name: definition.queue });
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
    startHealthServer(
      config.ADFLEET_HEALTH_PORT,
      () => {
        const reasons = stopping
          ? ['stopping']
          : (running?.queueWorker.notReadyReasons() ?? ['starting: waiting for dependencies']);
        return { alive: !stopping, ready: reasons.length === 0, reasons };
      },
      logger,
    );
  }
  running = await startWorker(definition, { config, logger });
}
