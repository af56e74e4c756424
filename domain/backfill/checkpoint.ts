import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { FatalError, RetryableError } from '../../shared/errors.ts';
import type { AnyBackfill } from './definition.ts';
import {
  advanceCursor,
  lockPartition,
  type PartitionKey,
  recordThrottleEvent,
  recordWait,
  stopPartition,
} from './partitions.ts';
import { JobStatus, PartitionStatus } from './status.ts';
import { holdsBatches, type ThrottleDecision } from './throttle.ts';

/**
 * One step of a chain — the crash-safety argument, enforced here.
 *
 * Each step is ONE transaction: lock the partition row, check the claim, decide the pace
 * from the rate state the claim read, then either record a hold (a pause, or the latency
 * target learning its baseline) or read the batch by keyset after the cursor, write it,
 * and advance the cursor with compare-and-set. Either
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

export interface Claim extends PartitionKey {
  /** The cursor the message carries (later: the cursor this delivery last committed). */
  readonly cursor: number;
  readonly messageId: string;
  /** First batch of a delivery: may adopt the cursor if this message is the owner. */
  readonly mayAdopt: boolean;
}

/** The pace the chain last recorded: where the throttle goes on from. */
export interface RateState {
  /** rows/s; null: unlimited. */
  readonly rateLimit: number | null;
  /** Recent rows/s (EWMA). */
  readonly currentRate: number;
}

export type ClaimResult =
  | {
      readonly kind: 'owned';
      readonly cursor: number;
      readonly rangeEnd: number;
      readonly throttleState: string;
      readonly rate: RateState;
    }
  | { readonly kind: 'stale'; readonly cursor: number }
  | { readonly kind: 'stopped'; readonly status: PartitionStatus; readonly jobStatus: JobStatus };

/** Locks the partition row and decides whether this message may go on (see above). */
export async function claimPartition(client: pg.ClientBase, claim: Claim): Promise<ClaimResult> {
  const row = await lockPartition(client, claim);
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
    await stopPartition(client, claim, stopAs);
    return { kind: 'stopped', status: stopAs, jobStatus: row.jobStatus };
  }
  return {
    kind: 'owned',
    cursor: row.cursor,
    rangeEnd: row.rangeEnd,
    throttleState: row.throttleState,
    rate: { rateLimit: row.rateLimit, currentRate: row.currentRate },
  };
}

export interface StepSettings {
  /** The job's batch size; the throttle's decision may ask for smaller batches. */
  readonly batchSize: number;
  readonly stallAfterMs: number;
  readonly chunk: number;
  readonly traceId: string | null;
  /** Time the chain waited for the throttle since its previous batch, ms. */
  readonly waitedMs: number;
  /** The throttle's decision for this step, from the rate state the claim read. */
  readonly decide: (rate: RateState) => ThrottleDecision;
  /** How long a decision that runs no batch holds the chain, ms (counted, and added to the stall deadline). */
  readonly holdMs: (decision: ThrottleDecision) => number;
  /** Rows/s to record (EWMA) after a batch of `rows`, computed by the caller. */
  readonly rate: (rows: number) => number;
}

export type StepResult =
  | Exclude<ClaimResult, { kind: 'owned' }>
  | {
      readonly kind: 'held';
      readonly cursor: number;
      readonly decision: ThrottleDecision;
      readonly holdMs: number;
    }
  | {
      readonly kind: 'advanced';
      readonly from: number;
      readonly cursor: number;
      readonly rows: number;
      readonly written: number;
      readonly done: boolean;
      readonly decision: ThrottleDecision;
    };

/**
 * How long one batch waits for a row lock (SET LOCAL lock_timeout) before giving up with
 * 55P03: a production transaction holding rows of the next batch makes the chain back off
 * (workers/backfill-chunk/chain.ts) instead of queueing behind it, holding its own locks.
 */
export const BATCH_LOCK_TIMEOUT_MS = 2_000;

/** lock_timeout's SQLSTATE: the batch gave up waiting for a lock. */
export const LOCK_NOT_AVAILABLE = '55P03';

/** Runs one step of `definition` for the claimant, in one transaction (see the comment at the top). */
export function runStep(
  pool: pg.Pool,
  definition: AnyBackfill,
  claim: Claim,
  settings: StepSettings,
): Promise<StepResult> {
  return inTransaction(pool, async (client) => {
    await client.query(`SET LOCAL lock_timeout = '${BATCH_LOCK_TIMEOUT_MS}ms'`);
    const claimed = await claimPartition(client, claim);
    if (claimed.kind !== 'owned') return claimed;
    const decision = settings.decide(claimed.rate);
    const stateChanged = claimed.throttleState !== decision.state;
    if (holdsBatches(decision)) {
      const holdMs = settings.holdMs(decision);
      await recordWait(client, claim, decision, holdMs, settings.stallAfterMs);
      if (stateChanged) await recordThrottleEvent(client, claim, decision);
      return { kind: 'held', cursor: claimed.cursor, decision, holdMs };
    }
    const batchSize = Math.min(settings.batchSize, decision.batchSize ?? settings.batchSize);
    const rows = await definition.readBatch(client, {
      after: claimed.cursor,
      until: claimed.rangeEnd,
      limit: batchSize,
    });
    assertKeysetOrder(definition.name, rows, claimed.cursor, claimed.rangeEnd, batchSize);
    const written = rows.length === 0 ? 0 : await definition.writeBatch(client, rows);
    const done = rows.length < batchSize;
    const cursor = done ? claimed.rangeEnd : (rows.at(-1) as { id: number }).id;
    // The row is locked by this transaction already; the `cursor = from` guard states the
    // invariant anyway, and a miss aborts the whole batch.
    const advanced = await advanceCursor(client, claim, {
      from: claimed.cursor,
      to: cursor,
      messageId: claim.messageId,
      rows: rows.length,
      written,
      chunk: settings.chunk,
      rate: settings.rate(rows.length),
      decision,
      traceId: settings.traceId,
      done,
      stallAfterMs: settings.stallAfterMs,
      waitedMs: settings.waitedMs,
    });
    if (!advanced) {
      throw new RetryableError(`checkpoint of ${claim.jobId}/${claim.partition} moved during the batch`);
    }
    if (stateChanged) await recordThrottleEvent(client, claim, decision);
    return { kind: 'advanced', from: claimed.cursor, cursor, rows: rows.length, written, done, decision };
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
