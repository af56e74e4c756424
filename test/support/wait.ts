/**
 * How long vi.waitFor retries in these tests: real services (the emulator, Postgres, child
 * processes) answer within seconds, not vitest's one-second default.
 */
export const WAIT = { timeout: 30_000, interval: 200 } as const;
