import type pg from 'pg';
import type { PartitionRange } from './planner.ts';
import type { BackfillPartition } from './records.ts';
import type { JobStatus, PartitionStatus } from './status.ts';
import type { ThrottleDecision } from './throttle.ts';

/**
 * Every statement on backfill_partitions (and the throttle events kept per partition).
 * A partition row is one chain's durable state: its cursor, which each batch advances by
 * compare-and-set in its own transaction (checkpoint.ts says why that is crash-safe), its
 * counters, its throttle state and its stall deadline (watchdog).
 */

type Queryable = Pick<pg.ClientBase, 'query'>;

const PARTITION_COLUMNS = `
  job_id AS "jobId", partition, status, range_start AS "rangeStart", range_end AS "rangeEnd",
  cursor, rows_processed AS "rowsProcessed", rows_written AS "rowsWritten", batches, chunks,
  current_rate AS "currentRate", rate_limit AS "rateLimit", throttle_state AS "throttleState",
  last_throttle AS "lastThrottle", throttled_ms AS "throttledMs", trace_id AS "traceId", error,
  updated_at AS "updatedAt"`;

/** A partition, as a statement addresses it. */
export interface PartitionKey {
  readonly jobId: string;
  readonly partition: number;
}

export async function insertPartitions(
  db: Queryable,
  jobId: string,
  ranges: readonly PartitionRange[],
  stallAfterMs: number,
): Promise<BackfillPartition[]> {
  if (ranges.length === 0) return [];
  const { rows } = await db.query<BackfillPartition>(
    `INSERT INTO backfill_partitions (job_id, partition, range_start, range_end, cursor, stall_deadline)
     SELECT $1, r.partition, r.range_start, r.range_end, r.range_start,
            now() + make_interval(secs => $5::float8 / 1000)
       FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS r (partition, range_start, range_end)
     RETURNING ${PARTITION_COLUMNS}`,
    [
      jobId,
      ranges.map((range) => range.partition),
      ranges.map((range) => range.start),
      ranges.map((range) => range.end),
      stallAfterMs,
    ],
  );
  return rows.sort((a, b) => a.partition - b.partition);
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

/** What a batch's transaction sees of its partition once it holds the row lock. */
export interface LockedPartition {
  readonly status: PartitionStatus;
  readonly cursor: number;
  readonly rangeEnd: number;
  readonly ownerMessageId: string | null;
  readonly throttleState: string;
  /** The throttle's limit the chain last recorded, rows/s; null: unlimited. */
  readonly rateLimit: number | null;
  /** The chain's recent rows/s (EWMA) as last recorded. */
  readonly currentRate: number;
  readonly jobStatus: JobStatus;
}

/** Locks the partition row for the rest of the transaction, with its job's status. */
export async function lockPartition(
  client: Queryable,
  key: PartitionKey,
): Promise<LockedPartition | undefined> {
  const { rows } = await client.query<LockedPartition>(
    `SELECT p.status, p.cursor, p.range_end AS "rangeEnd", p.owner_message_id AS "ownerMessageId",
            p.throttle_state AS "throttleState", p.rate_limit AS "rateLimit",
            p.current_rate AS "currentRate", j.status AS "jobStatus"
       FROM backfill_partitions p JOIN backfill_jobs j ON j.id = p.job_id
      WHERE p.job_id = $1 AND p.partition = $2
        FOR UPDATE OF p`,
    [key.jobId, key.partition],
  );
  return rows[0];
}

/** The chain stops where it is (paused) or for good (cancelled); the caller holds the lock. */
export async function stopPartition(client: Queryable, key: PartitionKey, as: PartitionStatus) {
  await client.query(
    `UPDATE backfill_partitions SET status = $3, updated_at = now() WHERE job_id = $1 AND partition = $2`,
    [key.jobId, key.partition, as],
  );
}

export interface Advance {
  readonly from: number;
  readonly to: number;
  readonly messageId: string;
  readonly rows: number;
  readonly written: number;
  readonly chunk: number;
  /** Rows/s to record (EWMA); 0 once done. */
  readonly rate: number;
  readonly decision: ThrottleDecision;
  readonly traceId: string | null;
  readonly done: boolean;
  readonly stallAfterMs: number;
  /** Time the chain waited for the throttle since its previous batch, ms. */
  readonly waitedMs: number;
}

/**
 * Compare-and-set of the cursor, with the batch's counters and throttle decision. Returns
 * false when the cursor was not at `from` (the caller aborts the batch).
 */
export async function advanceCursor(client: Queryable, key: PartitionKey, batch: Advance): Promise<boolean> {
  const { decision } = batch;
  const result = await client.query(
    `UPDATE backfill_partitions
        SET cursor = $4, owner_message_id = $5, rows_processed = rows_processed + $6,
            rows_written = rows_written + $7, batches = batches + 1, chunks = greatest(chunks, $8),
            current_rate = $9, rate_limit = $10, throttle_state = $11, last_throttle = $12,
            trace_id = coalesce($13, trace_id),
            status = CASE WHEN $14 THEN 'completed' ELSE 'running' END,
            stall_deadline = now() + make_interval(secs => $15::float8 / 1000),
            throttled_ms = throttled_ms + $16, revivals = 0, updated_at = now()
      WHERE job_id = $1 AND partition = $2 AND cursor = $3`,
    [
      key.jobId,
      key.partition,
      batch.from,
      batch.to,
      batch.messageId,
      batch.rows,
      batch.written,
      batch.chunk,
      batch.done ? 0 : batch.rate,
      decision.limit,
      decision.state,
      JSON.stringify(decision),
      batch.traceId,
      batch.done,
      batch.stallAfterMs,
      Math.round(batch.waitedMs),
    ],
  );
  return result.rowCount === 1;
}

/**
 * A decision that runs no batch (a pause): the decision, and the wait counted and added
 * to the stall deadline. The caller holds the row lock and owns the chain.
 */
export async function recordWait(
  client: Queryable,
  key: PartitionKey,
  decision: ThrottleDecision,
  waitMs: number,
  stallAfterMs: number,
) {
  await client.query(
    `UPDATE backfill_partitions
        SET rate_limit = $3, throttle_state = $4, last_throttle = $5, throttled_ms = throttled_ms + $6,
            current_rate = 0, status = 'running',
            stall_deadline = now() + make_interval(secs => ($6 + $7)::float8 / 1000), updated_at = now()
      WHERE job_id = $1 AND partition = $2`,
    [
      key.jobId,
      key.partition,
      decision.limit,
      decision.state,
      JSON.stringify(decision),
      waitMs,
      stallAfterMs,
    ],
  );
}

/** Pushes the stall deadline past a delayed next chunk, and counts the wait; owner only (by cursor). */
export async function recordDelay(
  db: Queryable,
  key: PartitionKey,
  cursor: number,
  waitMs: number,
  stallAfterMs: number,
): Promise<void> {
  await db.query(
    `UPDATE backfill_partitions
        SET throttled_ms = throttled_ms + $4,
            stall_deadline = now() + make_interval(secs => ($4 + $5)::float8 / 1000)
      WHERE job_id = $1 AND partition = $2 AND cursor = $3`,
    [key.jobId, key.partition, cursor, waitMs, stallAfterMs],
  );
}

/** A change of the partition's throttle state, with the readings (and latency target) behind it. */
export async function recordThrottleEvent(db: Queryable, key: PartitionKey, decision: ThrottleDecision) {
  await db.query(
    `INSERT INTO backfill_throttle_events
       (job_id, partition, state, reason, probe_ms, active_connections, replication_lag_ms, rate_limit,
        target_ratio, baseline_p99_ms, probe_p99_ms, batch_size)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      key.jobId,
      key.partition,
      decision.state,
      decision.reason,
      decision.reading.probeMs,
      decision.reading.activeConnections,
      decision.reading.replicationLagMs,
      decision.limit,
      decision.latency?.targetRatio ?? null,
      decision.latency?.baselineP99Ms ?? null,
      decision.latency?.probeP99Ms ?? null,
      decision.batchSize,
    ],
  );
}

/**
 * The partition fails with the reason, if this message owns its chain (its cursor is the
 * partition's, or it moved it last). Returns whether it did.
 */
export async function failPartition(
  db: Queryable,
  key: PartitionKey & { readonly cursor: number; readonly messageId: string },
  reason: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE backfill_partitions SET status = 'failed', error = $5, updated_at = now()
      WHERE job_id = $1 AND partition = $2 AND status IN ('running', 'paused')
        AND (cursor = $3 OR owner_message_id = $4)`,
    [key.jobId, key.partition, key.cursor, key.messageId, reason.slice(0, 2_000)],
  );
  return rowCount === 1;
}

/** Resume: every unfinished partition runs again from its cursor, with a fresh stall deadline. */
export async function reopenPartitions(db: Queryable, jobId: string): Promise<void> {
  await db.query(
    `UPDATE backfill_partitions p
        SET status = 'running', error = NULL, updated_at = now(),
            stall_deadline = now() + make_interval(secs => j.stall_after_ms::float8 / 1000)
       FROM backfill_jobs j
      WHERE j.id = p.job_id AND p.job_id = $1 AND p.status IN ('running', 'paused', 'failed')`,
    [jobId],
  );
}

export interface StatusCount {
  readonly status: PartitionStatus;
  readonly count: number;
  /** One partition error of that status, if any. */
  readonly error: string | null;
}

/** How many of the job's partitions are in each status. */
export async function countPartitions(db: Queryable, jobId: string): Promise<StatusCount[]> {
  const { rows } = await db.query<StatusCount>(
    `SELECT status, count(*)::int AS count, max(error) AS error
       FROM backfill_partitions WHERE job_id = $1 GROUP BY status`,
    [jobId],
  );
  return rows;
}

/** A cancelled job's resting partitions are cancelled too. */
export async function cancelRestingPartitions(db: Queryable, jobId: string) {
  await db.query(
    `UPDATE backfill_partitions SET status = 'cancelled', updated_at = now()
      WHERE job_id = $1 AND status IN ('paused', 'failed')`,
    [jobId],
  );
}

export interface StalledPartition {
  readonly jobId: string;
  readonly partition: number;
  readonly cursor: number;
  readonly chunks: number;
  readonly name: string;
  readonly traceId: string | null;
  readonly spanId: string | null;
  /** Restarts since the chain last committed a batch, this one included. */
  readonly revivals: number;
  /** Past MAX_REVIVALS: the partition was failed with the reason instead of restarted. */
  readonly gaveUp: boolean;
}

/**
 * Restarts of one chain without a committed batch in between, after which the watchdog
 * fails the partition (with the reason) instead of restarting it again: a chain whose
 * message keeps dying must reach an operator, not run `running` forever.
 */
export const MAX_REVIVALS = 5;

export function gaveUpReason(revivals: number): string {
  return `the chain stalled ${revivals} times without committing a batch; the watchdog gave up restarting it (see the backfill-chunk DLQ and worker logs), fix the cause and resume the job`;
}

/**
 * Claims the partitions of live jobs that are past their stall deadline: each gets a new
 * deadline in the same statement, so of several watchdogs exactly one returns it. A
 * partition past MAX_REVIVALS is failed in that same statement.
 */
export async function claimStalledPartitions(db: Queryable): Promise<StalledPartition[]> {
  const { rows } = await db.query<StalledPartition>(
    `UPDATE backfill_partitions p
        SET stall_deadline = now() + make_interval(secs => j.stall_after_ms::float8 / 1000),
            revivals = p.revivals + 1,
            status = CASE WHEN p.revivals + 1 > $1 THEN 'failed' ELSE p.status END,
            error = CASE WHEN p.revivals + 1 > $1 THEN $2 ELSE p.error END,
            updated_at = now()
       FROM backfill_jobs j
      WHERE j.id = p.job_id AND p.stall_deadline < now()
        AND ((p.status = 'running' AND j.status IN ('running', 'pausing', 'cancelling'))
          OR (p.status = 'paused' AND j.status = 'running'))
      RETURNING p.job_id AS "jobId", p.partition, p.cursor, p.chunks, j.name,
                j.trace_id AS "traceId", j.span_id AS "spanId", p.revivals,
                p.revivals > $1 AS "gaveUp"`,
    [MAX_REVIVALS, gaveUpReason(MAX_REVIVALS + 1)],
  );
  return rows;
}
