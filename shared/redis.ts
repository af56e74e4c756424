import { Redis } from 'ioredis';

/**
 * Deadlines of every Redis connection: a command gets `commandTimeoutMs` (a hung or
 * black-holed Redis ends in an error, not a held message), a command issued while
 * disconnected fails after one reconnect attempt instead of queueing for long, and TCP
 * keepalive notices a peer that vanished. Redis only backs the Ads rate limiter, which
 * falls back to a local budget while Redis is down (shared/ads/rate-limit.ts).
 */
export const REDIS_DEADLINES = {
  commandTimeoutMs: 1_000,
  connectTimeoutMs: 2_000,
  keepAliveMs: 10_000,
} as const;

export function createRedis(url: string): Redis {
  const redis = new Redis(url, {
    commandTimeout: REDIS_DEADLINES.commandTimeoutMs,
    connectTimeout: REDIS_DEADLINES.connectTimeoutMs,
    keepAlive: REDIS_DEADLINES.keepAliveMs,
    maxRetriesPerRequest: 1,
    // Reconnects forever, at most 2 s apart: Redis coming back is noticed within seconds.
    retryStrategy: (times) => Math.min(times * 100, 2_000),
  });
  // Reconnects by itself; commands fail meanwhile and the rate limiter uses its local budget.
  redis.on('error', () => {});
  return redis;
}
