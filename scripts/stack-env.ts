import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';

/** Where `npm run stack` writes the environment a worker, the CLI, tests and benchmarks need. */
export const STACK_ENV_FILE = fileURLToPath(new URL('../.stack/env', import.meta.url));

/** The stack's environment as `npm run stack` last wrote it; empty when it never ran. */
export function readStackEnv(): Record<string, string> {
  if (!existsSync(STACK_ENV_FILE)) return {};
  return parseEnv(readFileSync(STACK_ENV_FILE, 'utf8')) as Record<string, string>;
}
