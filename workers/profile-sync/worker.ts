import type { Redis } from 'ioredis';
import type pg from 'pg';
import { METRIC_NAMES } from '../../contract/metrics.ts';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import { createAdsClient } from '../../shared/ads/from-config.ts';
import type { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import { createPool } from '../../shared/db.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import type { WorkerMetrics } from '../../shared/metrics.ts';
import { createRedis } from '../../shared/redis.ts';
import { defineWorker } from '../../shared/worker.ts';
import { oldestSyncAgeSeconds } from './store.ts';
import { refreshProfiles, syncProfile } from './sync.ts';

interface ProfileSyncDeps {
  readonly db: pg.Pool;
  readonly redis: Redis;
  readonly ads: AdsApiClient;
  readonly limiter: AdsRateLimiter;
  readonly metrics: WorkerMetrics;
  /** When the freshness gauge was last read from the database (performance.now()). */
  freshnessSampledAt: number;
}

/**
 * The freshness gauge is a full scan of `profiles`, and the metrics go out once a minute:
 * read it at most that often, not once per synced profile.
 */
const FRESHNESS_SAMPLE_MS = 60_000;

/**
 * profile-sync: keeps Postgres in step with the Amazon Ads API, one profile per message.
 *
 *  SyncAllProfilesRequested (nightly schedule, or `adfleet sync-all`) → refresh the profile
 *    list, then one SyncProfile message per profile (batched sends);
 *  BulkJobCompleted (a bulk job finished) → one SyncProfile per profile it touched;
 *  SyncProfile → page campaigns, ad groups and keywords into Postgres inside the profile's
 *    fleet-wide rate limit, record the sync, publish ProfileSynced.
 */
/** One SyncProfile message per profile, all with the same reason. */
function enqueueSyncs(messenger: Messenger, profileIds: readonly number[], reason: string) {
  return messenger.sendBatch(
    'SyncProfile',
    profileIds.map((profileId) => ({ profileId, reason })),
  );
}

export const profileSyncWorker = defineWorker<'profile-sync', ProfileSyncDeps>({
  queue: 'profile-sync',
  async setup({ config, metrics }) {
    const db = createPool(config.DATABASE_URL, {
      max: config.ADFLEET_CONCURRENCY,
      applicationName: 'profile-sync',
    });
    const redis = createRedis(config.REDIS_URL);
    const { client, limiter } = createAdsClient(config, redis);
    return { db, redis, ads: client, limiter, metrics, freshnessSampledAt: Number.NEGATIVE_INFINITY };
  },
  probes: ({ db, ads }) => ({
    postgres: () => db.query('SELECT 1'),
    'ads-api': () => ads.probe(),
    'ads-credentials': () => ads.probe(),
  }),
  async teardown({ db, redis, limiter }) {
    await db.end();
    await limiter.close(); // flushes the success counts still pending
    redis.disconnect();
  },
  handlers: {
    SyncAllProfilesRequested: async (request, { deps, messenger, logger, signal }) => {
      const profileIds = await refreshProfiles(deps.ads, deps.db, signal);
      await enqueueSyncs(messenger, profileIds, request.reason ?? 'sync all');
      logger.info({ profiles: profileIds.length }, 'sync of every profile enqueued');
    },
    BulkJobCompleted: async (job, { messenger, logger }) => {
      await enqueueSyncs(messenger, job.profileIds, `bulk job ${job.jobId}`);
      logger.info(
        { jobId: job.jobId, profiles: job.profileIds.length },
        're-sync of touched profiles enqueued',
      );
    },
    SyncProfile: async (request, { deps, messenger, logger, signal }) => {
      const counts = await syncProfile(deps.ads, deps.db, request.profileId, signal);
      await messenger.publish('ProfileSynced', {
        profileId: request.profileId,
        reason: request.reason,
        ...counts,
      });
      if (performance.now() - deps.freshnessSampledAt >= FRESHNESS_SAMPLE_MS) {
        deps.freshnessSampledAt = performance.now();
        const age = await oldestSyncAgeSeconds(deps.db);
        if (age !== undefined) deps.metrics.gauge(METRIC_NAMES.oldestProfileSyncAge, age, 'Seconds');
      }
      logger.info({ profileId: request.profileId, ...counts }, 'profile synced');
    },
  },
});
