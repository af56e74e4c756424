import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { trace } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { type Config, syncFreshnessSloSeconds } from '../../contract/config.ts';
import { METRIC_NAMES } from '../../contract/metrics.ts';
import { existingProfiles } from '../../domain/sync/entities.ts';
import { freshnessSummary } from '../../domain/sync/freshness.ts';
import { describeTrigger, type SyncSettings } from '../../domain/sync/model.ts';
import { pullProfile, RunProgress, refreshProfiles } from '../../domain/sync/pull.ts';
import { requestSyncs } from '../../domain/sync/requests.ts';
import {
  claimRun,
  type FinishedRun,
  failRun,
  finishRun,
  type RunHolder,
  RunTakenOverError,
  releaseRun,
} from '../../domain/sync/runs.ts';
import { syncSettings } from '../../domain/sync/settings.ts';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import { createAdsClient } from '../../shared/ads/from-config.ts';
import type { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import { createPool } from '../../shared/db.ts';
import { classifyError, describeError, ErrorKind, FatalError, ThrottledError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { WorkerMetrics } from '../../shared/metrics.ts';
import { createRedis } from '../../shared/redis.ts';
import { defineWorker } from '../../shared/worker.ts';

/** How soon a duplicate of a request whose run is alive elsewhere looks again. */
const BUSY_RETRY_MS = 15_000;
/** A sync handed on past its slice comes back at once (the queue's shortest delay). */
const HAND_ON_DELAY_MS = 1_000;

/** The sync went on past its slice: the rest is handed on to a fresh message. */
class SliceEndedError extends Error {
  override readonly name = 'SliceEndedError';
}

interface ProfileSyncDeps {
  readonly db: pg.Pool;
  readonly redis: Redis;
  readonly ads: AdsApiClient;
  readonly limiter: AdsRateLimiter;
  readonly settings: SyncSettings;
  readonly keywordPartPages: number;
  readonly freshnessTimer: NodeJS.Timeout;
  /** This process as the holder of the runs it claims, and the runs it is running now. */
  readonly holder: RunHolder;
  readonly running: Set<number>;
}

/**
 * The freshness metrics go out on a timer, whether or not anything syncs: a dead schedule
 * shows as a growing age, and a dead fleet (or a database it cannot read) as missing data,
 * which the alarm treats as breaching.
 */
function startFreshnessTimer(config: Config, db: pg.Pool, metrics: WorkerMetrics, logger: Logger) {
  const sloSeconds = syncFreshnessSloSeconds(config);
  const sample = async () => {
    try {
      const summary = await freshnessSummary(db, sloSeconds);
      if (summary.oldestSyncAgeSeconds !== undefined)
        metrics.gauge(METRIC_NAMES.oldestProfileSyncAge, summary.oldestSyncAgeSeconds, 'Seconds');
      metrics.gauge(METRIC_NAMES.profilesPastSyncSlo, summary.pastSlo, 'Count');
      metrics.gauge(METRIC_NAMES.profilesFailingSync, summary.failing, 'Count');
      metrics.flush();
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'freshness metrics could not be read');
    }
  };
  void sample();
  const timer = setInterval(sample, config.ADFLEET_SYNC_FRESHNESS_INTERVAL_SECONDS * 1000);
  timer.unref();
  return timer;
}

/**
 * profile-sync: keeps Postgres in step with the Amazon Ads API, one profile per message.
 * The sync model (runs, checkpoints, removals, pile-up rules, freshness) is domain/sync/;
 * these are the handlers.
 *
 *  SyncAllProfilesRequested (nightly schedule, or `adfleet sync-all`) → refresh the profile
 *    list, then request a sync of every profile (one message each, except where one is
 *    already queued or running);
 *  BulkJobCompleted → request a re-sync of every profile the job touched;
 *  SyncProfile → claim the profile's run (or fold into the one running), page its entities
 *    into Postgres from the run's checkpoint, mark what the API no longer returns as
 *    removed, record the run, publish ProfileSynced.
 */
export const profileSyncWorker = defineWorker<'profile-sync', ProfileSyncDeps>({
  queue: 'profile-sync',
  async setup({ config, metrics, logger }) {
    const db = createPool(config.DATABASE_URL, {
      max: config.ADFLEET_CONCURRENCY + 1,
      applicationName: 'profile-sync',
    });
    const redis = createRedis(config.REDIS_URL);
    const { client, limiter } = createAdsClient(config, redis);
    const freshnessTimer = startFreshnessTimer(config, db, metrics, logger);
    const running = new Set<number>();
    const holder: RunHolder = {
      id: `${hostname()}:${process.pid}:${randomUUID()}`,
      holds: (runId) => running.has(runId),
    };
    return {
      db,
      redis,
      ads: client,
      limiter,
      settings: syncSettings(config),
      keywordPartPages: config.ADFLEET_SYNC_KEYWORD_PART_PAGES,
      freshnessTimer,
      holder,
      running,
    };
  },
  probes: ({ db, ads }) => ({
    postgres: () => db.query('SELECT 1'),
    'ads-api': () => ads.probe(),
    'ads-credentials': () => ads.probe(),
  }),
  async teardown({ db, redis, limiter, freshnessTimer }) {
    clearInterval(freshnessTimer);
    await db.end();
    await limiter.close(); // flushes the success counts still pending
    redis.disconnect();
  },
  handlers: {
    SyncAllProfilesRequested: async (request, { deps, messenger, logger, signal }) => {
      const profileIds = await refreshProfiles(deps.ads, deps.db, signal);
      const results = await requestSyncs(
        deps.db,
        messenger,
        profileIds,
        { kind: 'schedule', ...(request.reason === undefined ? {} : { reason: request.reason }) },
        deps.settings,
      );
      logger.info({ profiles: profileIds.length, ...tally(results) }, 'sync of every profile requested');
    },
    BulkJobCompleted: async (job, { deps, messenger, logger, signal }) => {
      // A job may touch a profile the fleet has not listed yet: refresh the list first.
      const known = await existingProfiles(deps.db, job.profileIds);
      if (job.profileIds.some((profileId) => !known.has(profileId)))
        await refreshProfiles(deps.ads, deps.db, signal);
      const results = await requestSyncs(
        deps.db,
        messenger,
        job.profileIds,
        { kind: 'bulk', jobId: job.jobId },
        deps.settings,
      );
      logger.info(
        { jobId: job.jobId, profiles: job.profileIds.length, ...tally(results) },
        're-sync of touched profiles requested',
      );
    },
    SyncProfile: async (request, { deps, messenger, logger, signal }) => {
      const { db, ads, settings } = deps;
      if ((await existingProfiles(db, [request.profileId])).size === 0) {
        const known = await refreshProfiles(ads, db, signal);
        if (!known.includes(request.profileId))
          throw new FatalError(`profile ${request.profileId} is not accessible with these credentials`);
      }
      const claim = await claimRun(
        db,
        {
          profileId: request.profileId,
          requestId: request.requestId,
          requestedAt: new Date(request.requestedAt),
          trigger: request.trigger,
          traceId: trace.getActiveSpan()?.spanContext().traceId,
        },
        settings,
        deps.holder,
      );
      const log = logger.child({ profileId: request.profileId });
      if (claim.kind === 'covered') {
        log.info({ runId: claim.byRunId }, 'sync request already served by a run that started after it');
        return;
      }
      if (claim.kind === 'folded') {
        log.info({ runId: claim.intoRunId }, 'sync request folded into the follow-up of the running sync');
        return;
      }
      if (claim.kind === 'busy') {
        // A duplicate delivery while this request's run is alive in another process: look
        // again soon (it may finish, or go stale), without spending the dead-letter budget.
        throw new ThrottledError(
          `sync run ${claim.runId} is running in another process`,
          Math.min(settings.staleAfterMs, BUSY_RETRY_MS),
        );
      }

      const { run } = claim;
      const started = performance.now();
      const progress = new RunProgress(run);
      if (run.resumeNote !== undefined) log.info({ runId: run.runId, note: run.resumeNote }, 'sync resumes');
      deps.running.add(run.runId);
      // A long sync (a large profile at a low rate limit) is listed in slices, each well
      // inside the handler deadline: past its slice it releases the run and is deferred,
      // which re-sends the message without spending a receive, and the next delivery
      // resumes from the checkpoint. Cut by the deadline instead, each attempt would spend
      // one of the queue's receives, and a sync needing more than a few would be
      // dead-lettered. The deferral budget (the chassis' maxDeferrals) still bounds it.
      const slice = new AbortController();
      const sliceTimer = setTimeout(() => slice.abort(new SliceEndedError('slice ended')), settings.sliceMs);
      let finished: FinishedRun;
      try {
        await pullProfile(ads, db, run, progress, {
          signal: AbortSignal.any([signal, slice.signal]),
          keywordPartPages: deps.keywordPartPages,
        });
        clearTimeout(sliceTimer);
        finished = await finishRun(db, messenger, run, progress.snapshot());
      } catch (error) {
        clearTimeout(sliceTimer);
        if (error instanceof RunTakenOverError) {
          log.warn({ runId: run.runId }, 'sync run taken over by another attempt: stopping');
          return;
        }
        if (slice.signal.aborted && !signal.aborted) {
          await releaseRun(db, run, progress.snapshot());
          log.info(
            { runId: run.runId, pages: progress.pages, sliceMs: settings.sliceMs },
            'sync handed on to the next message, to resume from its checkpoint',
          );
          throw new ThrottledError(
            `sync run ${run.runId} handed on after its ${Math.round(settings.sliceMs / 1000)} s slice (${progress.pages} pages so far)`,
            HAND_ON_DELAY_MS,
          );
        }
        const kind = classifyError(error).kind;
        if (signal.aborted || kind === ErrorKind.Throttled || kind === ErrorKind.Unavailable) {
          // Stopping (drain deadline), deferred by the rate limit, or a dependency is down:
          // not the profile's failure. The message comes back and resumes this run from its
          // checkpoint (with Postgres down the release cannot be written; the heartbeat then
          // goes stale, which counts the same).
          await releaseRun(db, run, progress.snapshot()).catch(() => {});
          log.info(
            { runId: run.runId, pages: progress.pages },
            'sync released, to resume from its checkpoint',
          );
        } else {
          await failRun(db, messenger, run, describeError(error), progress.snapshot());
          log.warn({ runId: run.runId, err: describeError(error) }, 'sync failed');
        }
        throw error;
      } finally {
        deps.running.delete(run.runId);
      }
      const durationMs = finished.finishedAt.getTime() - run.startedAt.getTime();
      const summary = {
        runId: run.runId,
        ...finished.counts,
        pages: progress.pages,
        durationMs: Math.max(0, durationMs),
        throttledMs: Math.round(progress.throttledMs),
      };
      await messenger.publish('ProfileSynced', {
        profileId: request.profileId,
        reason: describeTrigger(run.trigger),
        ...summary,
      });
      log.info(
        { ...summary, followUp: finished.followUp, handlerMs: Math.round(performance.now() - started) },
        'profile synced',
      );
    },
  },
});

function tally(results: readonly { outcome: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { outcome } of results) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}
