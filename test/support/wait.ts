import { vi } from 'vitest';

/**
 * How long vi.waitFor retries in these tests: real services (the emulator, Postgres, child
 * processes) answer within seconds, not vitest's one-second default.
 */
export const WAIT = { timeout: 30_000, interval: 200 } as const;

/**
 * Polls a record until `predicate` holds. A named wait rather than a bare vi.waitFor: on
 * timeout it throws `failure(last)` — the record's whole last state (and whatever else the
 * caller adds), not one field.
 */
export async function waitForRecord<T>(
  load: () => Promise<T | undefined>,
  predicate: (record: T) => boolean,
  options: {
    timeoutMs: number;
    intervalMs: number;
    failure: (last: T | undefined) => Promise<Error> | Error;
  },
): Promise<T> {
  let last: T | undefined;
  try {
    return await vi.waitFor(
      async () => {
        last = await load();
        if (last === undefined || !predicate(last)) throw new Error('not yet');
        return last;
      },
      { timeout: options.timeoutMs, interval: options.intervalMs },
    );
  } catch {
    throw await options.failure(last);
  }
}
