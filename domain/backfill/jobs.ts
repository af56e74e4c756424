import type pg from 'pg';
import type { BackfillJob } from './records.ts';
import { type JobStatus, LIVE_JOB_STATUSES } from './status.ts';

/**
 * Every statement on backfill_jobs. The job row holds the lifecycle, the bounds fixed at
 * start and a summary of its partitions (which are the truth: see partitions.ts).
 */

type Queryable = Pick<pg.ClientBase, 'query'>;

const JOB_COLUMNS = `
  id, name, status, batch_size AS "batchSize", batches_per_chunk AS "batchesPerChunk",
  parallel, max_rate AS "maxRate", throttle_policy AS "throttlePolicy", low_id AS "lowId",
  high_water_id AS "highWaterId", rows_estimate AS "rowsEstimate", rows_processed AS "rowsProcessed",
  current_rate AS "currentRate", last_throttle AS "lastThrottle", error, trace_id AS "traceId",
  span_id AS "spanId", stall_after_ms AS "stallAfterMs", created_at AS "createdAt",
  started_at AS "startedAt", updated_at AS "updatedAt", finished_at AS "finishedAt"`;

/** What a new job row is given: the settings fixed at start, and whether it starts finished (an empty range). */
export type NewJob = Pick<
  BackfillJob,
  | 'name'
  | 'status'
  | 'batchSize'
  | 'batchesPerChunk'
  | 'parallel'
  | 'maxRate'
  | 'throttlePolicy'
  | 'lowId'
  | 'highWaterId'
  | 'rowsEstimate'
  | 'traceId'
  | 'spanId'
  | 'stallAfterMs'
> & { readonly finished: boolean };

/** Inserts a job; a second live job of the same backfill violates a unique index (23505). */
export async function insertJob(db: Queryable, job: NewJob): Promise<BackfillJob> {
  const { rows } = await db.query<BackfillJob>(
    `INSERT INTO backfill_jobs (name, status, batch_size, batches_per_chunk, parallel, max_rate,
       throttle_policy, low_id, high_water_id, rows_estimate, trace_id, span_id, stall_after_ms,
       finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $14 THEN now() END)
     RETURNING ${JOB_COLUMNS}`,
    [
      job.name,
      job.status,
      job.batchSize,
      job.batchesPerChunk,
      job.parallel,
      job.maxRate,
      JSON.stringify(job.throttlePolicy),
      job.lowId,
      job.highWaterId,
      job.rowsEstimate,
      job.traceId,
      job.spanId,
      job.stallAfterMs,
      job.finished,
    ],
  );
  return rows[0] as BackfillJob;
}

/** The live job of a backfill, if any. */
export async function liveJobNamed(
  db: Queryable,
  name: string,
): Promise<{ id: string; status: JobStatus } | undefined> {
  const { rows } = await db.query<{ id: string; status: JobStatus }>(
    `SELECT id, status FROM backfill_jobs WHERE name = $1 AND status = ANY ($2)`,
    [name, LIVE_JOB_STATUSES],
  );
  return rows[0];
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

/**
 * Compare-and-set of the job's status: moves it to `to` only from one of `from` (an
 * operator's command). Returns the job as changed, or undefined when it was elsewhere.
 */
export async function moveJob(
  db: Queryable,
  jobId: string,
  from: readonly JobStatus[],
  to: JobStatus,
): Promise<BackfillJob | undefined> {
  const { rows } = await db.query<BackfillJob>(
    `UPDATE backfill_jobs SET status = $2, updated_at = now(), finished_at = NULL,
            error = CASE WHEN $2 = 'running' THEN NULL ELSE error END
      WHERE id = $1 AND status = ANY ($3)
      RETURNING ${JOB_COLUMNS}`,
    [jobId, to, from],
  );
  return rows[0];
}

/** Locks the job row (settling takes the job first, partitions after) and reads its status. */
export async function lockJobStatus(db: Queryable, jobId: string): Promise<JobStatus | undefined> {
  const { rows } = await db.query<{ status: JobStatus }>(
    'SELECT status FROM backfill_jobs WHERE id = $1 FOR UPDATE',
    [jobId],
  );
  return rows[0]?.status;
}

/** The job comes to rest in `status`; a failed job keeps the first partition error as its own. */
export async function restJob(db: Queryable, jobId: string, status: JobStatus, error: string | null) {
  await db.query(
    `UPDATE backfill_jobs
        SET status = $2, updated_at = now(),
            finished_at = CASE WHEN $2 IN ('completed', 'cancelled', 'failed') THEN now() END,
            error = CASE WHEN $2 = 'failed' THEN $3 ELSE error END
      WHERE id = $1`,
    [jobId, status, error],
  );
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

/** Jobs that say a chain is running while none is (a worker killed before settling them). */
export async function unsettledJobIds(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT j.id FROM backfill_jobs j
      WHERE j.status IN ('running', 'pausing', 'cancelling')
        AND NOT EXISTS (SELECT 1 FROM backfill_partitions p WHERE p.job_id = j.id AND p.status = 'running')`,
  );
  return rows.map((row) => row.id);
}

/** The shortest stall timeout among jobs with chains, ms; undefined when none is live. */
export async function shortestLiveStallMs(db: Queryable): Promise<number | undefined> {
  const { rows } = await db.query<{ shortest: number | null }>(
    `SELECT min(stall_after_ms) AS shortest FROM backfill_jobs
      WHERE status IN ('running', 'pausing', 'cancelling')`,
  );
  return rows[0]?.shortest ?? undefined;
}
