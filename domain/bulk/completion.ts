import { context } from '@opentelemetry/api';
import type pg from 'pg';
import type { Payload } from '../../contract/events.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { type Carrier, currentCarrier, extractContext } from '../../shared/messaging/trace-context.ts';
import { FleetErrorCode } from './status.ts';

/**
 * Completing a job exactly once, and announcing it at least once but not twice.
 *
 * `completeIfDone` runs inside the transaction that changed the job's items. The status
 * trigger has locked the job row by then, so racing batches of one job check one after the
 * other, each seeing the others' committed counts; the guarded transition
 * (RUNNING/CANCELLING with nothing left → final) succeeds for exactly one of them, and that
 * one writes the BulkJobCompleted outbox row in the same transaction. After commit the
 * outbox row is published by `publishOutbox` — by the completing handler at once, or by any
 * worker's sweeper if that handler died first. Publishing holds the row lock (SKIP LOCKED
 * for everyone else) and marks it published in the same transaction, so only a crash
 * between the publish and that commit can send the event twice; profile-sync's handling
 * of it is idempotent.
 */

type Completed = Payload<'BulkJobCompleted'>;

export async function completeIfDone(client: pg.PoolClient, jobId: string): Promise<number | undefined> {
  // Usually called holding the job row's lock, which every batch of the job waits for: the
  // common case (a running job with items left) costs this one read.
  const { rows: now } = await client.query<{ status: string; live: number; waiting: number }>(
    'SELECT status, pending + running + retry AS live, pending + retry AS waiting FROM bulk_jobs WHERE id = $1',
    [jobId],
  );
  const job = now[0];
  if (job === undefined || !['RUNNING', 'CANCELLING'].includes(job.status)) return undefined;
  if (job.status === 'RUNNING' && job.live > 0) return undefined;
  if (job.status === 'CANCELLING' && job.live > job.waiting) return undefined;
  // A cancelled job's retries and recovered items do not start again.
  await client.query(
    `UPDATE bulk_items SET status = 'CANCELLED', error_code = $2,
            error_message = 'not applied: the job was cancelled', finished_at = now(), updated_at = now()
      WHERE job_id = $1 AND status IN ('PENDING', 'RETRY')
        AND EXISTS (SELECT 1 FROM bulk_jobs WHERE id = $1 AND status = 'CANCELLING')`,
    [jobId, FleetErrorCode.Cancelled],
  );
  return completeJob(client, jobId);
}

/**
 * The guarded transition RUNNING/CANCELLING with nothing left → final, and the
 * BulkJobCompleted outbox row, in one statement: atomic on its own, so a caller outside a
 * transaction holds the job row's lock only while the statement runs. Returns the outbox
 * row's id when this call completed the job.
 */
export async function completeJob(db: pg.Pool | pg.PoolClient, jobId: string): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>(
    `WITH done AS (
       UPDATE bulk_jobs
          SET status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'CANCELLED'
                            WHEN failed > 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED' END,
              finished_at = now(), updated_at = now()
        WHERE id = $1 AND status IN ('RUNNING', 'CANCELLING') AND pending + running + retry = 0
        RETURNING id, status, succeeded, failed, cancelled)
     INSERT INTO bulk_outbox (job_id, detail_type, detail, trace_carrier)
     SELECT id, 'BulkJobCompleted',
            jsonb_build_object(
              'jobId', id, 'status', status,
              'profileIds', (SELECT coalesce(jsonb_agg(profile_id ORDER BY profile_id), '[]'::jsonb)
                               FROM (SELECT DISTINCT profile_id FROM bulk_items
                                      WHERE job_id = $1 AND status = 'SUCCEEDED') touched),
              'succeeded', succeeded, 'failed', failed, 'cancelled', cancelled),
            $2
       FROM done
     RETURNING id`,
    [jobId, currentCarrier()],
  );
  return rows[0]?.id;
}

/** Publishes unpublished outbox rows (one, or any); returns how many it published. */
export async function publishOutbox(pool: pg.Pool, messenger: Messenger, id?: number): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: number; detail: Completed; trace_carrier: Carrier }>(
      `SELECT id, detail, trace_carrier FROM bulk_outbox
        WHERE published_at IS NULL AND ($1::bigint IS NULL OR id = $1)
        ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`,
      [id ?? null],
    );
    for (const row of rows) {
      // In the trace of the span that completed the job, whoever publishes.
      await context.with(extractContext(row.trace_carrier), () =>
        messenger.publish('BulkJobCompleted', row.detail),
      );
      await client.query('UPDATE bulk_outbox SET published_at = now() WHERE id = $1', [row.id]);
    }
    await client.query('COMMIT');
    return rows.length;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
