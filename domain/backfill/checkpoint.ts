import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { FatalError, RetryableError } from '../../shared/errors.ts';
import type { AnyBackfill } from './definition.ts';
import { JobStatus, PartitionStatus } from './jobs.ts';
import type { ThrottleDecision } from './throttle.ts';

/**
 * The crash-safety argument, enforced here.
 *
 * Each batch is ONE transaction: lock the partition row, check the claim, read the batch
 * by keyset after the cursor, write it, advance the cursor with compare-and-set. Either
 * all of it commits or none of it does, so a row is written by the batch that moves the
 * cursor past it and by no other.
 *
 * A chunk message may run batches only if it owns the partition's chain:
 *  - its cursor is the partition's cursor (the normal case), or
 *  - it is the very message whose batch last moved the cursor (`owner_message_id`): SQS
 *    delivered it again because the worker died after a commit and before it sent the
 *    next chunk (or mid-chunk). It carries on from the durable cursor, so the chain
 *    neither stalls nor skips.
 * Any other message — a duplicate, a stale copy, a second resume — finds a cursor that
 * moved on and an owner that is not itself, and does nothing. Only the owner sends the
 * next chunk, so the chain cannot fork.
 */

export interface Claim {
  readonly jobId: string;
  readonly partition: number;
  /** The cursor the message carries (later: the cursor this delivery last committed). */
  readonly cursor: number;
  readonly messageId: string;
  /** First batch of a delivery: may adopt the cursor if this message is the owner. */
  readonly mayAdopt: boolean;
}

interface PartitionLock {
  readonly status: PartitionStatus;
  readonly cursor: number;
  readonly rangeEnd: number;
  readonly ownerMessageId: string | null;
  readonly throttleState: string;
  readonly jobStatus: JobStatus;
}

export type ClaimResult =
  | {
      readonly kind: 'owned';
      readonly cursor: number;
      readonly rangeEnd: number;
      readonly throttleState: string;
    }
  | { readonly kind: 'stale'; readonly cursor: number }
  | { readonly kind: 'stopped'; readonly status: PartitionStatus; readonly jobStatus: JobStatus };

/** Locks the partition row and decides whether this message may go on (see above). */
async function claimPartition(client: pg.ClientBase, claim: Claim): Promise<ClaimResult> {
  const { rows } = await client.query<PartitionLock>(
    `SELECT p.status, p.cursor, p.range_end AS "rangeEnd", p.owner_message_id AS "ownerMessageId",
            p.throttle_state AS "throttleState", j.status AS "jobStatus"
       FROM backfill_partitions p JOIN backfill_jobs j ON j.id = p.job_id
      WHERE p.job_id = $1 AND p.partition = $2
        FOR UPDATE OF p`,
    [claim.jobId, claim.partition],
  );
  const row = rows[0];
  if (row === undefined)
    throw new FatalError(`no partition ${claim.partition} of backfill job ${claim.jobId}`);
  const owner = row.cursor === claim.cursor || (claim.mayAdopt && row.ownerMessageId === claim.messageId);
  if (!owner) return { kind: 'stale', cursor: row.cursor };
  if (row.status !== PartitionStatus.Running && row.status !== PartitionStatus.Paused) {
    return { kind: 'stopped', status: row.status, jobStatus: row.jobStatus };
  }
  // Cancelling or cancelled: the chain ends for good; any other state but running (pausing,
  // paused, failed…): the chain stops where it is and a resume carries it on.
  let stopAs: PartitionStatus | undefined;
  if (row.jobStatus === JobStatus.Cancelling || row.jobStatus === JobStatus.Cancelled) {
    stopAs = PartitionStatus.Cancelled;
  } else if (row.jobStatus !== JobStatus.Running) stopAs = PartitionStatus.Paused;
  if (stopAs !== undefined) {
    await client.query(
      `UPDATE backfill_partitions SET status = $3, updated_at = now() WHERE job_id = $1 AND partition = $2`,
      [claim.jobId, claim.partition, stopAs],
    );
    return { kind: 'stopped', status: stopAs, jobStatus: row.jobStatus };
  }
  return { kind: 'owned', cursor: row.cursor, rangeEnd: row.rangeEnd, throttleState: row.throttleState };
}

export interface BatchSettings {
  readonly batchSize: number;
  readonly stallAfterMs: number;
  readonly chunk: number;
  readonly traceId: string | null;
  readonly decision: ThrottleDecision;
  /** Time the chain waited for the throttle since its previous batch, ms. */
  readonly waitedMs: number;
  /** Rows/s to record (EWMA), computed by the caller. */
  readonly rate: (rows: number) => number;
}

export type BatchResult =
  | Exclude<ClaimResult, { kind: 'owned' }>
  | {
      readonly kind: 'advanced';
      readonly from: number;
      readonly cursor: number;
      readonly rows: number;
      readonly written: number;
      readonly done: boolean;
    };

/** Runs one batch of `definition` for the claimant, in one transaction (see the comment at the top). */
export function runBatch(
  pool: pg.Pool,
  definition: AnyBackfill,
  claim: Claim,
  settings: BatchSettings,
): Promise<BatchResult> {
  return inTransaction(pool, async (client) => {
    const claimed = await claimPartition(client, claim);
    if (claimed.kind !== 'owned') return claimed;
    const rows = await definition.readBatch(client, {
      after: claimed.cursor,
      until: claimed.rangeEnd,
      limit: settings.batchSize,
    });
    assertKeysetOrder(definition.name, rows, claimed.cursor, claimed.rangeEnd, settings.batchSize);
    const written = rows.length === 0 ? 0 : await definition.writeBatch(client, rows);
    const done = rows.length < settings.batchSize;
    const cursor = done ? claimed.rangeEnd : (rows.at(-1) as { id: number }).id;
    await advanceCheckpoint(client, claim, {
      from: claimed.cursor,
      to: cursor,
      rows: rows.length,
      written,
      done,
      previousThrottleState: claimed.throttleState,
      ...settings,
      rate: settings.rate(rows.length),
    });
    return { kind: 'advanced', from: claimed.cursor, cursor, rows: rows.length, written, done };
  });
}

/** A definition whose read breaks the keyset contract would skip or repeat rows: stop the job instead. */
function assertKeysetOrder(
  name: string,
  rows: readonly { id: number }[],
  after: number,
  until: number,
  limit: number,
) {
  if (rows.length > limit)
    throw new FatalError(`backfill ${name} read ${rows.length} rows, limit is ${limit}`);
  let previous = after;
  for (const row of rows) {
    if (!(row.id > previous) || row.id > until) {
      throw new FatalError(
        `backfill ${name} read ids out of keyset order: ${row.id} after ${previous} (range ends at ${until})`,
      );
    }
    previous = row.id;
  }
}

/**
 * Compare-and-set of the cursor, with the batch's counters and throttle decision. The row
 * is locked by this transaction already; the `cursor = from` guard states the invariant
 * anyway, and a miss aborts the whole batch.
 */
async function advanceCheckpoint(
  client: pg.ClientBase,
  claim: Claim,
  batch: Omit<BatchSettings, 'rate' | 'batchSize'> & {
    readonly from: number;
    readonly to: number;
    readonly rows: number;
    readonly written: number;
    readonly done: boolean;
    readonly rate: number;
    readonly previousThrottleState: string;
  },
): Promise<void> {
  const { decision } = batch;
  const result = await client.query(
    `UPDATE backfill_partitions
        SET cursor = $4, owner_message_id = $5, rows_processed = rows_processed + $6,
            rows_written = rows_written + $7, batches = batches + 1, chunks = greatest(chunks, $8),
            current_rate = $9, rate_limit = $10, throttle_state = $11, last_throttle = $12,
            trace_id = coalesce($13, trace_id),
            status = CASE WHEN $14 THEN 'completed' ELSE 'running' END,
            stall_deadline = now() + make_interval(secs => $15::float8 / 1000),
            throttled_ms = throttled_ms + $16, updated_at = now()
      WHERE job_id = $1 AND partition = $2 AND cursor = $3`,
    [
      claim.jobId,
      claim.partition,
      batch.from,
      batch.to,
      claim.messageId,
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
  if (result.rowCount !== 1) {
    throw new RetryableError(`checkpoint of ${claim.jobId}/${claim.partition} moved during the batch`);
  }
  if (batch.previousThrottleState !== decision.state) await recordThrottleEvent(client, claim, decision);
}

async function recordThrottleEvent(client: pg.ClientBase, claim: Claim, decision: ThrottleDecision) {
  await client.query(
    `INSERT INTO backfill_throttle_events
       (job_id, partition, state, reason, probe_ms, active_connections, replication_lag_ms, rate_limit)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [
      claim.jobId,
      claim.partition,
      decision.state,
      decision.reason,
      decision.reading.probeMs,
      decision.reading.activeConnections,
      decision.reading.replicationLagMs,
      decision.limit,
    ],
  );
}

/**
 * Records a decision that runs no batch (paused by database health) and how long the chain
 * will wait; only the chain's owner may. Returns the claim result.
 */
export function recordWait(
  pool: pg.Pool,
  claim: Claim,
  decision: ThrottleDecision,
  waitMs: number,
  stallAfterMs: number,
): Promise<ClaimResult> {
  return inTransaction(pool, async (client) => {
    const claimed = await claimPartition(client, claim);
    if (claimed.kind !== 'owned') return claimed;
    await client.query(
      `UPDATE backfill_partitions
          SET rate_limit = $3, throttle_state = $4, last_throttle = $5, throttled_ms = throttled_ms + $6,
              current_rate = 0, status = 'running',
              stall_deadline = now() + make_interval(secs => ($6 + $7)::float8 / 1000), updated_at = now()
        WHERE job_id = $1 AND partition = $2`,
      [
        claim.jobId,
        claim.partition,
        decision.limit,
        decision.state,
        JSON.stringify(decision),
        waitMs,
        stallAfterMs,
      ],
    );
    if (claimed.throttleState !== decision.state) await recordThrottleEvent(client, claim, decision);
    return claimed;
  });
}

/** Pushes the stall deadline past a delayed next chunk, and counts the wait; owner only (by cursor). */
export async function recordDelay(
  pool: pg.Pool,
  jobId: string,
  partition: number,
  cursor: number,
  waitMs: number,
  stallAfterMs: number,
): Promise<void> {
  await pool.query(
    `UPDATE backfill_partitions
        SET throttled_ms = throttled_ms + $4,
            stall_deadline = now() + make_interval(secs => ($4 + $5)::float8 / 1000)
      WHERE job_id = $1 AND partition = $2 AND cursor = $3`,
    [jobId, partition, cursor, waitMs, stallAfterMs],
  );
}

/** A batch that can never succeed: the partition fails with the reason (owner only). */
export async function failPartition(pool: pg.Pool, claim: Claim, reason: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE backfill_partitions SET status = 'failed', error = $5, updated_at = now()
      WHERE job_id = $1 AND partition = $2 AND status IN ('running', 'paused')
        AND (cursor = $3 OR owner_message_id = $4)`,
    [claim.jobId, claim.partition, claim.cursor, claim.messageId, reason.slice(0, 2_000)],
  );
  return rowCount === 1;
}
