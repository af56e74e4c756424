import { setTimeout as sleep } from 'node:timers/promises';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import type { SandboxStats } from '../sandbox/ads-api/stats.ts';
import { startLoadWorker } from '../test/support/ads-load-fleet.ts';
import type { LimiterMode } from '../test/support/ads-load-worker.ts';

/**
 * Ads API rate limiting, side by side: 4 worker processes calling 200 profiles as fast as
 * their limiter lets them, against a sandbox whose per-profile capacity is hidden (2–6
 * requests/s, seeded, bucket size one second's worth). For each limiter it reports the
 * requests that succeeded as a share of the sandbox's true capacity, and the share of
 * requests answered 429, over a measuring window after a warm-up (a real fleet runs for
 * days; the window shows the steady state, the warm-up is the price of starting cold).
 *
 *  - adaptive, shared: the fleet's limiter (shared/ads/rate-limit.ts), budgets in Redis.
 *  - per-process only: the same adaptive limiter, each process with its own budgets.
 *  - fixed guess: one shared budget per profile at FIXED_GUESS requests/s, never adapting.
 *
 * Targets: ≥ 0.9 of capacity with ≤ 2% 429s. Loopback only; about 85 s.
 */

const WORKERS = 4;
const PROFILES = 200;
/** The documented guess a fixed limiter would be configured with: 5 requests/s per profile. */
const FIXED_GUESS = 5;
const WARMUP_MS = 10_000;
const MEASURE_MS = 15_000;

/** Hidden capacity of the i-th profile: 2, 3, 4, 5, 6 requests/s, shuffled by a fixed stride. */
function hiddenCapacity(index: number): number {
  return 2 + ((index * 7) % 5);
}

interface StrategyResult {
  readonly label: string;
  readonly shareOfCapacity: number;
  readonly share429: number;
  readonly requestsPerSecond: number;
  readonly capacityPerSecond: number;
}

function totals(stats: SandboxStats) {
  return { requests: stats.totals.requests, throttled: stats.totals.throttled, at: Date.now() };
}

async function runStrategy(label: string, mode: LimiterMode, redisUrl: string): Promise<StrategyResult> {
  const sandbox = await startAdsSandbox({
    sizes: { profiles: PROFILES, campaignsPerProfile: 1, adGroupsPerCampaign: 1, keywordsPerAdGroup: 1 },
    clientCapacity: { ratePerSecond: 100_000, burst: 100_000 },
  });
  try {
    const profileIds = sandbox.admin.profileIds();
    let capacityPerSecond = 0;
    profileIds.forEach((profileId, index) => {
      const rate = hiddenCapacity(index);
      capacityPerSecond += rate;
      sandbox.admin.setProfileCapacity({ ratePerSecond: rate, burst: rate }, profileId);
    });
    const keyPrefix = `bench-ads-${mode}-${process.pid}-${Date.now()}`;
    const workers = Array.from({ length: WORKERS }, () =>
      startLoadWorker({
        apiUrl: sandbox.url,
        redisUrl,
        keyPrefix,
        mode,
        profileRate: FIXED_GUESS,
        profileIds,
        durationMs: WARMUP_MS + MEASURE_MS + 10_000,
        loopsPerProfile: 1,
      }),
    );
    await sleep(WARMUP_MS);
    const start = totals(sandbox.admin.stats());
    await sleep(MEASURE_MS);
    const end = totals(sandbox.admin.stats());
    for (const worker of workers) worker.stop();
    const reports = await Promise.all(workers.map((worker) => worker.done));
    const failed = reports.find((report) => report.errors > 0);
    if (failed !== undefined) throw new Error(`${label}: a worker failed calls: ${failed.firstError}`);

    const seconds = (end.at - start.at) / 1000;
    const requests = end.requests - start.requests;
    const throttled = end.throttled - start.throttled;
    return {
      label,
      shareOfCapacity: (requests - throttled) / seconds / capacityPerSecond,
      share429: requests === 0 ? 0 : throttled / requests,
      requestsPerSecond: requests / seconds,
      capacityPerSecond,
    };
  } finally {
    await sandbox.close();
  }
}

function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

export async function runAdsRateLimitBench(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  console.log(
    `Ads API rate limiting: ${WORKERS} worker processes, ${PROFILES} profiles, hidden capacity 2–6 req/s per profile;` +
      ` measured ${MEASURE_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up. Target: ≥ 0.9 of capacity, ≤ 2% 429s.`,
  );
  const results: StrategyResult[] = [];
  for (const [label, mode] of [
    ['adaptive, shared (fleet)', 'shared'],
    ['per-process only', 'per-process'],
    [`fixed guess (${FIXED_GUESS} req/s)`, 'fixed'],
  ] as const) {
    results.push(await runStrategy(label, mode, redisUrl));
  }
  console.table(
    results.map((result) => ({
      limiter: result.label,
      'share of capacity': result.shareOfCapacity.toFixed(3),
      '429 share': percent(result.share429),
      'sent req/s': result.requestsPerSecond.toFixed(0),
      'capacity req/s': result.capacityPerSecond,
    })),
  );
  const fleet = results[0];
  if (fleet !== undefined) {
    const met = fleet.shareOfCapacity >= 0.9 && fleet.share429 <= 0.02;
    console.log(
      `adaptive shared: ${fleet.shareOfCapacity.toFixed(3)} of capacity, ${percent(fleet.share429)} 429s — target ${met ? 'met' : 'NOT met'}`,
    );
  }
}

if (import.meta.main) {
  await runAdsRateLimitBench();
}
