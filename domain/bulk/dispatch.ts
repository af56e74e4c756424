import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { planBatches, scheduleBatches } from './plan.ts';
import type { EntityType } from './status.ts';

/**
 * `BulkJobSubmitted` → item batches. The job moves SUBMITTED → RUNNING once; then its
 * undispatched items (due_at IS NULL) are taken a chunk at a time under FOR UPDATE SKIP
 * LOCKED, planned into batches, sent, and marked due in the same transaction. A duplicate
 * dispatch running alongside skips the locked chunk, one running after finds nothing left:
 * no batch is enqueued twice. A crash between the sends and the commit re-sends that one
 * chunk on retry, which the claim (apply.ts) makes harmless.
 *
 * A dispatch stops starting chunks at `until` and says it is not `done`: the handler then
 * has the message come back to dispatch the rest (what is dispatched is committed, and the
 * next run starts where it stopped), so a job of any size fits a short handler deadline,
 * and the queue's visibility timeout above it stays short too.
 *
 * With `profileInFlight`, only each profile's first that many batches are sent at once and
 * the rest delayed (plan.ts, scheduleBatches): the profile's chains take its due items from
 * the ledger, so a large job's profile does not fill the queue ahead of a later job's
 * batches. Every item is still carried by a message, so a job whose workers all die loses
 * nothing: the delayed messages (and the sweeper's lease recovery) bring the rest.
 */

/** Items per dispatch transaction: a second or two on a loaded database. */
export const DISPATCH_CHUNK_ITEMS = 10_000;

export interface DispatchResult {
  /** False when the job was not SUBMITTED or RUNNING (cancelled, finished, unknown). */
  readonly live: boolean;
  readonly batches: number;
  readonly items: number;
  /** False when `until` passed with items still undispatched. */
  readonly done: boolean;
}

export async function dispatchJob(
  pool: pg.Pool,
  messenger: Messenger,
  jobId: string,
  batchSize: number,
  options: {
    /** Epoch ms after which no chunk is started. */
    readonly until?: number;
    /** Batches of one profile sent at once; the rest are delayed (all at once by default). */
    readonly profileInFlight?: number;
  } = {},
): Promise<DispatchResult> {
  const until = options.until ?? Number.POSITIVE_INFINITY;
  const profileInFlight = options.profileInFlight ?? Number.POSITIVE_INFINITY;
  const { rows } = await pool.query<{ status: string }>(
    `UPDATE bulk_jobs SET status = CASE WHEN status = 'SUBMITTED' THEN 'RUNNING' ELSE status END,
            dispatched_at = coalesce(dispatched_at, now()), updated_at = now()
      WHERE id = $1 AND status IN ('SUBMITTED', 'RUNNING') RETURNING status`,
    [jobId],
  );
  if (rows.length === 0) return { live: false, batches: 0, items: 0, done: true };
  let batches = 0;
  let items = 0;
  for (;;) {
    const sent = await inTransaction(pool, async (client) => {
      const chunk = await client.query<{ id: number; profile_id: number; entity_type: EntityType }>(
        `SELECT id, profile_id, entity_type FROM bulk_items
          WHERE job_id = $1 AND due_at IS NULL AND status = 'PENDING'
          ORDER BY profile_id, id
          LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [jobId, DISPATCH_CHUNK_ITEMS],
      );
      if (chunk.rows.length === 0) return { batches: 0, items: 0 };
      const planned = planBatches(
        chunk.rows.map((row) => ({ id: row.id, profileId: row.profile_id, entityType: row.entity_type })),
        batchSize,
      );
      const { now, later } = scheduleBatches(planned, profileInFlight);
      const payloads = (list: typeof planned) =>
        list.map((batch) => ({ jobId, profileId: batch.profileId, itemIds: batch.itemIds }));
      if (now.length > 0) await messenger.sendBatch('BulkItemBatch', payloads(now));
      for (const [delaySeconds, list] of later)
        await messenger.sendBatch('BulkItemBatch', payloads(list), { delaySeconds });
      await client.query(
        'UPDATE bulk_items SET due_at = now(), updated_at = now() WHERE job_id = $1 AND id = ANY($2)',
        [jobId, chunk.rows.map((row) => row.id)],
      );
      return { batches: planned.length, items: chunk.rows.length };
    });
    batches += sent.batches;
    items += sent.items;
    if (sent.items < DISPATCH_CHUNK_ITEMS) return { live: true, batches, items, done: true };
    if (Date.now() >= until) return { live: true, batches, items, done: false };
  }
}
