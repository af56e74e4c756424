import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { FatalError } from '../../shared/errors.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import {
  insertJob,
  liveJobNamed,
  loadJob,
  lockJobStatus,
  moveJob,
  refreshJobSummary,
  restJob,
} from './jobs.ts';
import { defaultProbeSql } from './latency-target.ts';
import { restartChunk } from './messages.ts';
import {
  cancelRestingPartitions,
  countPartitions,
  insertPartitions,
  loadPartitions,
  reopenPartitions,
} from './partitions.ts';
import { planJob } from './planner.ts';
import type { BackfillJob, BackfillPartition } from './records.ts';
import { type BackfillRegistry, backfillNamed } from './registry.ts';
import { isTerminal, JobStatus, PartitionStatus } from './status.ts';
import { resolvePolicy, type ThrottlePolicy, type ThrottlePolicyOverrides } from './throttle.ts';

/**
 * The job lifecycle, and the only code that moves a job's status:
 *
 *   running ──pause──▶ pausing ──(no partition running)──▶ paused ──resume──▶ running
 *   running|pausing|paused|failed ──cancel──▶ cancelling ──(none running)──▶ cancelled
 *   running ──(every partition completed)──▶ completed
 *   running ──(a partition failed, none running)──▶ failed ──resume──▶ running
 *
 * Operator commands (start, pause, resume, cancel) move a job with a compare-and-set on its
 * status (`moveJob`); the chains see the new status at their next batch's claim
 * (checkpoint.ts: a pause takes effect within one batch) and stop; `settleJob` then moves
 * the job to its resting state once no partition is running. Each command records first
 * and messages after: a crash in between leaves a job the watchdog restarts, never a
 * message for a job that does not exist.
 *
 * Lock order, to stay free of deadlocks: a batch locks only its partition row; settling
 * and operator commands lock the job row first and partitions after.
 */

export interface StartRequest {
  readonly name: string;
  readonly batchSize?: number;
  readonly batchesPerChunk?: number;
  /** Rows per second for the whole job. */
  readonly maxRate?: number;
  readonly parallel?: number;
  readonly throttle?: ThrottlePolicyOverrides;
  /**
   * Pace by production latency: the probe's p99 may be at most this many times its idle
   * p99 (`--max-latency-ratio`). Unset: paced by database health.
   */
  readonly maxLatencyRatio?: number;
  readonly stallAfterMs?: number;
  readonly traceId?: string;
  readonly spanId?: string;
}

export class BackfillConflictError extends FatalError {
  override readonly name = 'BackfillConflictError';
}

export interface Started {
  readonly job: BackfillJob;
  readonly partitions: BackfillPartition[];
}

/**
 * Records a job and its partitions (the planner bounds the id space at its current
 * high-water mark and splits it), then publishes BackfillRequested, which starts the
 * chains. A table with no rows makes a job that is completed at once.
 */
export async function startBackfill(
  pool: pg.Pool,
  messenger: Messenger,
  registry: BackfillRegistry,
  request: StartRequest,
): Promise<Started> {
  const started = await createJob(pool, registry, request);
  if (started.partitions.length > 0) {
    await messenger.publish('BackfillRequested', { jobId: started.job.id, name: started.job.name });
  }
  return started;
}

async function createJob(pool: pg.Pool, registry: BackfillRegistry, request: StartRequest): Promise<Started> {
  const definition = backfillNamed(registry, request.name);
  const batchSize = request.batchSize ?? definition.defaults.batchSize;
  const batchesPerChunk = request.batchesPerChunk ?? definition.defaults.batchesPerChunk;
  const parallel = request.parallel ?? 1;
  for (const [what, value] of Object.entries({ batchSize, batchesPerChunk, parallel })) {
    if (!Number.isInteger(value) || value < 1) throw new FatalError(`${what} must be a positive integer`);
  }
  if (request.maxRate !== undefined && !(request.maxRate > 0)) {
    throw new FatalError('maxRate must be a positive number of rows per second');
  }
  if (request.maxLatencyRatio !== undefined && !(request.maxLatencyRatio > 1)) {
    throw new FatalError('maxLatencyRatio must be a number above 1 (1.5: p99 at most 1.5 x idle)');
  }
  const overrides: ThrottlePolicyOverrides | undefined =
    request.maxLatencyRatio === undefined
      ? request.throttle
      : {
          ...request.throttle,
          latencyTarget: { ...request.throttle?.latencyTarget, maxRatio: request.maxLatencyRatio },
        };
  const resolved = resolvePolicy(definition.throttle, overrides);
  return inTransaction(pool, async (client) => {
    const throttlePolicy: ThrottlePolicy =
      resolved.latencyTarget === null || resolved.latencyTarget.probeSql !== ''
        ? resolved
        : {
            ...resolved,
            latencyTarget: {
              ...resolved.latencyTarget,
              probeSql: definition.latencyProbe ?? defaultProbeSql(client.escapeIdentifier(definition.table)),
            },
          };
    const plan = await planJob(client, definition.table, parallel);
    let job: BackfillJob;
    try {
      job = await insertJob(client, {
        name: definition.name,
        status: plan.empty ? JobStatus.Completed : JobStatus.Running,
        batchSize,
        batchesPerChunk,
        parallel,
        maxRate: request.maxRate ?? null,
        throttlePolicy,
        lowId: plan.lowId,
        highWaterId: plan.highWaterId,
        rowsEstimate: plan.rowsEstimate,
        traceId: request.traceId ?? null,
        spanId: request.spanId ?? null,
        stallAfterMs: request.stallAfterMs ?? 120_000,
        finished: plan.empty,
      });
    } catch (error) {
      if ((error as { code?: string }).code !== '23505') throw error;
      // The transaction is aborted: look the live job up outside it, for the message.
      const other = await liveJobNamed(pool, definition.name).catch(() => undefined);
      throw new BackfillConflictError(
        `a ${definition.name} backfill is already live${other === undefined ? '' : `: ${other.id} (${other.status})`}`,
      );
    }
    const partitions = await insertPartitions(client, job.id, plan.ranges, job.stallAfterMs);
    return { job, partitions };
  });
}

export interface Transition {
  readonly job: BackfillJob;
  readonly changed: boolean;
}

async function transition(
  pool: pg.Pool,
  jobId: string,
  from: readonly JobStatus[],
  to: JobStatus,
  also?: (client: pg.PoolClient) => Promise<void>,
): Promise<Transition> {
  const moved = await inTransaction(pool, async (client) => {
    const job = await moveJob(client, jobId, from, to);
    if (job !== undefined) await also?.(client);
    return job;
  });
  if (moved === undefined) {
    const job = await loadJob(pool, jobId);
    if (job === undefined) throw new FatalError(`no backfill job ${jobId}`);
    return { job, changed: false };
  }
  await settleJob(pool, jobId);
  return { job: (await loadJob(pool, jobId)) ?? moved, changed: true };
}

/** running → pausing; the chains stop at their next batch, then the job settles to paused. */
export function pauseBackfill(pool: pg.Pool, jobId: string): Promise<Transition> {
  return transition(pool, jobId, [JobStatus.Running], JobStatus.Pausing);
}

/** Any live or failed job → cancelling; it settles to cancelled once no chain is running. */
export function cancelBackfill(pool: pg.Pool, jobId: string): Promise<Transition> {
  return transition(
    pool,
    jobId,
    [JobStatus.Running, JobStatus.Pausing, JobStatus.Paused, JobStatus.Failed],
    JobStatus.Cancelling,
  );
}

/**
 * paused | pausing | failed → running, and each unfinished partition's chain is sent a
 * chunk from its durable cursor. A chain that was still running (a resume before the
 * pause settled) gets a second message with its own cursor; the compare-and-set lets
 * exactly one of the two go on.
 */
export async function resumeBackfill(
  pool: pg.Pool,
  messenger: Messenger,
  jobId: string,
): Promise<Transition & { partitions: BackfillPartition[] }> {
  let partitions: BackfillPartition[] = [];
  const resumed = await transition(
    pool,
    jobId,
    [JobStatus.Paused, JobStatus.Pausing, JobStatus.Failed],
    JobStatus.Running,
    async (client) => {
      await reopenPartitions(client, jobId);
      partitions = (await loadPartitions(client, jobId)).filter(
        (partition) => partition.status === PartitionStatus.Running,
      );
    },
  );
  if (!resumed.changed) return { ...resumed, partitions: [] };
  const chunks = partitions.map((partition) => restartChunk(jobId, partition));
  if (chunks.length > 0) await messenger.sendBatch('BackfillChunk', chunks);
  return { ...resumed, partitions };
}

/**
 * Moves a job to its resting state once no partition is running: completed when every
 * partition is, cancelled or paused as asked, failed when a partition failed. Idempotent;
 * called by the chains when they stop, by operator commands and by the watchdog (which
 * covers a worker killed between stopping a chain and settling its job).
 */
export async function settleJob(pool: pg.Pool, jobId: string): Promise<JobStatus | undefined> {
  return inTransaction(pool, async (client) => {
    const status = await lockJobStatus(client, jobId);
    if (status === undefined || isTerminal(status) || status === JobStatus.Paused) return status;
    const counts = await countPartitions(client, jobId);
    const count = (which: PartitionStatus) => counts.find((row) => row.status === which)?.count ?? 0;
    const total = counts.reduce((sum, row) => sum + row.count, 0);
    if (count(PartitionStatus.Running) > 0) return status;
    let next: JobStatus | undefined;
    if (count(PartitionStatus.Completed) === total) next = JobStatus.Completed;
    else if (status === JobStatus.Cancelling) next = JobStatus.Cancelled;
    else if (count(PartitionStatus.Failed) > 0 && status === JobStatus.Running) next = JobStatus.Failed;
    else if (status === JobStatus.Pausing) next = JobStatus.Paused;
    if (next === undefined) return status;
    if (next === JobStatus.Cancelled) await cancelRestingPartitions(client, jobId);
    const error = counts.find((row) => row.status === PartitionStatus.Failed)?.error ?? null;
    await restJob(client, jobId, next, error);
    await refreshJobSummary(client, jobId);
    return next;
  });
}
