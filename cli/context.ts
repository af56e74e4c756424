import { trace } from '@opentelemetry/api';
import { InvalidArgumentError } from 'commander';
import type pg from 'pg';
import { type Config, ConfigError, loadConfig } from '../contract/config.ts';
import { type AwsClients, createAwsClients } from '../shared/aws.ts';
import { createPool } from '../shared/db.ts';
import { describeError } from '../shared/errors.ts';
import type { Messenger } from '../shared/messaging/messenger.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import type { QueueProducer } from '../shared/messaging/producer.ts';
import { telemetry } from '../shared/telemetry/start.ts';

export interface CommandContext {
  readonly config: Config;
  readonly messenger: Messenger;
  /** The AWS clients behind `messenger`, for commands that work on queues directly. */
  readonly clients: AwsClients;
  /** Queue URLs by logical name, and raw sends. */
  readonly producer: QueueProducer;
  /** Opened on first use. */
  db(): pg.Pool;
  readonly traceId: string;
}

const tracer = trace.getTracer('adfleet.cli');

/** A command's output and its own exit code (e.g. `status`: 2 when something needs a human). */
export interface CommandResult {
  readonly output: string;
  readonly exitCode: number;
}

/**
 * Runs one CLI command inside a root span (`adfleet <name>`), prints its result and the
 * trace id, and exits 0 (or the result's own code) — or prints the error and exits 1.
 * Configuration errors name every bad variable, like the workers.
 */
/** What a command prints; a non-zero `exitCode` says "look here" without being an error (e.g. `sync status --stale`). */
export interface CommandOutput {
  readonly output: string;
  readonly exitCode: number;
}

export async function runCommand(
  name: string,
  command: (context: CommandContext) => Promise<string | CommandResult | undefined>,
) {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    process.stderr.write(`adfleet: ${error instanceof ConfigError ? error.message : describeError(error)}\n`);
    process.exit(1);
  }
  const clients = createAwsClients(config);
  let pool: pg.Pool | undefined;
  let exitCode = 0;
  await tracer.startActiveSpan(`adfleet ${name}`, async (span) => {
    const { messenger, producer } = createMessenger(clients, config);
    try {
      const result = await command({
        config,
        messenger,
        clients,
        producer,
        db: () => {
          pool ??= createPool(config.DATABASE_URL, { max: 2, applicationName: 'adfleet-cli' });
          return pool;
        },
        traceId: span.spanContext().traceId,
      });
      if (typeof result === 'string') process.stdout.write(`${result}\n`);
      else if (result !== undefined) {
        process.stdout.write(`${result.output}\n`);
        exitCode = result.exitCode;
      }
    } catch (error) {
      span.recordException(error as Error);
      process.stderr.write(`adfleet ${name}: ${describeError(error)}\n`);
      exitCode = 1;
    } finally {
      span.end();
    }
  });
  await pool?.end();
  clients.destroy();
  await telemetry.shutdown();
  process.exit(exitCode);
}

/** Option parser: a positive integer, or the option's error. */
export function positiveInt(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer');
  return parsed;
}
