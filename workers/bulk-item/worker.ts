import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../../contract/config.ts';
import {
  type Claim,
  type ClaimedItem,
  claimBatch,
  claimNextDue,
  type ItemOutcome,
  markDue,
  recordOutcomes,
  releaseItems,
} from '../../domain/bulk/apply.ts';
import { publishOutbox } from '../../domain/bulk/completion.ts';
import { dispatchJob } from '../../domain/bulk/dispatch.ts';
import type { CampaignChange, KeywordChange } from '../../domain/bulk/rows.ts';
import { EntityType, ItemStatus } from '../../domain/bulk/status.ts';
import { type Sweeper, type SweepSettings, startSweeper } from '../../domain/bulk/sweep.ts';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import { createAdsClient } from '../../shared/ads/from-config.ts';
import type { ItemResult } from '../../shared/ads/multi-status.ts';
import type { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import { createPool } from '../../shared/db.ts';
import { Dependency, outageOf } from '../../shared/dependencies.ts';
import { describeError, ThrottledError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { createRedis } from '../../shared/redis.ts';
import { defineWorker, type WorkerSpec } from '../../shared/worker.ts';
import { outcomesOfCallFailure, outcomesOfResults, type RetryPolicy, retryBackoff } from './outcomes.ts';

/**
 * bulk-item: applies bulk jobs (domain/bulk/) through the Ads API.
 *
 *  BulkJobSubmitted → dispatch: the job's items, grouped per profile and entity type into
 *    batches of ADFLEET_BULK_BATCH_SIZE (one Ads call each), go out as BulkItemBatch
 *    messages carrying item ids only (domain/bulk/dispatch.ts).
 *  BulkItemBatch → claim the items under a lease (domain/bulk/apply.ts), one PUT
 *    /sp/keywords or /sp/campaigns, each item's outcome from the 207 by index
 *    (outcomes.ts), recorded under the lease; the batch that finishes the job writes
 *    BulkJobCompleted to the outbox in the same transaction and publishes it after commit.
 *
 * Fairness: a profile may have ADFLEET_BULK_PROFILE_IN_FLIGHT batches applying at once
 * across the fleet. A batch over that cap is deferred (ThrottledError: re-sent with a delay,
 * no DLQ budget spent) instead of waiting in a handler slot, and so is one whose profile's
 * rate budget would keep it waiting longer than BULK_MAX_THROTTLE_WAIT_MS: the slots go to
 * the profiles that can make progress, so a small job is not queued behind a big one.
 *
 * Chaining: a handler that has applied a batch of a busy profile (its message was a full
 * batch, so the profile likely has more; another batch of it was in flight; or one was
 * deferred here lately) goes on claiming that profile's due items of the
 * job (claimNextDue), one batch at a time for up to CHAIN_BUDGET_MS, while the profile has
 * a free slot. Without it a freed slot waits for the next deferred message to come back,
 * and deferred messages return together, so a big profile ran at a fraction of its rate.
 */

/** How long a batch's call may wait for its profile's rate budget before it is deferred. */
export const BULK_MAX_THROTTLE_WAIT_MS = 5_000;
/**
 * A batch over its profile's in-flight cap comes back after 2–5 s (SQS delays are whole
 * seconds): by then the handlers holding the profile's slots have usually taken its items
 * already (chaining, below), so the message is a fallback, and a longer delay costs fewer
 * empty round trips.
 */
const BUSY_DEFER_MS = { min: 2_000, spread: 3_000 };
/** How long a handler keeps claiming a busy profile's due items after its own batch. */
const CHAIN_BUDGET_MS = 20_000;
/** Chained items given back in an Ads API outage come back in a message this much later. */
const OUTAGE_HANDOFF_MS = 5_000;
/** A chain that finds its profile's lock held tries again this often, this many times. */
const CHAIN_LOCK_WAIT_MS = 150;
const CHAIN_LOCK_WAITS = 5;
/** A profile counts as busy this long after one of its batches found it over the cap. */
const CONTENDED_FOR_MS = 10_000;
/** Items waiting for an older change of their entity are sent again after this. */
const BLOCKED_RETRY_SECONDS = 2;
/**
 * Releases a batch message may take for Ads API outages (a whole call answered 5xx or timed
 * out) before the next one counts as the items' attempt. An outage across profiles opens
 * the worker's Ads API breaker long before that, so a storm of any length spends no
 * attempt; a batch whose calls keep failing while the rest of Amazon answers still ends
 * FAILED: after this many releases (5 s doubling to 2 min, jittered: 2–5 minutes) per attempt.
 */
export const BULK_OUTAGE_RELEASES_PER_ATTEMPT = 6;

export interface BulkSettings {
  readonly batchSize: number;
  readonly leaseMs: number;
  readonly profileInFlight: number;
  readonly retry: RetryPolicy;
  readonly sweep: SweepSettings;
}

export function bulkSettings(config: Config): BulkSettings {
  return {
    batchSize: config.ADFLEET_BULK_BATCH_SIZE,
    leaseMs: config.ADFLEET_BULK_LEASE_MS,
    profileInFlight: config.ADFLEET_BULK_PROFILE_IN_FLIGHT,
    retry: {
      maxAttempts: config.ADFLEET_BULK_MAX_ATTEMPTS,
      backoff: retryBackoff(config.ADFLEET_BULK_RETRY_BASE_MS),
    },
    sweep: {
      intervalMs: config.ADFLEET_BULK_SWEEP_INTERVAL_MS,
      stallAfterMs: config.ADFLEET_BULK_STALL_AFTER_MS,
      maxAttempts: config.ADFLEET_BULK_MAX_ATTEMPTS,
      batchSize: config.ADFLEET_BULK_BATCH_SIZE,
    },
  };
}

interface Deps {
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly ads: AdsApiClient;
  readonly limiter: AdsRateLimiter;
  readonly settings: BulkSettings;
  readonly sweeper: Sweeper;
  /** Names this process in lease owners. */
  readonly workerId: string;
  /** Profiles this process last found over their in-flight cap, and when. */
  readonly contended: Map<number, number>;
}

/** One Ads call for items of one entity type; results in the items' order. */
function applyAtAmazon(
  ads: AdsApiClient,
  profileId: number,
  entityType: EntityType,
  items: readonly ClaimedItem[],
  signal: AbortSignal,
): Promise<ItemResult<unknown>[]> {
  if (entityType === EntityType.Keyword) {
    return ads.updateKeywords(
      profileId,
      items.map((item) => ({ keywordId: item.entityId, ...(item.change as KeywordChange) })),
      { signal },
    );
  }
  return ads.updateCampaigns(
    profileId,
    items.map((item) => {
      const { budget, state } = item.change as CampaignChange;
      return {
        campaignId: item.entityId,
        ...(state === undefined ? {} : { state }),
        ...(budget === undefined ? {} : { budget: { budget, budgetType: 'DAILY' as const } }),
      };
    }),
    { signal },
  );
}

function byEntityType(items: readonly ClaimedItem[]): Map<EntityType, ClaimedItem[]> {
  const groups = new Map<EntityType, ClaimedItem[]>();
  for (const item of items) groups.set(item.entityType, [...(groups.get(item.entityType) ?? []), item]);
  return groups;
}

/** RETRY items go out again as delayed batches, one per delay. */
async function scheduleRetries(
  messenger: Messenger,
  jobId: string,
  profileId: number,
  outcomes: readonly ItemOutcome[],
  recorded: ReadonlySet<number>,
) {
  const byDelay = new Map<number, number[]>();
  for (const outcome of outcomes) {
    if (outcome.status !== ItemStatus.Retry || !recorded.has(outcome.id)) continue;
    const seconds = Math.min(900, Math.max(1, Math.ceil((outcome.retryInMs ?? 0) / 1000)));
    byDelay.set(seconds, [...(byDelay.get(seconds) ?? []), outcome.id]);
  }
  for (const [delaySeconds, itemIds] of byDelay) {
    await messenger.send('BulkItemBatch', { jobId, profileId, itemIds }, { delaySeconds });
  }
}

/** Between attempts to record Amazon's answer while Postgres is unreachable. */
const RECORD_RETRY_MS = 1_000;

/**
 * Records outcomes of items Amazon has already applied, trying again while Postgres is
 * down until `until`: a failed record leaves the items RUNNING until their lease expires,
 * and the sweeper then sends them to Amazon a second time. Anything but an outage, or a
 * stop, is thrown at once.
 */
async function recordAppliedOutcomes(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  outcomes: readonly ItemOutcome[],
  until: number,
  signal: AbortSignal,
  logger: Logger,
) {
  for (;;) {
    try {
      return await recordOutcomes(pool, jobId, owner, outcomes);
    } catch (error) {
      if (outageOf(error) !== Dependency.Postgres || signal.aborted || Date.now() + RECORD_RETRY_MS > until)
        throw error;
      logger.warn({ jobId, items: outcomes.length }, 'Postgres unavailable: recording Amazon’s answer again');
      await sleep(RECORD_RETRY_MS);
    }
  }
}

interface ApplyCall {
  readonly deps: Deps;
  readonly messenger: Messenger;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly jobId: string;
  readonly profileId: number;
  /** Releases of the message being handled (see BULK_OUTAGE_RELEASES_PER_ATTEMPT). */
  readonly releases: number;
}

/**
 * Applies one claim: its Ads calls, each item's outcome recorded under the claim's lease,
 * retries scheduled, completion published. False when the call was rate limited in a
 * chained claim (`chained`: its items came from the database, not from a message): they are
 * given back and carried by a delayed message of their own. A message's own claim rethrows
 * instead, so that the chassis defers the message.
 */
async function applyClaim(
  { deps, messenger, logger, signal, jobId, profileId, releases }: ApplyCall,
  owner: string,
  claim: Extract<Claim, { kind: 'claimed' }>,
  chained: boolean,
): Promise<boolean> {
  const { pool, settings } = deps;
  if (claim.blocked.length > 0) {
    await markDue(pool, jobId, claim.blocked, BLOCKED_RETRY_SECONDS * 1000);
    await messenger.send(
      'BulkItemBatch',
      { jobId, profileId, itemIds: [...claim.blocked] },
      { delaySeconds: BLOCKED_RETRY_SECONDS },
    );
  }
  if (claim.items.length === 0) {
    logger.info({ jobId, blocked: claim.blocked.length }, 'bulk batch: nothing to apply');
    return true;
  }

  // The call never outlives the lease: past it, the items may be another worker's.
  const leaseGuardMs = settings.leaseMs - Math.min(5_000, settings.leaseMs / 4);
  const recordUntil = Date.now() + leaseGuardMs;
  const leaseGuard = AbortSignal.timeout(leaseGuardMs);
  const callSignal = AbortSignal.any([signal, leaseGuard]);
  const outcomes: ItemOutcome[] = [];
  const callStarted = performance.now();
  for (const [entityType, items] of byEntityType(claim.items)) {
    try {
      const results = await applyAtAmazon(deps.ads, profileId, entityType, items, callSignal);
      outcomes.push(...outcomesOfResults(items, results, settings.retry));
    } catch (error) {
      const outage = outageOf(error);
      if (
        error instanceof ThrottledError ||
        signal.aborted ||
        outage === Dependency.AdsCredentials ||
        (outage === Dependency.AdsApi && releases < BULK_OUTAGE_RELEASES_PER_ATTEMPT)
      ) {
        // Not the items' fault (rate limit, a stop, the app's credentials refused, the
        // Ads API answering 5xx or not at all): give back what was not applied, without
        // an attempt. The chassis defers or releases the message; an outage also feeds
        // the worker's breaker of that dependency, which stops polling while it is open.
        const done = new Set(outcomes.map((outcome) => outcome.id));
        if (outcomes.length > 0) {
          await recordAppliedOutcomes(pool, jobId, owner, outcomes, recordUntil, signal, logger);
        }
        const delay =
          error instanceof ThrottledError
            ? error.retryAfterMs
            : chained && !signal.aborted
              ? OUTAGE_HANDOFF_MS
              : 0;
        const left = claim.items.filter((item) => !done.has(item.id)).map((item) => item.id);
        await releaseItems(pool, jobId, owner, left, delay);
        if (!chained) throw error;
        // No message carries chained items: send one, due when they are.
        await messenger.send(
          'BulkItemBatch',
          { jobId, profileId, itemIds: left },
          { delaySeconds: Math.min(900, Math.max(1, Math.ceil(delay / 1000))) },
        );
        logger.info(
          { jobId, profileId, items: left.length, retryInMs: delay, reason: describeError(error) },
          'bulk chain stopped: items handed to a delayed message',
        );
        if (error instanceof ThrottledError) return false;
        throw error;
      }
      outcomes.push(...outcomesOfCallFailure(items, error, settings.retry));
    }
  }

  const callMs = performance.now() - callStarted;
  const { recorded, completion } = await recordAppliedOutcomes(
    pool,
    jobId,
    owner,
    outcomes,
    recordUntil,
    signal,
    logger,
  );
  if (completion !== undefined) await publishOutbox(pool, messenger, completion);
  await scheduleRetries(messenger, jobId, profileId, outcomes, recorded);
  const count = (status: string) => outcomes.filter((outcome) => outcome.status === status).length;
  logger.info(
    {
      jobId,
      profileId,
      items: outcomes.length,
      succeeded: count(ItemStatus.Succeeded),
      failed: count(ItemStatus.Failed),
      retry: count(ItemStatus.Retry),
      lostLease: outcomes.length - recorded.size,
      completed: completion !== undefined,
      chained,
      callMs: Math.round(callMs),
    },
    'bulk batch applied',
  );
  return true;
}

export function createBulkItemWorker(overrides: { sweeper?: boolean } = {}): WorkerSpec<Deps> {
  return defineWorker<'bulk-item', Deps>({
    queue: 'bulk-item',
    async setup({ config, logger, messenger }) {
      const settings = bulkSettings(config);
      const pool = createPool(config.DATABASE_URL, {
        max: Math.min(20, config.ADFLEET_CONCURRENCY + 3),
        applicationName: 'adfleet-bulk-item',
      });
      await pool.query('SELECT 1');
      const redis = createRedis(config.REDIS_URL);
      // One attempt per call: a 5xx or timeout is the items' attempt, retried as a delayed
      // message (freeing the handler slot), not in a loop inside the handler.
      const { client, limiter } = createAdsClient(config, redis, {
        maxAttempts: 1,
        maxThrottleWaitMs: Math.min(config.ADFLEET_ADS_MAX_THROTTLE_WAIT_MS, BULK_MAX_THROTTLE_WAIT_MS),
      });
      const sweeper =
        overrides.sweeper === false
          ? { stop: async () => {} }
          : startSweeper(pool, messenger, logger, settings.sweep);
      return {
        pool,
        redis,
        ads: client,
        limiter,
        settings,
        sweeper,
        workerId: `${hostname()}:${process.pid}`,
        contended: new Map(),
      };
    },
    probes: ({ pool, ads }) => ({
      postgres: () => pool.query('SELECT 1'),
      'ads-api': () => ads.probe(),
      'ads-credentials': () => ads.probe(),
    }),
    async teardown({ pool, redis, limiter, sweeper }) {
      await sweeper.stop();
      await limiter.close();
      redis.disconnect();
      await pool.end();
    },
    handlers: {
      BulkJobSubmitted: async ({ jobId }, { deps, messenger, logger }) => {
        const result = await dispatchJob(deps.pool, messenger, jobId, deps.settings.batchSize);
        logger.info(
          { jobId, ...result },
          result.live ? 'bulk job dispatched' : 'bulk job not live: nothing to dispatch',
        );
      },

      BulkItemBatch: async (batch, { deps, messenger, logger, signal, message }) => {
        const { pool, settings } = deps;
        const owner = `${deps.workerId}:${randomUUID()}`;
        const claim = await claimBatch(pool, {
          ...batch,
          owner,
          leaseMs: settings.leaseMs,
          profileInFlight: settings.profileInFlight,
        });
        if (claim.kind === 'job-not-running') {
          logger.info({ jobId: batch.jobId, status: claim.status }, 'bulk job not running: batch dropped');
          return;
        }
        if (claim.kind === 'busy') {
          deps.contended.set(batch.profileId, Date.now());
          const deferMs = BUSY_DEFER_MS.min + Math.random() * BUSY_DEFER_MS.spread;
          await markDue(pool, batch.jobId, batch.itemIds, deferMs);
          throw new ThrottledError(
            `profile ${batch.profileId} has ${claim.inFlight} bulk batches in flight`,
            deferMs,
          );
        }
        const call = {
          deps,
          messenger,
          logger,
          signal,
          jobId: batch.jobId,
          profileId: batch.profileId,
          releases: message.releases,
        };
        await applyClaim(call, owner, claim, false);

        // A busy profile: keep its in-flight slot working on its due items (see the header).
        const seen = deps.contended.get(batch.profileId);
        const busy =
          batch.itemIds.length >= settings.batchSize ||
          claim.othersInFlight > 0 ||
          (seen !== undefined && Date.now() - seen <= CONTENDED_FOR_MS);
        if (!busy) return;
        const chainUntil = Date.now() + CHAIN_BUDGET_MS;
        let lockWaits = 0;
        while (Date.now() < chainUntil && !signal.aborted) {
          const nextOwner = `${deps.workerId}:${randomUUID()}`;
          const next = await claimNextDue(pool, {
            jobId: batch.jobId,
            profileId: batch.profileId,
            owner: nextOwner,
            leaseMs: settings.leaseMs,
            profileInFlight: settings.profileInFlight,
            limit: settings.batchSize,
          });
          // The lock is usually held by a deferred message checking the cap: a moment later
          // the slot this handler just gave back is still free.
          if (next.kind === 'busy' && next.lockHeld === true && lockWaits < CHAIN_LOCK_WAITS) {
            lockWaits += 1;
            await sleep(CHAIN_LOCK_WAIT_MS, undefined, { signal }).catch(() => {});
            continue;
          }
          if (next.kind !== 'claimed' || (next.items.length === 0 && next.blocked.length === 0)) return;
          if (!(await applyClaim(call, nextOwner, next, true))) return;
        }
      },
    },
  });
}

export const bulkItemWorker = createBulkItemWorker();
