import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { completeIfDone } from './completion.ts';
import type { CampaignChange, KeywordChange } from './rows.ts';
import { type EntityType, FleetErrorCode, type ItemStatus } from './status.ts';

/**
 * The queries behind applying one item batch: claim, record what Amazon said, release.
 *
 * Claim (one transaction, under a per-profile advisory lock so that claims of one profile's
 * items are serialised across the fleet):
 *  1. fairness — when the profile already has `profileInFlight` live claims, claim nothing:
 *     the caller defers the message (a delayed re-send) instead of waiting in a handler slot;
 *  2. last submitted wins — an item is superseded (CANCELLED, code SUPERSEDED) when a job
 *     with a higher submit sequence (bulk_jobs.seq, taken when `bulk submit` writes the job)
 *     has a non-cancelled item for the same entity;
 *  3. guarded transition — PENDING/RETRY, or RUNNING with an expired
 *     lease, → RUNNING with this claim's lease. Items already SUCCEEDED (a duplicate message)
 *     or held by a live lease are not claimed. An item whose entity has an OLDER item still
 *     in flight waits (it is `blocked`), so the newer change always lands last.
 * Results are written only where the item is still RUNNING under this claim's lease.
 */

export interface ClaimedItem {
  readonly id: number;
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly change: KeywordChange | CampaignChange;
  /** Attempts before this one. */
  readonly attempts: number;
}

export type Claim =
  | { readonly kind: 'claimed'; readonly items: readonly ClaimedItem[]; readonly blocked: readonly number[] }
  | { readonly kind: 'busy'; readonly inFlight: number }
  | { readonly kind: 'job-not-running'; readonly status: string | undefined };

export interface ClaimRequest {
  readonly jobId: string;
  readonly profileId: number;
  readonly itemIds: readonly number[];
  /** Unique per claim. */
  readonly owner: string;
  readonly leaseMs: number;
  readonly profileInFlight: number;
}

export function claimBatch(pool: pg.Pool, request: ClaimRequest): Promise<Claim> {
  return inTransaction(pool, async (client) => {
    const job = await client.query<{ status: string }>('SELECT status FROM bulk_jobs WHERE id = $1', [
      request.jobId,
    ]);
    const status = job.rows[0]?.status;
    if (status !== 'RUNNING') return { kind: 'job-not-running', status };

    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('bulk-profile:' || $1::text, 0))", [
      request.profileId,
    ]);
    const inFlight = await client.query<{ claims: number }>(
      `SELECT count(DISTINCT lease_owner)::int AS claims FROM bulk_items
        WHERE profile_id = $1 AND status = 'RUNNING' AND lease_expires_at > now()`,
      [request.profileId],
    );
    const claims = inFlight.rows[0]?.claims ?? 0;
    if (claims >= request.profileInFlight) return { kind: 'busy', inFlight: claims };

    const claimable = `i.id = ANY($1) AND i.job_id = $2
      AND (i.status IN ('PENDING', 'RETRY') OR (i.status = 'RUNNING' AND i.lease_expires_at < now()))`;
    await client.query(
      `WITH newer AS (
         SELECT i.id, (SELECT n.job_id FROM bulk_items n
                        WHERE n.entity_type = i.entity_type AND n.entity_id = i.entity_id
                          AND n.job_seq > i.job_seq AND n.status <> 'CANCELLED'
                        ORDER BY n.job_seq DESC LIMIT 1) AS by_job
           FROM bulk_items i WHERE ${claimable})
       UPDATE bulk_items i
          SET status = 'CANCELLED', error_code = $3, lease_owner = NULL, lease_expires_at = NULL,
              error_message = 'not applied: job ' || newer.by_job || ', submitted later, changes this entity',
              finished_at = now(), updated_at = now()
         FROM newer WHERE i.job_id = $2 AND i.id = newer.id AND newer.by_job IS NOT NULL`,
      [request.itemIds, request.jobId, FleetErrorCode.Superseded],
    );
    const claimed = await client.query<{
      id: number;
      entity_type: EntityType;
      entity_id: string;
      change: KeywordChange | CampaignChange;
      attempts: number;
    }>(
      `WITH candidates AS (
         SELECT i.id FROM bulk_items i
          WHERE ${claimable}
            AND NOT EXISTS (SELECT 1 FROM bulk_items o
                             WHERE o.entity_type = i.entity_type AND o.entity_id = i.entity_id
                               AND o.job_seq < i.job_seq AND o.status = 'RUNNING'
                               AND o.lease_expires_at > now())
          ORDER BY i.id FOR UPDATE SKIP LOCKED)
       UPDATE bulk_items i
          SET status = 'RUNNING', lease_owner = $3, lease_expires_at = now() + $4 * interval '1 millisecond',
              updated_at = now()
         FROM candidates WHERE i.job_id = $2 AND i.id = candidates.id
       RETURNING i.id, i.entity_type, i.entity_id::text AS entity_id, i.change, i.attempts`,
      [request.itemIds, request.jobId, request.owner, request.leaseMs],
    );
    const claimedIds = new Set(claimed.rows.map((row) => row.id));
    // Live items of this batch left unclaimed: they wait for an older change of their
    // entity, or another claim holds them. The caller sends them again shortly (a message
    // too many is harmless; one too few would leave them to the sweeper).
    const leftover = await client.query<{ id: number }>(
      `SELECT id FROM bulk_items WHERE id = ANY($1) AND job_id = $2 AND status IN ('PENDING', 'RETRY')`,
      [request.itemIds, request.jobId],
    );
    await completeIfDone(client, request.jobId);
    return {
      kind: 'claimed',
      items: claimed.rows
        .map((row) => ({
          id: row.id,
          entityType: row.entity_type,
          entityId: row.entity_id,
          change: row.change,
          attempts: row.attempts,
        }))
        .sort((a, b) => a.id - b.id),
      blocked: leftover.rows.map((row) => row.id).filter((id) => !claimedIds.has(id)),
    };
  });
}

/** What one item ends up as after an apply attempt. */
export interface ItemOutcome {
  readonly id: number;
  readonly status: typeof ItemStatus.Succeeded | typeof ItemStatus.Failed | typeof ItemStatus.Retry;
  /** Attempts including this one. */
  readonly attempts: number;
  readonly response?: unknown;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  /** RETRY: when the item is due again. */
  readonly retryInMs?: number;
}

export interface RecordedOutcomes {
  /** Items whose outcome was written (the others had lost this claim's lease). */
  readonly recorded: ReadonlySet<number>;
  /** The outbox row when these outcomes finished the job. */
  readonly completion: number | undefined;
}

export function recordOutcomes(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  outcomes: readonly ItemOutcome[],
): Promise<RecordedOutcomes> {
  return inTransaction(pool, async (client) => {
    const result = await client.query<{ id: number }>(
      `UPDATE bulk_items i
          SET status = o.status, attempts = o.attempts, response = o.response::jsonb,
              error_code = o.error_code, error_message = o.error_message,
              due_at = CASE WHEN o.retry_in_ms IS NULL THEN i.due_at
                            ELSE now() + o.retry_in_ms * interval '1 millisecond' END,
              finished_at = CASE WHEN o.status IN ('SUCCEEDED', 'FAILED') THEN now() END,
              lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[])
              AS o (id, status, attempts, response, error_code, error_message, retry_in_ms)
        WHERE i.id = o.id AND i.job_id = $8 AND i.status = 'RUNNING' AND i.lease_owner = $9
        RETURNING i.id`,
      [
        outcomes.map((o) => o.id),
        outcomes.map((o) => o.status),
        outcomes.map((o) => o.attempts),
        outcomes.map((o) => (o.response === undefined ? null : JSON.stringify(o.response))),
        outcomes.map((o) => o.errorCode ?? null),
        outcomes.map((o) => o.errorMessage?.slice(0, 2_000) ?? null),
        outcomes.map((o) => (o.retryInMs === undefined ? null : Math.ceil(o.retryInMs))),
        jobId,
        owner,
      ],
    );
    return {
      recorded: new Set(result.rows.map((row) => row.id)),
      completion: await completeIfDone(client, jobId),
    };
  });
}

/**
 * Gives claimed items back without counting an attempt (rate limited, or the worker is
 * stopping): RETRY if tried before, else PENDING, due again in `dueInMs`.
 */
export async function releaseItems(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  ids: readonly number[],
  dueInMs: number,
): Promise<void> {
  await pool.query(
    `UPDATE bulk_items SET status = CASE WHEN attempts > 0 THEN 'RETRY' ELSE 'PENDING' END,
            lease_owner = NULL, lease_expires_at = NULL,
            due_at = now() + $3 * interval '1 millisecond', updated_at = now()
      WHERE job_id = $4 AND id = ANY($1) AND status = 'RUNNING' AND lease_owner = $2`,
    [ids, owner, Math.ceil(dueInMs), jobId],
  );
}

/** Items about to be carried by a delayed message: due when it arrives, so the sweeper leaves them be. */
export async function markDue(
  pool: pg.Pool,
  jobId: string,
  ids: readonly number[],
  dueInMs: number,
): Promise<void> {
  await pool.query(
    `UPDATE bulk_items SET due_at = now() + $2 * interval '1 millisecond', updated_at = now()
      WHERE job_id = $3 AND id = ANY($1) AND status IN ('PENDING', 'RETRY')`,
    [ids, Math.ceil(dueInMs), jobId],
  );
}
