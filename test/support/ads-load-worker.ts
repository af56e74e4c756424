import { Redis } from 'ioredis';
import { SANDBOX_DEFAULTS } from '../../sandbox/ads-api/server.ts';
import { AdsApiClient } from '../../shared/ads/client.ts';
import { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import { ThrottledError } from '../../shared/errors.ts';
import { lwaFor } from './sandbox-lwa.ts';

/**
 * One "worker process" of the rate-limit benchmark and the fleet tests: the real client and
 * limiter, calling the Ads API for its profiles as fast as its limiter allows, until its time
 * is up or it gets SIGTERM. Prints one JSON line of counts when it stops.
 *
 *   node test/support/ads-load-worker.ts '<LoadWorkerSpec as JSON>'
 */

export type LimiterMode =
  /** The fleet's limiter: adaptive budgets shared by every process through Redis. */
  | 'shared'
  /** The same adaptive limiter, but each process keeps its own budgets (no sharing). */
  | 'per-process'
  /** One fleet-wide budget per profile at a fixed guessed rate (honours Retry-After, never adapts). */
  | 'fixed';

export interface LoadWorkerSpec {
  readonly apiUrl: string;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly mode: LimiterMode;
  /** Requests/s per profile for 'fixed'; the starting rate otherwise. */
  readonly profileRate: number;
  readonly profileIds: readonly number[];
  readonly durationMs: number;
  /** Concurrent call loops per profile in this process. */
  readonly loopsPerProfile: number;
}

export interface LoadWorkerReport {
  readonly calls: number;
  /** Calls that gave up waiting for budget (AdsThrottledError), retried by the loop. */
  readonly deferred: number;
  readonly errors: number;
  readonly firstError?: string;
}

async function run(spec: LoadWorkerSpec): Promise<LoadWorkerReport> {
  const redis = new Redis(spec.redisUrl, { lazyConnect: false });
  const limiter = new AdsRateLimiter({
    redis,
    keyPrefix: spec.mode === 'per-process' ? `${spec.keyPrefix}:process-${process.pid}` : spec.keyPrefix,
    clientId: 'adfleet-local',
    adaptive: spec.mode !== 'fixed',
    profileRate: { initialRate: spec.profileRate },
    // Above the sandbox's total capacity: the benchmark is about per-profile budgets.
    clientRatePerSecond: 5_000,
  });
  const client = new AdsApiClient({
    baseUrl: spec.apiUrl,
    clientId: SANDBOX_DEFAULTS.credentials.clientId,
    tokens: lwaFor(spec.apiUrl),
    limiter,
  });

  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), spec.durationMs);
  process.once('SIGTERM', () => stop.abort());
  let calls = 0;
  let deferred = 0;
  let errors = 0;
  let firstError: string | undefined;

  const loop = async (profileId: number) => {
    while (!stop.signal.aborted) {
      try {
        // One cheap call: the first page of one campaign.
        for await (const _campaign of client.campaigns(profileId, { maxResults: 1, signal: stop.signal }))
          break;
        calls += 1;
      } catch (error) {
        if (stop.signal.aborted) return;
        if (error instanceof ThrottledError) {
          deferred += 1;
          continue;
        }
        errors += 1;
        firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      }
    }
  };
  await Promise.all(
    spec.profileIds.flatMap((profileId) =>
      Array.from({ length: spec.loopsPerProfile }, () => loop(profileId)),
    ),
  );
  clearTimeout(timer);
  await limiter.close();
  redis.disconnect();
  return { calls, deferred, errors, ...(firstError === undefined ? {} : { firstError }) };
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadWorkerSpec;
  const report = await run(spec);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
