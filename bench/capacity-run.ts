// One measured workload of the capacity benchmark, in a process of its own so the CPU read
// (process.cpuUsage) is the worker code's alone, not the sandbox's or the parent's.
// Usage: node bench/capacity-run.ts <sync|bulk> '<RunSpec as JSON>'
// Prints one JSON line (CapacityRunReport) when done.
import { Redis } from 'ioredis';
import { entityIds, upsertPage } from '../domain/sync/entities.ts';
import { ENTITY_KINDS } from '../domain/sync/model.ts';
import { PAGE_SIZE, refreshProfiles } from '../domain/sync/pull.ts';
import { SANDBOX_DEFAULTS } from '../sandbox/ads-api/server.ts';
import { AdsApiClient } from '../shared/ads/client.ts';
import { AdsRateLimiter } from '../shared/ads/rate-limit.ts';
import type { KeywordUpdate } from '../shared/ads/types.ts';
import { createPool } from '../shared/db.ts';
import { ThrottledError } from '../shared/errors.ts';
import { lwaFor } from '../test/support/sandbox-lwa.ts';

export interface CapacityRunSpec {
  readonly apiUrl: string;
  readonly redisUrl: string;
  readonly databaseUrl: string;
  readonly keyPrefix: string;
  readonly durationMs: number;
  /** Handlers at once, as one task holds (infra/workers.ts concurrency). */
  readonly concurrency: number;
  readonly pageSize: number;
  readonly batchSize: number;
}

export interface CapacityRunReport {
  readonly units: number;
  readonly calls: number;
  readonly cpuMs: number;
  readonly wallMs: number;
  /** Sum of each call's (or page's) own wall time, for the per-call latency. */
  readonly callMs: number;
  readonly throttled: number;
  readonly errors: number;
  readonly firstError?: string;
}

const [mode, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson ?? '') as CapacityRunSpec;

const redis = new Redis(spec.redisUrl);
const limiter = new AdsRateLimiter({
  redis,
  keyPrefix: spec.keyPrefix,
  clientId: SANDBOX_DEFAULTS.credentials.clientId,
  adaptive: true,
  // The sandbox is set far above these: the run measures CPU per call, not the limits.
  profileRate: { initialRate: 200 },
  clientRatePerSecond: 5_000,
});
const ads = new AdsApiClient({
  baseUrl: spec.apiUrl,
  clientId: SANDBOX_DEFAULTS.credentials.clientId,
  tokens: lwaFor(spec.apiUrl),
  limiter,
});
const db = createPool(spec.databaseUrl, { max: spec.concurrency, applicationName: 'adfleet-bench' });
const signal = new AbortController().signal;
const profileIds = (await ads.listProfiles({ signal })).map((profile) => profile.profileId);

let units = 0;
let calls = 0;
let callMs = 0;
let throttled = 0;
let errors = 0;
let firstError: string | undefined;
const noteError = (error: unknown) => {
  if (error instanceof ThrottledError) {
    throttled += 1;
    return;
  }
  errors += 1;
  firstError ??= error instanceof Error ? `${error.name}: ${error.message}` : String(error);
};

/** The keyword ids of every profile, read before the measured window starts. */
async function keywordIds(): Promise<Map<number, string[]>> {
  const byProfile = new Map<number, string[]>();
  for (const profileId of profileIds) {
    const ids: string[] = [];
    for await (const keyword of ads.keywords(profileId, { maxResults: 1_000, signal })) {
      ids.push(keyword.keywordId);
      if (ids.length === spec.batchSize) break;
    }
    byProfile.set(profileId, ids);
  }
  return byProfile;
}

async function measure(work: (profileId: number, round: number) => Promise<void>) {
  let next = 0;
  const startedAt = performance.now();
  const cpuAtStart = process.cpuUsage();
  const deadline = startedAt + spec.durationMs;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < deadline) {
        const index = next++;
        const profileId = profileIds[index % profileIds.length] as number;
        try {
          await work(profileId, index);
          units += 1;
        } catch (error) {
          noteError(error);
        }
      }
    }),
  );
  const cpu = process.cpuUsage(cpuAtStart);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - startedAt };
}

let timing: { cpuMs: number; wallMs: number };
/**
 * One profile's sync as domain/sync/pull.ts does it, page by page: list the page, compute
 * its ids, upsert it. The run's bookkeeping (claim, checkpoint row, finish) is left out.
 */
async function syncPages(profileId: number): Promise<number> {
  let pages = 0;
  for (const kind of ENTITY_KINDS) {
    for await (const page of ads.pages(kind, profileId, { maxResults: PAGE_SIZE, signal })) {
      entityIds(kind, page.items);
      await upsertPage(db, kind, profileId, page.items);
      pages += 1;
    }
  }
  return pages;
}

if (mode === 'sync') {
  // Warm-up: the profile rows and the first insert of every entity, outside the window (a
  // nightly sync mostly finds its rows already there).
  await refreshProfiles(ads, db, signal);
  for (const profileId of profileIds) await syncPages(profileId);
  timing = await measure(async (profileId) => {
    const started = performance.now();
    // Read after the await: `calls += await …` would add to a stale total under concurrency.
    const pages = await syncPages(profileId);
    calls += pages;
    callMs += performance.now() - started;
  });
} else if (mode === 'bulk') {
  const ids = await keywordIds();
  timing = await measure(async (profileId, round) => {
    const updates: KeywordUpdate[] = (ids.get(profileId) ?? []).map((keywordId, index) => ({
      keywordId,
      // A different bid every round, so every item is a real change.
      bid: 0.5 + ((round + index) % 100) / 100,
    }));
    const started = performance.now();
    await ads.updateKeywords(profileId, updates, { signal });
    callMs += performance.now() - started;
    calls += 1;
  });
} else {
  throw new Error(`unknown mode ${mode}; known: sync, bulk`);
}

await limiter.close();
redis.disconnect();
await db.end();
const report: CapacityRunReport = {
  units,
  calls,
  ...timing,
  callMs,
  throttled,
  errors,
  ...(firstError === undefined ? {} : { firstError }),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
