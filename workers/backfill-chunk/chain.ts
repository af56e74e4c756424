import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import type pg from 'pg';
import type { Payload } from '../../contract/events.ts';
import {
  BATCH_LOCK_TIMEOUT_MS,
  type Claim,
  LOCK_NOT_AVAILABLE,
  type RateState,
  runStep,
  type StepResult,
} from '../../domain/backfill/checkpoint.ts';
import { loadJob, refreshJobSummary } from '../../domain/backfill/jobs.ts';
import { settleJob } from '../../domain/backfill/lifecycle.ts';
import { failPartition, recordDelay } from '../../domain/backfill/partitions.ts';
import type { BackfillJob } from '../../domain/backfill/records.ts';
import { type BackfillRegistry, backfillNamed } from '../../domain/backfill/registry.ts';
import { holdsBatches, paceMs, smoothRate, ThrottleState } from '../../domain/backfill/throttle.ts';
import { backoffDelayMs } from '../../shared/backoff.ts';
import { classifyError, describeError, ErrorKind, FatalError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { inNewTrace, linkTo, linkToActiveSpan } from '../../shared/telemetry/new-trace.ts';
import type { JobPace, PaceMonitor } from './pace-monitor.ts';

type BackfillChunk = Payload<'BackfillChunk'>;

/**
 * One chunk message of a partition's chain: up to `batchesPerChunk` steps, each throttled
 * by the job's latest decision (pace-monitor.ts: probing runs beside the batches, never on
 * their path) and committed with its checkpoint (domain/backfill/checkpoint.ts), then the
 * next chunk is sent — by the chain's owner only. Waits the throttle asks for happen
 * inline when short, or as the next chunk's SQS delay when long, so a slowed or paused
 * backfill holds no handler.
 */

export const DEFAULT_TRACE_CHUNK_BUDGET = 50;
/** The job row's summary is refreshed after every chunk, and within a slow chunk this often. */
const SUMMARY_INTERVAL_MS = 1_000;

export interface ChainDeps {
  readonly pool: pg.Pool;
  readonly registry: BackfillRegistry;
  /** The throttle's inputs, probed beside the batches; a step reads the latest decision. */
  readonly paces: PaceMonitor;
  /** Chunks per trace before the chain continues in a new, linked trace. */
  readonly traceChunkBudget: number;
  /** Test seam: runs after a chunk's last commit, before the next chunk is sent. */
  readonly beforeSendNext?: (next: BackfillChunk) => Promise<void> | void;
}

/** Backoff between attempts of a batch that found its rows locked: 1 s doubling to 10 s. */
const LOCK_BACKOFF = { baseMs: 1_000, capMs: 10_000, minMs: 500 } as const;
/** Attempts inside one chunk before the chain goes on as a delayed message instead. */
const MAX_INLINE_LOCK_WAITS = 3;

export interface ChunkContext {
  readonly messageId: string;
  readonly messenger: Messenger;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

export async function runChunk(
  deps: ChainDeps,
  payload: BackfillChunk,
  context: ChunkContext,
): Promise<void> {
  const { pool } = deps;
  const job = await loadJob(pool, payload.jobId);
  if (job === undefined) throw new FatalError(`no backfill job ${payload.jobId}`);
  const claim: Claim = {
    jobId: job.id,
    partition: payload.partition,
    cursor: payload.cursor,
    messageId: context.messageId,
    mayAdopt: true,
  };
  let definition: ReturnType<typeof backfillNamed>;
  try {
    definition = backfillNamed(deps.registry, job.name);
  } catch (error) {
    // Fail the partition, or the watchdog would restart this chain forever.
    await failChain(pool, claim, error);
    throw error;
  }
  const logger = context.logger.child({ jobId: job.id, backfill: job.name, partition: payload.partition });
  const span = trace.getActiveSpan();
  span?.setAttributes({
    'adfleet.backfill.job_id': job.id,
    'adfleet.backfill.name': job.name,
    'adfleet.backfill.partition': payload.partition,
    'adfleet.backfill.chunk': payload.chunk,
  });
  const pace = deps.paces.acquire(job);
  try {
    await pace.ready(context.signal);
    await runSteps(deps, job, definition, pace, claim, payload, context, logger);
  } finally {
    deps.paces.release(pace);
  }
}

async function runSteps(
  deps: ChainDeps,
  job: BackfillJob,
  definition: ReturnType<typeof backfillNamed>,
  pace: JobPace,
  firstClaim: Claim,
  payload: BackfillChunk,
  context: ChunkContext,
  logger: Logger,
): Promise<void> {
  const { pool } = deps;
  let claim = firstClaim;
  const span = trace.getActiveSpan();
  const traceId = span?.spanContext().traceId ?? null;
  const { policy } = pace;
  const ceiling = job.maxRate === null ? null : job.maxRate / job.parallel;
  // The pace so far: read by the first step's claim, then kept here.
  let rate: { -readonly [K in keyof RateState]: RateState[K] } | undefined;

  let rows = 0;
  let lastBatchEnd = performance.now();
  let waitedMs = 0;
  let lastSummaryAt = performance.now();
  let lockWaits = 0;
  for (let step = 0; step < job.batchesPerChunk; step += 1) {
    context.signal.throwIfAborted();
    let result: StepResult | undefined;
    let inBatch = false;
    try {
      result = await runStep(pool, definition, claim, {
        batchSize: job.batchSize,
        stallAfterMs: job.stallAfterMs,
        chunk: payload.chunk,
        traceId,
        waitedMs,
        holdMs: (decision) => pace.holdMs(decision),
        decide: (claimed) => {
          rate ??= { ...claimed };
          const decision = pace.decide(payload.partition, rate, ceiling);
          rate.rateLimit = decision.limit;
          if (!holdsBatches(decision)) {
            inBatch = true;
            pace.batchStarted();
          }
          return decision;
        },
        rate: (batchRows) => {
          const current = rate as NonNullable<typeof rate>;
          current.currentRate = smoothRate(current.currentRate, batchRows, performance.now() - lastBatchEnd);
          return current.currentRate;
        },
      });
    } catch (error) {
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
        // A row of this batch is locked by someone else (a production transaction): back
        // off and try the same batch again, later in this chunk or, after a few, as a
        // delayed next chunk, so the slot and the worker's stop are never held by the wait.
        lockWaits += 1;
        const backoffMs = backoffDelayMs(lockWaits, LOCK_BACKOFF);
        logger.warn(
          { waits: lockWaits, backoffMs, lockTimeoutMs: BATCH_LOCK_TIMEOUT_MS },
          'backfill batch could not get its row locks: backing off',
        );
        if (lockWaits > MAX_INLINE_LOCK_WAITS) {
          await recordDelay(pool, claim, claim.cursor, backoffMs, job.stallAfterMs);
          return sendNext(deps, job, payload, claim.cursor, backoffMs, context);
        }
        await sleep(backoffMs, undefined, { signal: context.signal });
        step -= 1;
        continue;
      }
      if (classifyError(error).kind === ErrorKind.Fatal) {
        // Bad data or a broken backfill: retrying cannot help. Record it on the job (an
        // operator fixes the cause and resumes), then let the message go to the DLQ.
        await failChain(pool, claim, error);
        logger.error({ err: describeError(error) }, 'backfill batch failed');
      }
      throw error;
    } finally {
      if (inBatch) pace.batchEnded(result?.kind === 'advanced' ? result.rows : 0);
    }

    lockWaits = 0;
    if (result === undefined) throw new Error('unreachable: runStep returned nothing');
    if (result.kind === 'stale' || result.kind === 'stopped') return stop(deps, job, claim, result, logger);
    claim = { ...claim, cursor: result.cursor, mayAdopt: false };

    if (result.kind === 'held') {
      if (result.decision.state === ThrottleState.Paused) {
        logger.warn(
          { reason: result.decision.reason, waitMs: result.holdMs },
          'backfill paused by database health',
        );
      }
      if (result.holdMs > policy.maxInlineWaitMs) {
        // The step counted this wait and moved the stall deadline already.
        return sendNext(deps, job, payload, claim.cursor, result.holdMs, context);
      }
      await sleep(result.holdMs, undefined, { signal: context.signal });
      lastBatchEnd = performance.now();
      continue;
    }

    rows += result.rows;
    if (result.done) {
      const status = await settleJob(pool, job.id);
      logger.info({ rows, status }, 'backfill partition completed');
      return;
    }
    if (performance.now() - lastSummaryAt > SUMMARY_INTERVAL_MS) {
      await refreshJobSummary(pool, job.id);
      lastSummaryAt = performance.now();
    }
    const waitMs = paceMs(result.rows, performance.now() - lastBatchEnd, result.decision.effectiveLimit);
    if (waitMs > policy.maxInlineWaitMs) {
      await recordDelay(pool, claim, claim.cursor, waitMs, job.stallAfterMs);
      return sendNext(deps, job, payload, claim.cursor, waitMs, context);
    }
    if (waitMs > 0) await sleep(waitMs, undefined, { signal: context.signal });
    waitedMs = waitMs;
    lastBatchEnd = performance.now();
  }
  span?.setAttribute('adfleet.backfill.rows', rows);
  return sendNext(deps, job, payload, claim.cursor, 0, context);
}

/** A batch that can never succeed: the partition fails (owner only), and the job settles. */
async function failChain(pool: pg.Pool, claim: Claim, error: unknown) {
  if (await failPartition(pool, claim, describeError(error))) await settleJob(pool, claim.jobId);
}

async function stop(
  deps: ChainDeps,
  job: BackfillJob,
  claim: Claim,
  result: Extract<StepResult, { kind: 'stale' | 'stopped' }>,
  logger: Logger,
): Promise<void> {
  if (result.kind === 'stale') {
    // A duplicate or stale message: the chain is owned by another message. Nothing to do.
    logger.info(
      { messageCursor: claim.cursor, partitionCursor: result.cursor },
      'stale backfill chunk ignored (the checkpoint has moved on)',
    );
    return;
  }
  const status = await settleJob(deps.pool, job.id);
  logger.info(
    { partitionStatus: result.status, jobStatus: status ?? result.jobStatus },
    'backfill chain stopped',
  );
}

/** Sends the partition's next chunk; past the trace budget, from a new trace linked to the job's. */
async function sendNext(
  deps: ChainDeps,
  job: BackfillJob,
  payload: BackfillChunk,
  cursor: number,
  delayMs: number,
  context: ChunkContext,
): Promise<void> {
  await refreshJobSummary(deps.pool, job.id);
  const next: BackfillChunk = {
    jobId: job.id,
    partition: payload.partition,
    cursor,
    chunk: payload.chunk + 1,
    traceChunks: payload.traceChunks + 1,
  };
  await deps.beforeSendNext?.(next);
  const options = delayMs > 0 ? { delaySeconds: Math.min(900, Math.ceil(delayMs / 1000)) } : {};
  if (next.traceChunks < deps.traceChunkBudget) {
    await context.messenger.send('BackfillChunk', next, options);
    return;
  }
  await inNewTrace(
    `backfill ${job.name} continues`,
    {
      links: [
        linkTo(job.traceId, job.spanId, { 'adfleet.link': 'backfill job' }),
        linkToActiveSpan({ 'adfleet.link': 'previous chunk' }),
      ],
      attributes: {
        'adfleet.backfill.job_id': job.id,
        'adfleet.backfill.job_trace_id': job.traceId ?? '',
        'adfleet.backfill.partition': payload.partition,
        'adfleet.backfill.chunk': next.chunk,
      },
    },
    () => context.messenger.send('BackfillChunk', { ...next, traceChunks: 0 }, options),
  );
}
