import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { FatalError } from '../../shared/errors.ts';
import { type BackfillRegistry, backfillNamed } from './registry.ts';
import {
  resolvePolicy,
  type ThrottleDecision,
  type ThrottlePolicy,
  type ThrottlePolicyOverrides,
} from './throttle.ts';

/**
 * The durable state of backfill jobs and every transition of it. Job lifecycle:
 *
 *   running ──pause──▶ pausing ──(no partition running)──▶ paused ──resume──▶ running
 *   running|pausing|paused|failed ──cancel──▶ cancelling ──(none running)──▶ cancelled
 *   running ──(every partition completed)──▶ completed
 *   running ──(a partition failed, none running)──▶ failed ──resume──▶ running
 *
 * The CLI moves a job into pausing/cancelling/running; the chains see it at their next
 * batch (a pause takes effect within one batch) and stop; `settleJob` then moves the job
 * to its resting state once no partition is running.
 *
 * Lock order, to stay free of deadlocks: a batch locks only its partition row; settling
 * and operator commands lock the job row first and partitions after.
 */

export const JobStatus = {
  Running: 'running',
  Pausing: 'pausing',
  Paused: 'paused',
  Cancelling: 'cancelling',
  Cancelled: 'cancelled',
  Completed: 'completed',
  Failed: 'failed',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = [
  JobStatus.Cancelled,
  JobStatus.Completed,
  JobStatus.Failed,
];

export const PartitionStatus = {
  Running: 'running',
  Paused: 'paused',
  Completed: 'completed',
  Cancelled: 'cancelled',
  Failed: 'failed',
} as const;
export type PartitionStatus = (typeof PartitionStatus)[keyof typeof PartitionStatus];

export interface BackfillJob {
  readonly id: string;
  readonly name: string;
  readonly status: JobStatus;
  readonly batchSize: number;
  readonly batchesPerChunk: number;
  readonly parallel: number;
  readonly maxRate: number | null;
  readonly throttlePolicy: ThrottlePolicy;
  readonly lowId: number;
  readonly highWaterId: number;
  readonly rowsEstimate: number;
  readonly rowsProcessed: number;
  readonly currentRate: number;
  readonly lastThrottle: ThrottleDecision | null;
  readonly error: string | null;
  readonly traceId: string | null;
  readonly spanId: string | null;
  readonly stallAfterMs: number;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

export interface BackfillPartition {
  readonly jobId: string;
  readonly partition: number;
  readonly status: PartitionStatus;
  readonly rangeStart: number;
  readonly rangeEnd: number;
  readonly cursor: number;
  readonly rowsProcessed: number;
  readonly rowsWritten: number;
  readonly batches: number;
  readonly chunks: number;
  readonly currentRate: number;
  readonly rateLimit: number | null;
  readonly throttleState: string;
  readonly lastThrottle: ThrottleDecision | null;
  readonly throttledMs: number;
  readonly traceId: string | null;
  readonly error: string | null;
  readonly updatedAt: Date;
}

const JOB_COLUMNS = `
  id, name, status, batch_size AS "batchSize", batches_per_chunk AS "batchesPerChunk",
  parallel, max_rate AS "maxRate", throttle_policy AS "throttlePolicy", low_id AS "lowId",
  high_water_id AS "highWaterId", rows_estimate AS "rowsEstimate", rows_processed AS "rowsProcessed",
  current_rate AS "currentRate", last_throttle AS "lastThrottle", error, trace_id AS "traceId",
  span_id AS "spanId", stall_after_ms AS "stallAfterMs", created_at AS "createdAt",
  started_at AS "startedAt", updated_at AS "updatedAt", finished_at AS "finishedAt"`;

const PARTITION_COLUMNS = `
  job_id AS "jobId", partition, status, range_start AS "rangeStart", range_end AS "rangeEnd",
  cursor, rows_processed AS "rowsProcessed", rows_written AS "rowsWritten", batches, chunks,
  current_rate AS "currentRate", rate_limit AS "rateLimit", throttle_state AS "throttleState",
  last_throttle AS "lastThrottle", throttled_ms AS "throttledMs", trace_id AS "traceId", error,
  updated_at AS "updatedAt"`;

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface PartitionRange {
  readonly partition: number;
  /** Exclusive. */
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

/**
 * Splits the id space (low, high] into at most `parallel` contiguous ranges.
 *
 * With `quantiles` — ascending sample ids that cut the table's rows into equal shares, such
 * as Postgres's own `pg_stats.histogram_bounds` — the cuts follow the rows, so chains get
 * equal work however unevenly the ids are spread (two id ranges a world apart, a sequence
 * that jumped). Without them the ranges are of equal width.
 */
export function splitRange(
  low: number,
  high: number,
  parallel: number,
  quantiles: readonly number[] = [],
): PartitionRange[] {
  if (high <= low) return [];
  const inside = quantiles.filter((id) => id > low && id < high);
  const cuts: number[] = [];
  if (inside.length >= parallel) {
    for (let index = 1; index < parallel; index += 1) {
      cuts.push(inside[Math.round((index * (inside.length - 1)) / parallel)] as number);
    }
  } else {
    const width = Math.ceil((high - low) / parallel);
    for (let cut = low + width; cut < high; cut += width) cuts.push(cut);
  }
  const ends = [...new Set(cuts)].filter((cut) => cut > low && cut < high).sort((a, b) => a - b);
  ends.push(high);
  let start = low;
  return ends.map((end, partition) => {
    const range = { partition, start, end };
    start = end;
    return range;
  });
}

/** The planner's histogram of the table's ids: free, and close enough to split work evenly. */
async function idQuantiles(client: Queryable, table: string): Promise<number[]> {
  const { rows } = await client.query<{ bounds: string[] | null }>(
    `SELECT histogram_bounds::text::text[] AS bounds FROM pg_stats
      WHERE schemaname = current_schema() AND tablename = $1 AND attname = 'id'`,
    [table],
  );
  return (rows[0]?.bounds ?? []).map(Number).filter(Number.isFinite);
}

export interface StartRequest {
  readonly name: string;
  readonly batchSize?: number;
  readonly batchesPerChunk?: number;
  /** Rows per second for the whole job. */
  readonly maxRate?: number;
  readonly parallel?: number;
  readonly throttle?: ThrottlePolicyOverrides;
  readonly stallAfterMs?: number;
  readonly traceId?: string;
  readonly spanId?: string;
}

export class BackfillConflictError extends FatalError {
  override readonly name = 'BackfillConflictError';
}

/**
 * Records a job and its partitions: bounds the id space at its current high-water mark and
 * splits it. The caller then publishes BackfillRequested. A table with no rows makes a job
 * that is completed at once.
 */
export async function createJob(
  pool: pg.Pool,
  registry: BackfillRegistry,
  request: StartRequest,
): Promise<{ job: BackfillJob; partitions: BackfillPartition[] }> {
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
  const policy = resolvePolicy(definition.throttle, request.throttle);
  return inTransaction(pool, async (client) => {
    const table = client.escapeIdentifier(definition.table);
    // min/max on the primary key are two index probes, whatever the table's size.
    const bounds = await client.query<{ low: number | null; high: number | null }>(
      `SELECT (SELECT min(id) FROM ${table}) AS low, (SELECT max(id) FROM ${table}) AS high`,
    );
    const low = bounds.rows[0]?.low ?? null;
    const high = bounds.rows[0]?.high ?? null;
    const lowId = low === null ? 0 : low - 1;
    const highWaterId = high ?? 0;
    const rowsEstimate = await estimateRows(client, definition.table, table);
    const empty = high === null;
    let inserted: pg.QueryResult<BackfillJob>;
    try {
      inserted = await client.query<BackfillJob>(
        `INSERT INTO backfill_jobs (name, status, batch_size, batches_per_chunk, parallel, max_rate,
           throttle_policy, low_id, high_water_id, rows_estimate, trace_id, span_id, stall_after_ms,
           finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING ${JOB_COLUMNS}`,
        [
          definition.name,
          empty ? JobStatus.Completed : JobStatus.Running,
          batchSize,
          batchesPerChunk,
          parallel,
          request.maxRate ?? null,
          JSON.stringify(policy),
          lowId,
          highWaterId,
          empty ? 0 : rowsEstimate,
          request.traceId ?? null,
          request.spanId ?? null,
          request.stallAfterMs ?? 120_000,
          empty ? new Date() : null,
        ],
      );
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        const live = await client
          .query<{ id: string; status: string }>(
            `SELECT id, status FROM backfill_jobs WHERE name = $1 AND status = ANY ($2)`,
            [definition.name, LIVE_STATUSES],
          )
          .catch(() => ({ rows: [] }));
        const other = live.rows[0];
        throw new BackfillConflictError(
          `a ${definition.name} backfill is already live${other === undefined ? '' : `: ${other.id} (${other.status})`}`,
        );
      }
      throw error;
    }
    const job = inserted.rows[0] as BackfillJob;
    const ranges = splitRange(
      lowId,
      highWaterId,
      parallel,
      parallel > 1 ? await idQuantiles(client, definition.table) : [],
    );
    const partitions: BackfillPartition[] = [];
    for (const range of ranges) {
      const { rows } = await client.query<BackfillPartition>(
        `INSERT INTO backfill_partitions (job_id, partition, range_start, range_end, cursor, stall_deadline)
         VALUES ($1, $2, $3, $4, $3, now() + make_interval(secs => $5::float8 / 1000))
         RETURNING ${PARTITION_COLUMNS}`,
        [job.id, range.partition, range.start, range.end, job.stallAfterMs],
      );
      partitions.push(rows[0] as BackfillPartition);
    }
    return { job, partitions };
  });
}

const LIVE_STATUSES: readonly JobStatus[] = [
  JobStatus.Running,
  JobStatus.Pausing,
  JobStatus.Paused,
  JobStatus.Cancelling,
];

/** The planner's estimate when the table was analyzed, else an exact count (small, fresh tables). */
async function estimateRows(client: Queryable, name: string, quoted: string): Promise<number> {
  const { rows } = await client.query<{ estimate: number }>(
    `SELECT reltuples::bigint AS estimate FROM pg_class WHERE oid = to_regclass($1)`,
    [name],
  );
  const estimate = rows[0]?.estimate ?? -1;
  if (estimate > 100_000) return estimate;
  const counted = await client.query<{ count: number }>(`SELECT count(*)::bigint AS count FROM ${quoted}`);
  return counted.rows[0]?.count ?? 0;
}

export async function loadJob(db: Queryable, jobId: string): Promise<BackfillJob | undefined> {
  const { rows } = await db.query<BackfillJob>(`SELECT ${JOB_COLUMNS} FROM backfill_jobs WHERE id = $1`, [
    jobId,
  ]);
  return rows[0];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A job by id, or the latest job of a backfill by name. */
export async function findJob(db: Queryable, idOrName: string): Promise<BackfillJob | undefined> {
  if (UUID.test(idOrName)) return loadJob(db, idOrName);
  const { rows } = await db.query<BackfillJob>(
    `SELECT ${JOB_COLUMNS} FROM backfill_jobs WHERE name = $1 ORDER BY created_at DESC LIMIT 1`,
    [idOrName],
  );
  return rows[0];
}

export async function listJobs(db: Queryable, limit = 20): Promise<BackfillJob[]> {
  const { rows } = await db.query<BackfillJob>(
    `SELECT ${JOB_COLUMNS} FROM backfill_jobs ORDER BY created_at DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

export async function loadPartitions(db: Queryable, jobId: string): Promise<BackfillPartition[]> {
  const { rows } = await db.query<BackfillPartition>(
    `SELECT ${PARTITION_COLUMNS} FROM backfill_partitions WHERE job_id = $1 ORDER BY partition`,
    [jobId],
  );
  return rows;
}

/** The partitions of several jobs in one query, by job id. */
export async function loadPartitionsOf(
  db: Queryable,
  jobIds: readonly string[],
): Promise<Map<string, BackfillPartition[]>> {
  const { rows } = await db.query<BackfillPartition>(
    `SELECT ${PARTITION_COLUMNS} FROM backfill_partitions WHERE job_id = ANY ($1) ORDER BY job_id, partition`,
    [jobIds],
  );
  const byJob = new Map<string, BackfillPartition[]>();
  for (const row of rows) byJob.set(row.jobId, [...(byJob.get(row.jobId) ?? []), row]);
  return byJob;
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
  const result = await inTransaction(pool, async (client) => {
    const { rows } = await client.query<BackfillJob>(
      `UPDATE backfill_jobs SET status = $2, updated_at = now(), finished_at = NULL,
              error = CASE WHEN $2 = 'running' THEN NULL ELSE error END
        WHERE id = $1 AND status = ANY ($3)
        RETURNING ${JOB_COLUMNS}`,
      [jobId, to, from],
    );
    if (rows[0] !== undefined) await also?.(client);
    return rows[0];
  });
  if (result === undefined) {
    const job = await loadJob(pool, jobId);
    if (job === undefined) throw new FatalError(`no backfill job ${jobId}`);
    return { job, changed: false };
  }
  await settleJob(pool, jobId);
  return { job: (await loadJob(pool, jobId)) ?? result, changed: true };
}

/** running → pausing; the chains stop at their next batch, then the job settles to paused. */
export function requestPause(pool: pg.Pool, jobId: string): Promise<Transition> {
  return transition(pool, jobId, [JobStatus.Running], JobStatus.Pausing);
}

/** Any live or failed job → cancelling; it settles to cancelled once no chain is running. */
export function requestCancel(pool: pg.Pool, jobId: string): Promise<Transition> {
  return transition(
    pool,
    jobId,
    [JobStatus.Running, JobStatus.Pausing, JobStatus.Paused, JobStatus.Failed],
    JobStatus.Cancelling,
  );
}

/**
 * paused | pausing | failed → running. Returns the partitions whose chains must be
 * (re)started from their durable cursors: every partition not yet done. A chain that was
 * still running (a resume before the pause settled) gets a second message with its own
 * cursor; the compare-and-set lets exactly one of the two go on.
 */
export async function requestResume(
  pool: pg.Pool,
  jobId: string,
): Promise<Transition & { partitions: BackfillPartition[] }> {
  let partitions: BackfillPartition[] = [];
  const result = await transition(
    pool,
    jobId,
    [JobStatus.Paused, JobStatus.Pausing, JobStatus.Failed],
    JobStatus.Running,
    async (client) => {
      await client.query(
        `UPDATE backfill_partitions p
            SET status = 'running', error = NULL, updated_at = now(),
                stall_deadline = now() + make_interval(secs => j.stall_after_ms::float8 / 1000)
           FROM backfill_jobs j
          WHERE j.id = p.job_id AND p.job_id = $1 AND p.status IN ('running', 'paused', 'failed')`,
        [jobId],
      );
      partitions = (await loadPartitions(client, jobId)).filter(
        (partition) => partition.status === PartitionStatus.Running,
      );
    },
  );
  return { ...result, partitions: result.changed ? partitions : [] };
}

/**
 * Moves a job to its resting state once no partition is running: completed when every
 * partition is, cancelled or paused as asked, failed when a partition failed. Idempotent;
 * called by the chains when they stop, by operator commands and by the watchdog (which
 * covers a worker killed between stopping a chain and settling its job).
 */
export async function settleJob(pool: pg.Pool, jobId: string): Promise<JobStatus | undefined> {
  return inTransaction(pool, async (client) => {
    const { rows: jobs } = await client.query<{ status: JobStatus }>(
      'SELECT status FROM backfill_jobs WHERE id = $1 FOR UPDATE',
      [jobId],
    );
    const status = jobs[0]?.status;
    if (status === undefined || TERMINAL_JOB_STATUSES.includes(status) || status === JobStatus.Paused) {
      return status;
    }
    const { rows } = await client.query<{ status: PartitionStatus; count: number; error: string | null }>(
      `SELECT status, count(*)::int AS count, max(error) AS error
         FROM backfill_partitions WHERE job_id = $1 GROUP BY status`,
      [jobId],
    );
    const count = (which: PartitionStatus) => rows.find((row) => row.status === which)?.count ?? 0;
    const total = rows.reduce((sum, row) => sum + row.count, 0);
    if (count(PartitionStatus.Running) > 0) return status;
    let next: JobStatus | undefined;
    if (count(PartitionStatus.Completed) === total) next = JobStatus.Completed;
    else if (status === JobStatus.Cancelling) next = JobStatus.Cancelled;
    else if (count(PartitionStatus.Failed) > 0 && status === JobStatus.Running) next = JobStatus.Failed;
    else if (status === JobStatus.Pausing) next = JobStatus.Paused;
    if (next === undefined) return status;
    if (next === JobStatus.Cancelled) {
      await client.query(
        `UPDATE backfill_partitions SET status = 'cancelled', updated_at = now()
          WHERE job_id = $1 AND status IN ('paused', 'failed')`,
        [jobId],
      );
    }
    const error = rows.find((row) => row.status === PartitionStatus.Failed)?.error ?? null;
    await client.query(
      `UPDATE backfill_jobs
          SET status = $2, updated_at = now(),
              finished_at = CASE WHEN $2 IN ('completed', 'cancelled', 'failed') THEN now() END,
              error = CASE WHEN $2 = 'failed' THEN $3 ELSE error END
        WHERE id = $1`,
      [jobId, next, error],
    );
    await refreshJobSummary(client, jobId);
    return next;
  });
}

/** Recomputes the job row's progress summary from its partitions (they are the truth). */
export async function refreshJobSummary(db: Queryable, jobId: string): Promise<void> {
  await db.query(
    `UPDATE backfill_jobs j
        SET rows_processed = s.rows_processed, current_rate = s.current_rate,
            last_throttle = COALESCE(s.last_throttle, j.last_throttle), updated_at = now()
       FROM (SELECT coalesce(sum(rows_processed), 0)::bigint AS rows_processed,
                    coalesce(sum(current_rate) FILTER (WHERE status = 'running'), 0) AS current_rate,
                    (array_agg(last_throttle ORDER BY last_throttle->>'at' DESC)
                       FILTER (WHERE last_throttle IS NOT NULL))[1] AS last_throttle
               FROM backfill_partitions WHERE job_id = $1) s
      WHERE j.id = $1`,
    [jobId],
  );
}

/** Marks the job started (first BackfillRequested handled); later calls keep the first time. */
export async function markStarted(db: Queryable, jobId: string): Promise<void> {
  await db.query(`UPDATE backfill_jobs SET started_at = coalesce(started_at, now()) WHERE id = $1`, [jobId]);
}

export interface Progress {
  /** Share done, 0…1: rows processed of the estimate at start; 1 only once completed. */
  readonly fraction: number;
  readonly rowsProcessed: number;
  /** Rows still to go, from the estimate at start (never below 0). */
  readonly rowsRemaining: number;
  /** Sum of the running chains' rates, rows/s. */
  readonly rate: number;
  /** Seconds to go at the current rate; undefined when nothing moves. */
  readonly etaSeconds: number | undefined;
  /** The most recent throttle decision of any partition. */
  readonly throttle: ThrottleDecision | null;
  readonly partitions: { readonly running: number; readonly total: number };
}

/** The most a running job shows: it is not done until its chains say so. */
const RUNNING_FRACTION_CAP = 0.999;

/**
 * Progress of a job from its partitions: rows, share done, rate, ETA, throttle state.
 * The share counts rows against the estimate at start (as gh-ost does), not the cursors'
 * share of the id space: ids are rarely dense — a few old rows far below the rest put
 * nearly the whole id space behind the first cursor move. Without an estimate (an empty
 * table at start), the id space is all there is.
 */
export function progressOf(
  job: Pick<BackfillJob, 'status' | 'rowsEstimate'>,
  partitions: readonly Pick<
    BackfillPartition,
    'rangeStart' | 'rangeEnd' | 'cursor' | 'rowsProcessed' | 'status' | 'currentRate' | 'lastThrottle'
  >[],
): Progress {
  let span = 0;
  let behind = 0;
  let rows = 0;
  let rate = 0;
  let throttle: ThrottleDecision | null = null;
  for (const partition of partitions) {
    span += partition.rangeEnd - partition.rangeStart;
    behind += partition.cursor - partition.rangeStart;
    rows += partition.rowsProcessed;
    if (partition.status === PartitionStatus.Running) rate += partition.currentRate;
    if (partition.lastThrottle !== null && (throttle === null || partition.lastThrottle.at > throttle.at)) {
      throttle = partition.lastThrottle;
    }
  }
  const done = job.status === JobStatus.Completed;
  const share = job.rowsEstimate > 0 ? rows / job.rowsEstimate : span === 0 ? 1 : behind / span;
  const fraction = done ? 1 : Math.min(RUNNING_FRACTION_CAP, share);
  const rowsRemaining = done ? 0 : Math.max(0, job.rowsEstimate - rows);
  return {
    fraction,
    rowsProcessed: rows,
    rowsRemaining,
    rate,
    etaSeconds: done ? 0 : rate > 0 ? rowsRemaining / rate : undefined,
    throttle,
    partitions: {
      running: partitions.filter((partition) => partition.status === PartitionStatus.Running).length,
      total: partitions.length,
    },
  };
}
