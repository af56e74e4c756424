import { Redis } from 'ioredis';
import type pg from 'pg';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import { createAdsClient } from '../../shared/ads/from-config.ts';
import type { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import { createPool } from '../../shared/db.ts';
import { METRIC_NAMES, type WorkerMetrics } from '../../shared/metrics.ts';
import { defineWorker, type Fleet, on } from '../../shared/worker.ts';
import { BulkJobCompleted, SyncAllProfilesRequested, SyncProfile } from './messages.ts';
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
function enqueueSyncs(fleet: Fleet, profileIds: readonly number[], reason: string) {
  return fleet.sendBatch(
    'profile-sync',
    profileIds.map((profileId) => ({ type: 'SyncProfile', payload: { profileId, reason } })),
  );
}

export const profileSyncWorker = defineWorker<ProfileSyncDeps>({
  name: 'profile-sync',
  queue: 'profile-sync',
  async setup({ config, metrics }) {
    const db = createPool(config.DATABASE_URL, {
      max: config.ADFLEET_CONCURRENCY,
      applicationName: 'profile-sync',
    });
    const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: false });
    redis.on('error', () => {}); // reconnects by itself; calls fail meanwhile and are retried as messages
    const { client, limiter } = createAdsClient(config, redis);
    return { db, redis, ads: client, limiter, metrics, freshnessSampledAt: Number.NEGATIVE_INFINITY };
  },
  async teardown({ db, redis, limiter }) {
    await db.end();
    await limiter.close(); // flushes the success counts still pending
    redis.disconnect();
  },
  handlers: {
    SyncAllProfilesRequested: on(
      SyncAllProfilesRequested,
      async (request, { deps, fleet, logger, signal }) => {
        const profileIds = await refreshProfiles(deps.ads, deps.db, signal);
        await enqueueSyncs(fleet, profileIds, request.reason ?? 'sync all');
        logger.info({ profiles: profileIds.length }, 'sync of every profile enqueued');
      },
    ),
    BulkJobCompleted: on(BulkJobCompleted, async (job, { fleet, logger }) => {
      await enqueueSyncs(fleet, job.profileIds, `bulk job ${job.jobId}`);
      logger.info(
        { jobId: job.jobId, profiles: job.profileIds.length },
        're-sync of touched profiles enqueued',
      );
    }),
    SyncProfile: on(SyncProfile, async (request, { deps, fleet, logger, signal }) => {
      const counts = await syncProfile(deps.ads, deps.db, request.profileId, signal);
      await fleet.publish('ProfileSynced', {
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
    }),
  },
});
