import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { completeIfDone, publishOutbox } from './completion.ts';
import { FleetErrorCode } from './status.ts';

/** Operator controls: `bulk cancel` and `bulk retry-failed`. Each records first and messages after. */

export interface ControlResult {
  readonly changed: boolean;
  /** Items the command moved (cancelled, or reset for retry). */
  readonly items: number;
  readonly status: string | undefined;
}

/**
 * Items not yet applied end CANCELLED; batches in flight finish (their items keep Amazon's
 * answer) and the job ends CANCELLED when the last one does.
 */
export async function cancelJob(pool: pg.Pool, messenger: Messenger, jobId: string): Promise<ControlResult> {
  const result = await inTransaction(pool, async (client) => {
    const job = await client.query<{ status: string }>(
      `UPDATE bulk_jobs SET status = 'CANCELLING', cancel_requested_at = now(), updated_at = now()
        WHERE id = $1 AND status IN ('SUBMITTED', 'RUNNING') RETURNING status`,
      [jobId],
    );
    if (job.rowCount === 0) return { changed: false, items: 0, outbox: undefined };
    const cancelled = await client.query(
      `UPDATE bulk_items SET status = 'CANCELLED', error_code = $2,
              error_message = 'not applied: the job was cancelled', finished_at = now(), updated_at = now()
        WHERE job_id = $1 AND status IN ('PENDING', 'RETRY')`,
      [jobId, FleetErrorCode.Cancelled],
    );
    return { changed: true, items: cancelled.rowCount ?? 0, outbox: await completeIfDone(client, jobId) };
  });
  if (result.outbox !== undefined) await publishOutbox(pool, messenger, result.outbox);
  const { rows } = await pool.query<{ status: string }>('SELECT status FROM bulk_jobs WHERE id = $1', [
    jobId,
  ]);
  return { changed: result.changed, items: result.items, status: rows[0]?.status };
}

/**
 * FAILED items back to PENDING with their attempts reset, the job RUNNING again, and a
 * BulkJobSubmitted so that dispatch sends them (it sends exactly the undispatched items).
 */
export async function retryFailed(
  pool: pg.Pool,
  messenger: Messenger,
  jobId: string,
): Promise<ControlResult> {
  const result = await inTransaction(pool, async (client) => {
    const job = await client.query(
      `UPDATE bulk_jobs SET status = 'RUNNING', finished_at = NULL, updated_at = now()
        WHERE id = $1 AND status IN ('RUNNING', 'COMPLETED_WITH_ERRORS') AND failed > 0 RETURNING id`,
      [jobId],
    );
    if (job.rowCount === 0) return { changed: false, items: 0 };
    const reset = await client.query(
      `UPDATE bulk_items SET status = 'PENDING', attempts = 0, due_at = NULL, response = NULL,
              error_code = NULL, error_message = NULL, finished_at = NULL, updated_at = now()
        WHERE job_id = $1 AND status = 'FAILED'`,
      [jobId],
    );
    return { changed: true, items: reset.rowCount ?? 0 };
  });
  if (result.changed) await messenger.publish('BulkJobSubmitted', { jobId });
  const { rows } = await pool.query<{ status: string }>('SELECT status FROM bulk_jobs WHERE id = $1', [
    jobId,
  ]);
  return { ...result, status: rows[0]?.status };
}
