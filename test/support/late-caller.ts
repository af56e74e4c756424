/**
 * A caller whose event loop is stalled at the moment its slot comes (a worker thread, so the
 * test's own loop stays on time): it takes a call now, books the next slot, and blocks its
 * thread from `blockAtMs` for `blockForMs`, so its timer fires late. Posts
 * `{ first, second }`, the epoch ms at which `acquire` let each call go.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';

export interface LateCallerSpec {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly profileId: number;
  readonly ratePerSecond: number;
  readonly blockAtMs: number;
  readonly blockForMs: number;
}

const spec = workerData as LateCallerSpec;
const redis = new Redis(spec.redisUrl, { maxRetriesPerRequest: 2 });
const limiter = new AdsRateLimiter({
  redis,
  keyPrefix: spec.keyPrefix,
  clientId: 'late-caller',
  adaptive: false,
  profileRate: { initialRate: spec.ratePerSecond },
});
await limiter.acquire(spec.profileId);
const first = Date.now();
parentPort?.postMessage({ first });
setTimeout(() => {
  const until = Date.now() + spec.blockForMs;
  // Blocks the thread on purpose: a task whose event loop is busy elsewhere.
  while (Date.now() < until) {}
}, spec.blockAtMs);
await limiter.acquire(spec.profileId);
parentPort?.postMessage({ first, second: Date.now() });
await limiter.close();
redis.disconnect();
