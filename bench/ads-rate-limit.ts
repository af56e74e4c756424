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
 * Then one more: 50 profiles at exactly 1 request/s with a bucket of 1 (the bulk benchmark's
 * largest profile), the fleet's limiter only, over minutes. Any two calls less than a second
 * apart at the sandbox cost a 429 and its pause, so it shows how close the limiter's own
 * pacing gets to a limit with no slack. `ADFLEET_BENCH_ADS=mixed|slow` runs one of the two.
 *
 * Targets: ≥ 0.9 of capacity with ≤ 2% 429s. Loopback only; about 85 s, then 160 s.
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

/** Who is called and how hard each profile is metered. */
interface Scenario {
  readonly profiles: number;
  /** Hidden capacity of the i-th profile, requests/s; the bucket holds `burst(rate)`. */
  readonly capacity: (index: number) => number;
  readonly burst: (rate: number) => number;
  readonly warmupMs: number;
  readonly measureMs: number;
}

/** 2–6 requests/s, bucket one second's worth: the fleet's mix. */
const MIXED: Scenario = {
  profiles: PROFILES,
  capacity: hiddenCapacity,
  burst: (rate) => rate,
  warmupMs: WARMUP_MS,
  measureMs: MEASURE_MS,
};
/**
 * Every profile at 1 request/s with a bucket of 1, as the bulk benchmark's largest profile: the
 * limiter's pacing is all there is, since any two calls under a second apart cost a 429.
 */
const SLOW: Scenario = {
  profiles: 50,
  capacity: () => 1,
  burst: () => 1,
  // A probe cycle at 1 request/s is about half a minute: the steady state needs minutes.
  warmupMs: 60_000,
  measureMs: 90_000,
};

async function runStrategy(
  label: string,
  mode: LimiterMode,
  redisUrl: string,
  scenario: Scenario = MIXED,
): Promise<StrategyResult> {
  const sandbox = await startAdsSandbox({
    sizes: {
      profiles: scenario.profiles,
      campaignsPerProfile: 1,
      adGroupsPerCampaign: 1,
      keywordsPerAdGroup: 1,
    },
    clientCapacity: { ratePerSecond: 100_000, burst: 100_000 },
  });
  try {
    const profileIds = sandbox.admin.profileIds();
    let capacityPerSecond = 0;
    profileIds.forEach((profileId, index) => {
      const rate = scenario.capacity(index);
      capacityPerSecond += rate;
      sandbox.admin.setProfileCapacity({ ratePerSecond: rate, burst: scenario.burst(rate) }, profileId);
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
        durationMs: scenario.warmupMs + scenario.measureMs + 10_000,
        loopsPerProfile: 1,
      }),
    );
    await sleep(scenario.warmupMs);
    const start = totals(sandbox.admin.stats());
    await sleep(scenario.measureMs);
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
  const only = process.env.ADFLEET_BENCH_ADS; // 'mixed' or 'slow': one scenario
  const results: StrategyResult[] = [];
  for (const [label, mode] of only === 'slow'
    ? []
    : ([
        ['adaptive, shared (fleet)', 'shared'],
        ['per-process only', 'per-process'],
        [`fixed guess (${FIXED_GUESS} req/s)`, 'fixed'],
      ] as const)) {
    results.push(await runStrategy(label, mode, redisUrl));
  }
  if (results.length > 0)
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
  if (only === 'mixed') return;
  const slow = await runStrategy('adaptive, shared: 1 req/s, burst 1', 'shared', redisUrl, SLOW);
  console.log(
    `slow profiles (${SLOW.profiles} at 1 req/s, burst 1, one loop per process; measured ` +
      `${SLOW.measureMs / 1000} s after ${SLOW.warmupMs / 1000} s): ` +
      `${slow.shareOfCapacity.toFixed(3)} of capacity, ${percent(slow.share429)} 429s, ${slow.requestsPerSecond.toFixed(1)} req/s sent`,
  );
}

if (import.meta.main) {
  await runAdsRateLimitBench();
}
