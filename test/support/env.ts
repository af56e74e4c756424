import { randomBytes } from 'node:crypto';
import { type Config, loadConfig } from '../../contract/config.ts';
import { readStackEnv } from '../../scripts/stack-env.ts';

/**
 * The local stack's environment: what `npm run stack` wrote to .stack/env, under whatever
 * the caller's environment sets explicitly (so CI or a developer can aim tests elsewhere).
 */
export function stackEnv(): Record<string, string> {
  const merged = readStackEnv();
  for (const [key, value] of Object.entries(process.env)) {
    if (
      value !== undefined &&
      (key.startsWith('ADFLEET_') || key.startsWith('AWS_') || key.endsWith('_URL'))
    ) {
      merged[key] = value;
    }
  }
  for (const required of ['AWS_ENDPOINT_URL', 'DATABASE_URL', 'REDIS_URL']) {
    if (merged[required] === undefined) {
      throw new Error(`${required} is not set and .stack/env is missing: run \`npm run stack\` first`);
    }
  }
  return merged;
}

/** A short, unique, valid resource prefix for one test file: its own queues, bus and keys. */
export function uniquePrefix(label: string): string {
  const clean = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 14);
  return `t-${clean}-${randomBytes(4).toString('hex')}`;
}

/** A validated fleet config for tests: the stack's environment plus overrides. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', ...stackEnv(), ...overrides });
}

/** The environment of a worker child process against this test file's own topology. */
export function workerEnv(prefix: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ...stackEnv(),
    ADFLEET_RESOURCE_PREFIX: prefix,
    LOG_LEVEL: 'info',
    OTEL_SDK_DISABLED: 'true',
    ADFLEET_DRAIN_TIMEOUT_MS: '10000',
    ADFLEET_POLL_WAIT_SECONDS: '2',
    ...overrides,
  };
}
