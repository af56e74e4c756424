import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { context } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../../contract/config.ts';
import {
  type Claim,
  type ClaimedItem,
  claimBatch,
  claimNextDue,
  dueItemIds,
  type ItemOutcome,
  leaseRenewEveryMs,
  markDue,
  nextDueInMs,
  recordOutcomes,
  releaseItems,
  renewLease,
} from '../../domain/bulk/apply.ts';
import { publishOutbox } from '../../domain/bulk/completion.ts';
import { dispatchJob } from '../../domain/bulk/dispatch.ts';
import type { CampaignChange, KeywordChange } from '../../domain/bulk/rows.ts';
import { EntityType, ItemStatus } from '../../domain/bulk/status.ts';
import {
  type OrphanedProfile,
  type Sweeper,
  type SweepSettings,
  startSweeper,
} from '../../domain/bulk/sweep.ts';
import { campaignHolds, keywordHolds, needsReadBack } from '../../domain/bulk/verify.ts';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import { AdsRetryableError } from '../../shared/ads/errors.ts';
import { createAdsClient } from '../../shared/ads/from-config.ts';
import type { ItemResult } from '../../shared/ads/multi-status.ts';
import type { AdsRateLimiter } from '../../shared/ads/rate-limit.ts';
import type { Campaign, Keyword } from '../../shared/ads/types.ts';
import { createPool } from '../../shared/db.ts';
import { Dependency, outageOf } from '../../shared/dependencies.ts';
import { describeError, ThrottledError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { outageReleaseCeilingMs } from '../../shared/messaging/queue-worker.ts';
import { extractContext } from '../../shared/messaging/trace-context.ts';
import { createRedis } from '../../shared/redis.ts';
import { defineWorker, type WorkerSpec } from '../../shared/worker.ts';
import { ChainRunner } from './chains.ts';
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
 * the profiles that can make progress, so a small job is not queued behind a big one. Only
 * the first ADFLEET_BULK_PROFILE_IN_FLIGHT batches of a profile are enqueued at once; the
 * rest go out delayed (domain/bulk/plan.ts, scheduleBatches) as a fallback, since the
 * profile's chains (below) take its due items from the ledger: a large job no longer fills
 * the queue ahead of a later small one with batches that could only be deferred.
 *
 * Chaining: a handler that has applied a batch of a busy profile (its message was a full
 * batch, so the profile likely has more; another batch of it was in flight; or one was
 * deferred here lately) acknowledges its message and starts a chain (ChainRunner, beside
 * the message handlers) that goes on claiming that profile's due items of the job
 * (claimNextDue), one batch at a time, while the profile has a free slot, for up to
 * CHAIN_BUDGET_MS. Each call waits in the shared rate limiter for the profile's next token,
 * so a chain calls the profile exactly as fast as its budget allows. A deferred message's
 * items stay due (only the message is delayed), so the chain takes them at once; a call
 * that fails as a whole (a 503, a timeout) hands its items to a delayed message and the
 * chain goes on with the next ones; with nothing due, the chain waits for the next item
 * to come due (a retry's backoff, a Retry-After) when that is a few seconds away; and at
 * the budget's end it sends the profile's next due batch at once, so the next handler
 * carries on. Without this, a slow profile's slot waited for deferred messages to come
 * back, and the profile with the most items (the one that sets a job's wall time) ran at a
 * fraction of its rate.
 *
 * Leases are short and renewed while the call runs (keepLease): a worker that dies holding
 * items gives them back within ADFLEET_BULK_LEASE_MS plus a sweep, not after a long lease
 * sized for the slowest call.
 */

/** How long a batch's call may wait for its profile's rate budget before it is deferred. */
export const BULK_MAX_THROTTLE_WAIT_MS = 5_000;
/**
 * A batch over its profile's in-flight cap comes back after 5–10 s. Its items stay due and
 * the handlers holding the profile's slots take them (chaining), so the message is only a
 * fallback for when no chain runs (it ended, or its worker died); a longer delay costs
 * fewer empty round trips, which other profiles' batches queue behind.
 */
const BUSY_DEFER_MS = { min: 5_000, spread: 5_000 };
/**
 * How long a chain keeps claiming a busy profile's items before it hands the profile to a
 * message (which starts a chain wherever it is received): chains move between processes,
 * so a process's chain slots are not kept by the few largest profiles.
 */
const CHAIN_BUDGET_MS = 30_000;
/**
 * A dispatch starts no chunk after this long, so that the last one ends inside the
 * BulkJobSubmitted deadline (25 s). A chunk's time is mostly its sends: 10,000 items of a
 * few large profiles are a hundred-odd messages, of many small ones several hundred, which
 * took up to about 12 s on the loaded 2-core development machine (the 50,000-item benchmark
 * dispatched in 23.8 s under a 12 s budget, close to the deadline): a chunk started at 8 s
 * still ends inside it. The rest follows in the message's next delivery, which waits
 * behind the queue's backlog (the job's own batches).
 */
const DISPATCH_BUDGET_MS = 8_000;
/**
 * Chained items whose call failed as a whole (a 503, a timeout) come back in a message this
 * much later (SQS's shortest delay), and the chain takes them again when due: one failed
 * call is that call's fault, and a second in a row stops the chain (CHAIN_OUTAGES), after
 * which an outage is the message's to report and back off from.
 */
const OUTAGE_HANDOFF_MS = 1_000;
/**
 * Calls in a row failing as a whole after which a chain stops. The chain runs outside any
 * message handler, so its outage reaches the Ads API breaker only through the delayed
 * messages its items were handed to, when a handler meets the outage again.
 */
const CHAIN_OUTAGES = 2;
/** A chain with nothing due waits for the next item to come due if it is at most this far off. */
const CHAIN_IDLE_WAIT_MS = 6_000;
/** A claim that finds its profile's lock held tries again this often, this many times. */
const CLAIM_LOCK_WAIT_MS = 150;
const CLAIM_LOCK_WAITS = 5;
/**
 * A chain holds one of its profile's in-flight slots: below the cap, it waits out a held
 * lock this many times rather than give the slot up (the lock's holder is a claim of a few
 * statements, which a loaded database can stretch past a message handler's 0.75 s).
 */
const CHAIN_CLAIM_LOCK_WAITS = 20;
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
      leaseMs: config.ADFLEET_BULK_LEASE_MS,
      stallAfterMs: config.ADFLEET_BULK_STALL_AFTER_MS,
      maxAttempts: config.ADFLEET_BULK_MAX_ATTEMPTS,
      batchSize: config.ADFLEET_BULK_BATCH_SIZE,
      profileInFlight: config.ADFLEET_BULK_PROFILE_IN_FLIGHT,
    },
  };
}

interface Deps {
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly ads: AdsApiClient;
  readonly limiter: AdsRateLimiter;
  readonly settings: BulkSettings;
  /** Set once the deps exist: its hook starts chains with them. */
  sweeper: Sweeper;
  /** Names this process in lease owners. */
  readonly workerId: string;
  /** Profiles this process last found over their in-flight cap, and when. */
  readonly contended: Map<number, number>;
  readonly chains: ChainRunner;
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

/**
 * Of the items whose last attempt went unanswered, those whose entity Amazon already holds
 * at the requested value, by item id, with what was read, and the ids of the others
 * (domain/bulk/verify.ts): one list call filtered by their ids, made only when such items
 * are in the batch.
 */
async function readBack(
  ads: AdsApiClient,
  profileId: number,
  entityType: EntityType,
  items: readonly ClaimedItem[],
  signal: AbortSignal,
): Promise<{ held: Map<number, Keyword | Campaign>; notHeld: number[] }> {
  const held = new Map<number, Keyword | Campaign>();
  const notHeld: number[] = [];
  const unanswered = items.filter(needsReadBack);
  if (unanswered.length === 0) return { held, notHeld };
  const include = unanswered.map((item) => item.entityId);
  const read = new Map<string, Keyword | Campaign>();
  if (entityType === EntityType.Keyword) {
    for await (const keyword of ads.keywords(profileId, { keywordIdFilter: { include }, signal }))
      read.set(keyword.keywordId, keyword);
  } else {
    for await (const campaign of ads.campaigns(profileId, { campaignIdFilter: { include }, signal }))
      read.set(campaign.campaignId, campaign);
  }
  for (const item of unanswered) {
    const entity = read.get(item.entityId);
    const holds =
      entity !== undefined &&
      (entityType === EntityType.Keyword
        ? keywordHolds(entity as Keyword, item.change as KeywordChange)
        : campaignHolds(entity as Campaign, item.change as CampaignChange));
    if (holds) held.set(item.id, entity);
    else notHeld.push(item.id);
  }
  return { held, notHeld };
}

/** SUCCEEDED without another send: the attempt that went unanswered had applied it. */
function heldOutcomes(items: readonly ClaimedItem[], held: ReadonlyMap<number, unknown>): ItemOutcome[] {
  return items
    .filter((item) => held.has(item.id))
    .map((item) => ({
      id: item.id,
      status: ItemStatus.Succeeded,
      attempts: item.attempts,
      response: { readBack: held.get(item.id) },
    }));
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
 * down until `until()` (the lease's guard, which renewals move): a failed record leaves the items RUNNING until their lease expires,
 * and the sweeper then sends them to Amazon a second time. Anything but an outage, or a
 * stop, is thrown at once.
 */
async function recordAppliedOutcomes(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  outcomes: readonly ItemOutcome[],
  until: () => number,
  signal: AbortSignal,
  logger: Logger,
) {
  for (;;) {
    try {
      return await recordOutcomes(pool, jobId, owner, outcomes);
    } catch (error) {
      if (outageOf(error) !== Dependency.Postgres || signal.aborted || Date.now() + RECORD_RETRY_MS > until())
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

/** The claim's lease went (or is about to go) to someone else: its call is abandoned. */
class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

interface HeldLease {
  /** Aborts when a renewal finds the items gone, or before the lease runs out unrenewed. */
  readonly lost: AbortSignal;
  /** Epoch ms until which the items are surely still this claim's. */
  guardUntil(): number;
  stop(): void;
}

/**
 * Keeps a claim's lease alive while its call runs: renewed every leaseRenewEveryMs, so a
 * live worker never loses its items to the sweeper however slow Amazon answers, and a dead
 * one's come back within one lease. A renewal that moves no row means the items are no
 * longer this claim's (the sweeper recovered them, another claim holds them): the call is
 * abandoned, and whatever it would have recorded is refused by the owner check of
 * recordOutcomes anyway. A renewal that fails (Postgres unreachable) keeps the last expiry,
 * and the call is abandoned a margin before it, as it was before leases were renewed.
 */
function keepLease(pool: pg.Pool, jobId: string, owner: string, leaseMs: number, logger: Logger): HeldLease {
  const marginMs = Math.min(5_000, leaseMs / 4);
  const lost = new AbortController();
  let expiresAt = Date.now() + leaseMs;
  let stopped = false;
  let guard: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(guard);
    guard = setTimeout(
      () => lost.abort(new LeaseLostError(`lease of ${owner} about to expire unrenewed`)),
      Math.max(0, expiresAt - marginMs - Date.now()),
    );
  };
  arm();
  const renew = async () => {
    const askedAt = Date.now();
    try {
      const renewed = await renewLease(pool, jobId, owner, leaseMs);
      if (stopped) return;
      if (renewed === 0) {
        lost.abort(new LeaseLostError(`lease of ${owner} lost: its items are no longer RUNNING under it`));
        return;
      }
      expiresAt = askedAt + leaseMs;
      arm();
    } catch (error) {
      logger.warn({ jobId, err: describeError(error) }, 'bulk lease renewal failed');
    }
  };
  const renewal = setInterval(() => void renew(), leaseRenewEveryMs(leaseMs));
  return {
    lost: lost.signal,
    guardUntil: () => expiresAt - marginMs,
    stop() {
      stopped = true;
      clearInterval(renewal);
      clearTimeout(guard);
    },
  };
}

type ApplyResult =
  | { readonly kind: 'applied' }
  /**
   * A chained claim's items given back unapplied and handed to a delayed message, due again
   * in `retryInMs`: rate limited, or (`outage`) the call failed as a whole (5xx, timeout).
   */
  | { readonly kind: 'handed-off'; readonly retryInMs: number; readonly outage?: unknown };

/**
 * Applies one claim: its Ads calls under a lease kept alive meanwhile, each item's outcome
 * recorded under the lease, retries scheduled, completion published. A chained claim
 * (`chained`: its items came from the database, not from a message) that is rate limited
 * or whose call fails as a whole gives its items back, hands them to a delayed message of
 * their own and says so; a message's own claim rethrows instead, so that the chassis defers
 * or releases the message.
 */
async function applyClaim(
  call: ApplyCall,
  owner: string,
  claim: Extract<Claim, { kind: 'claimed' }>,
  chained: boolean,
  claimMs: number,
): Promise<ApplyResult> {
  const { deps, messenger, logger, jobId, profileId } = call;
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
    return { kind: 'applied' };
  }
  const lease = keepLease(pool, jobId, owner, settings.leaseMs, logger);
  try {
    return await applyLeased(call, owner, claim, chained, lease, claimMs);
  } finally {
    lease.stop();
  }
}

async function applyLeased(
  { deps, messenger, logger, signal, jobId, profileId, releases }: ApplyCall,
  owner: string,
  claim: Extract<Claim, { kind: 'claimed' }>,
  chained: boolean,
  lease: HeldLease,
  claimMs: number,
): Promise<ApplyResult> {
  const { pool, settings } = deps;
  const recordUntil = () => lease.guardUntil();
  const callSignal = AbortSignal.any([signal, lease.lost]);
  const outcomes: ItemOutcome[] = [];
  const callStarted = performance.now();
  // Read back and found without their change; until sent, a release clears their mark.
  const readNotHeld = new Set<number>();
  for (const [entityType, group] of byEntityType(claim.items)) {
    let sending = false;
    try {
      const { held, notHeld } = await readBack(deps.ads, profileId, entityType, group, callSignal);
      outcomes.push(...heldOutcomes(group, held));
      for (const id of notHeld) readNotHeld.add(id);
      const items = group.filter((item) => !held.has(item.id));
      if (items.length === 0) continue;
      sending = true;
      const results = await applyAtAmazon(deps.ads, profileId, entityType, items, callSignal);
      outcomes.push(...outcomesOfResults(items, results, settings.retry));
    } catch (error) {
      const outage = outageOf(error);
      const done = new Set(outcomes.map((outcome) => outcome.id));
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
        if (outcomes.length > 0) {
          await recordAppliedOutcomes(pool, jobId, owner, outcomes, recordUntil, signal, logger);
        }
        // Due when their message is back: a message's items released for an outage, no
        // sooner than the top of the chassis's backoff for it (and its sweeper, which sends
        // stranded due items again, leaves them be until then).
        const delay =
          error instanceof ThrottledError
            ? error.retryAfterMs
            : chained && !signal.aborted
              ? OUTAGE_HANDOFF_MS
              : outage !== undefined && !signal.aborted
                ? outageReleaseCeilingMs(releases)
                : 0;
        const left = claim.items.filter((item) => !done.has(item.id)).map((item) => item.id);
        // Sent and never answered: Amazon may have applied them.
        const unanswered =
          sending && error instanceof AdsRetryableError && error.status === undefined
            ? group.filter((item) => !done.has(item.id)).map((item) => item.id)
            : [];
        const sent = new Set(unanswered);
        const readUnsent = left.filter((id) => readNotHeld.has(id) && !sent.has(id));
        await releaseItems(pool, jobId, owner, left, delay, { unanswered, readBack: readUnsent });
        if (!chained) throw error;
        // No message carries chained items: send one, due when they are.
        await messenger.send(
          'BulkItemBatch',
          { jobId, profileId, itemIds: left },
          { delaySeconds: Math.min(900, Math.max(1, Math.ceil(delay / 1000))) },
        );
        logger.info(
          { jobId, profileId, items: left.length, retryInMs: delay, reason: describeError(error) },
          'bulk chained batch handed to a delayed message',
        );
        if (signal.aborted || outage === Dependency.AdsCredentials) throw error;
        return error instanceof ThrottledError
          ? { kind: 'handed-off', retryInMs: delay }
          : { kind: 'handed-off', retryInMs: delay, outage: error };
      }
      const failed = group.filter((item) => !done.has(item.id));
      outcomes.push(...outcomesOfCallFailure(failed, error, settings.retry));
    }
  }

  const callMs = performance.now() - callStarted;
  const recordStarted = performance.now();
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
  const recordMs = performance.now() - recordStarted;
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
      // Where a slot's time goes: the claim before the call (rate-limit wait included in
      // the call), the call, recording the outcomes.
      claimMs: Math.round(claimMs),
      callMs: Math.round(callMs),
      recordMs: Math.round(recordMs),
    },
    'bulk batch applied',
  );
  return { kind: 'applied' };
}

/**
 * Claims; while another claim of the profile holds its lock (for the few statements of that
 * claim), tries again CLAIM_LOCK_WAITS times, CLAIM_LOCK_WAIT_MS apart, before the caller
 * counts the profile as busy.
 */
async function claimPastHeldLock(
  claimOnce: () => Promise<Claim>,
  pause: (ms: number) => Promise<unknown>,
  signal: AbortSignal,
  maxWaits = CLAIM_LOCK_WAITS,
): Promise<Claim> {
  let claim = await claimOnce();
  for (
    let waits = 0;
    claim.kind === 'busy' && claim.lockHeld === true && waits < maxWaits && !signal.aborted;
    waits += 1
  ) {
    await pause(CLAIM_LOCK_WAIT_MS);
    claim = await claimOnce();
  }
  return claim;
}

/**
 * Keeps a busy profile's in-flight slot working (see the header) until `chainUntil`: claims
 * its due items one batch at a time; when none is due, waits for the next one to come due
 * (a retry's backoff, a rate-limited batch's Retry-After) if that is soon, instead of
 * giving the slot back to a queue of deferred messages; at the budget's end hands the
 * profile's next due batch to a message sent at once, so the next handler picks the chain
 * up without waiting for a deferral to come back.
 */
/** Starts a chain for the call's profile in this process (false: no slot; ChainRunner.start). */
function startChain(call: ApplyCall, options: { lostChains?: boolean } = {}): boolean {
  const { chains } = call.deps;
  return chains.start(
    call.jobId,
    call.profileId,
    (ends) => chainProfile({ ...call, signal: chains.callSignal }, Date.now() + CHAIN_BUDGET_MS, ends),
    options,
  );
}

async function chainProfile(call: ApplyCall, chainUntil: number, stopping: AbortSignal): Promise<void> {
  // `stopping` ends the chain between calls; `call.signal` cuts off a call in flight, and
  // only later (ChainRunner.stop): a call cut off after Amazon applied it would leave its
  // items unrecorded, to be applied again.
  const { deps, messenger, logger, jobId, profileId } = call;
  const signal = stopping;
  const { pool, settings } = deps;
  const pause = (ms: number) => sleep(Math.max(10, ms), undefined, { signal }).catch(() => {});
  let outages = 0;
  while (!signal.aborted) {
    if (Date.now() >= chainUntil) {
      const itemIds = await dueItemIds(pool, jobId, profileId, settings.batchSize);
      if (itemIds.length > 0) {
        await messenger.send('BulkItemBatch', { jobId, profileId, itemIds });
        logger.info({ jobId, profileId, items: itemIds.length }, 'bulk chain handed over');
      }
      return;
    }
    const nextOwner = `${deps.workerId}:${randomUUID()}`;
    const claimStarted = performance.now();
    // The lock is usually held by a deferred message checking the cap: a moment later
    // the slot this handler just gave back is still free.
    const next = await claimPastHeldLock(
      () =>
        claimNextDue(pool, {
          jobId,
          profileId,
          owner: nextOwner,
          leaseMs: settings.leaseMs,
          profileInFlight: settings.profileInFlight,
          limit: settings.batchSize,
        }),
      pause,
      signal,
      CHAIN_CLAIM_LOCK_WAITS,
    );
    if (next.kind !== 'claimed') {
      if (!signal.aborted)
        logger.info(
          next.kind === 'busy'
            ? { jobId, profileId, inFlight: next.inFlight, lockHeld: next.lockHeld === true }
            : { jobId, profileId, status: next.status },
          next.kind === 'busy'
            ? 'bulk chain ended: the profile is at its cap'
            : 'bulk chain ended: job not running',
        );
      return;
    }
    let waitMs: number | undefined;
    if (next.items.length === 0 && next.blocked.length === 0) {
      waitMs = await nextDueInMs(pool, jobId, profileId);
      if (waitMs === undefined) return;
    } else {
      const result = await applyClaim(call, nextOwner, next, true, performance.now() - claimStarted);
      if (result.kind === 'applied') {
        outages = 0;
        continue;
      }
      // One failed call is a fault of that call (a 503, a timeout); two in a row look like
      // an outage: the chain stops and leaves it to the handed-off messages, whose handlers
      // count it against the Ads API's breaker.
      outages = result.outage === undefined ? 0 : outages + 1;
      if (outages >= CHAIN_OUTAGES) throw result.outage;
      // Rate limited: the profile has no budget before then, so claiming again now would
      // only hand items to more delayed messages.
      waitMs = result.outage === undefined ? result.retryInMs : 0;
    }
    if (waitMs > CHAIN_IDLE_WAIT_MS || Date.now() + waitMs >= chainUntil) {
      logger.info(
        { jobId, profileId, nextDueInMs: Math.round(waitMs) },
        'bulk chain ended: nothing due soon',
      );
      return;
    }
    await pause(waitMs);
  }
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
      // Chains mostly wait in the rate limiter for their profile's next token, so a
      // process runs more of them than handlers: enough for its share of the busy
      // profiles' in-flight slots.
      const chains = new ChainRunner(3 * config.ADFLEET_CONCURRENCY, logger);
      const deps: Deps = {
        pool,
        redis,
        ads: client,
        limiter,
        settings,
        sweeper: { stop: async () => {} },
        workerId: `${hostname()}:${process.pid}`,
        contended: new Map(),
        chains,
      };
      if (overrides.sweeper !== false) {
        // An orphaned profile's chains start here, in the job's trace (sweep.ts).
        const startChains = (orphan: OrphanedProfile) =>
          context.with(extractContext(orphan.traceCarrier), () => {
            const call: ApplyCall = {
              deps,
              messenger,
              logger,
              signal: chains.callSignal,
              jobId: orphan.jobId,
              profileId: orphan.profileId,
              releases: 0,
            };
            let started = 0;
            while (started < orphan.claims && startChain(call, { lostChains: true })) started += 1;
            return started;
          });
        deps.sweeper = startSweeper(pool, messenger, logger, settings.sweep, { startChains });
      }
      return deps;
    },
    probes: ({ pool, ads }) => ({
      postgres: () => pool.query('SELECT 1'),
      'ads-api': () => ads.probe(),
      'ads-credentials': () => ads.probe(),
    }),
    async teardown({ pool, redis, limiter, sweeper, chains }) {
      await chains.stop();
      await sweeper.stop();
      await limiter.close();
      redis.disconnect();
      await pool.end();
    },
    handlers: {
      BulkJobSubmitted: async ({ jobId }, { deps, messenger, logger }) => {
        const result = await dispatchJob(deps.pool, messenger, jobId, deps.settings.batchSize, {
          until: Date.now() + DISPATCH_BUDGET_MS,
          profileInFlight: deps.settings.profileInFlight,
        });
        if (!result.done) {
          logger.info({ jobId, ...result }, 'bulk job partly dispatched: the rest follows');
          // The message comes back (a deferral: no receive spent) to dispatch the rest.
          throw new ThrottledError(`bulk job ${jobId}: dispatch continues`, 0);
        }
        logger.info(
          { jobId, ...result },
          result.live ? 'bulk job dispatched' : 'bulk job not live: nothing to dispatch',
        );
      },

      BulkItemBatch: async (batch, { deps, messenger, logger, signal, message }) => {
        const { pool, settings } = deps;
        const owner = `${deps.workerId}:${randomUUID()}`;
        const claimStarted = performance.now();
        // A job's first batches of a profile arrive together: deferring all but one of them
        // for the over-cap delay left the profile with one batch applying for its first seconds.
        const claim = await claimPastHeldLock(
          () =>
            claimBatch(pool, {
              ...batch,
              owner,
              leaseMs: settings.leaseMs,
              profileInFlight: settings.profileInFlight,
            }),
          (ms) => sleep(ms, undefined, { signal }),
          signal,
        );
        if (claim.kind === 'job-not-running') {
          logger.info({ jobId: batch.jobId, status: claim.status }, 'bulk job not running: batch dropped');
          return;
        }
        if (claim.kind === 'busy') {
          deps.contended.set(batch.profileId, Date.now());
          const deferMs = BUSY_DEFER_MS.min + Math.random() * BUSY_DEFER_MS.spread;
          // Due now, not when the message comes back: the handlers holding the profile's
          // slots claim due items (chaining), and these are ready; the mark also tells the
          // sweeper that a message still carries them.
          await markDue(pool, batch.jobId, batch.itemIds, 0);
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
        await applyClaim(call, owner, claim, false, performance.now() - claimStarted);
        // Its items were applied meanwhile (a delayed batch whose items the profile's chains
        // took): the chains that took them carry the profile.
        if (claim.items.length === 0 && claim.blocked.length === 0) return;

        // A busy profile: keep its in-flight slot working on its due items (see the header).
        const seen = deps.contended.get(batch.profileId);
        const busy =
          batch.itemIds.length >= settings.batchSize ||
          claim.othersInFlight > 0 ||
          (seen !== undefined && Date.now() - seen <= CONTENDED_FOR_MS);
        if (!busy) return;
        if (startChain(call)) return;
        // The profile's batches past its cap are delayed (dispatch), so its due items may
        // have no message in the queue now: hand the next batch to one, started wherever
        // it is received, rather than leave the slot idle until a delayed one arrives.
        const itemIds = await dueItemIds(pool, batch.jobId, batch.profileId, settings.batchSize);
        if (itemIds.length > 0) {
          await messenger.send(
            'BulkItemBatch',
            { jobId: batch.jobId, profileId: batch.profileId, itemIds },
            { delaySeconds: Math.ceil(BUSY_DEFER_MS.min / 1000) },
          );
        }
        logger.info(
          { jobId: batch.jobId, profileId: batch.profileId, handedOver: itemIds.length },
          'bulk chain not started: this process runs its most',
        );
      },
    },
  });
}

export const bulkItemWorker = createBulkItemWorker();
