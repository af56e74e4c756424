import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { completeIfDone, completeJob } from './completion.ts';
import type { CampaignChange, KeywordChange } from './rows.ts';
import { type EntityType, FleetErrorCode, type ItemStatus } from './status.ts';
import { NO_ANSWER } from './verify.ts';

/**
 * The queries behind applying one item batch: claim, record what Amazon said, release.
 *
 * Claim (one transaction, under a per-profile advisory lock so that claims of one profile's
 * items are serialised across the fleet):
 *  1. fairness — when the profile already has `profileInFlight` live claims, or another claim
 *     of the profile holds its lock right now, claim nothing: the caller defers the message
 *     (a delayed re-send) instead of waiting in a handler slot;
 *  2. last submitted wins — an item is superseded (CANCELLED, code SUPERSEDED) when a job
 *     with a higher submit sequence (bulk_jobs.seq, taken when `bulk submit` writes the job)
 *     has a non-cancelled item for the same entity;
 *  3. guarded transition — PENDING/RETRY, or RUNNING with an expired
 *     lease, → RUNNING with this claim's lease. Items already SUCCEEDED (a duplicate message)
 *     or held by a live lease are not claimed. Rows another transaction holds are waited
 *     for, not skipped: the advisory lock already keeps claims of one profile apart, so the
 *     holder is a dispatch still sending its chunk (or a sweeper re-sending), and skipping
 *     would bounce the batch to the back of the queue for items about to be free. An item whose entity has an OLDER item still
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
  /** How the attempt before ended (its error code), null if there was none or it had none. */
  readonly lastErrorCode: string | null;
}

export type Claim =
  | {
      readonly kind: 'claimed';
      readonly items: readonly ClaimedItem[];
      readonly blocked: readonly number[];
      /** Other live claims of the profile when this one was made. */
      readonly othersInFlight: number;
    }
  | {
      readonly kind: 'busy';
      readonly inFlight: number;
      /** Below the cap, but another claim of the profile held its lock at that moment. */
      readonly lockHeld?: true;
    }
  | { readonly kind: 'job-not-running'; readonly status: string | undefined };

/**
 * How often a claim's holder renews its lease (workers/bulk-item/worker.ts, keepLease): every
 * third of the lease, and at least every 2 s. The lease bounds how long a dead worker's items
 * wait; the renewal period bounds how soon its claims look stale (liveLeaseLeftMs), and with
 * it how long a profile whose claims it held stands still. At 5 s (a third of the 15 s
 * default) the largest profile of a bench run stood still 8 s after a SIGKILL. A renewal
 * moves only the rows of claims older than the period, a few of the ones in flight.
 */
export function leaseRenewEveryMs(leaseMs: number): number {
  return Math.min(LEASE_RENEW_MAX_MS, Math.max(1_000, leaseMs / 3));
}

const LEASE_RENEW_MAX_MS = 2_000;

/**
 * A claim is live while its lease has more than this left: its holder renewed it within one
 * renewal period and a second. A live claim counts against its profile's in-flight cap; a
 * profile whose claims are all stale (their holder died) is resumed by the sweeper
 * (sweep.ts). Before, a SIGKILLed worker's claims held the profile's slots until their
 * leases ran out (15 s), and a profile whose every claim the dead worker held sat idle that
 * long (12 s in two bench runs); the dead claims' items themselves still wait out the lease.
 */
export function liveLeaseLeftMs(leaseMs: number): number {
  return Math.max(0, leaseMs - leaseRenewEveryMs(leaseMs) - 1_000);
}

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
  return claim(pool, request, async () => request.itemIds);
}

/**
 * Claims up to `limit` of the profile's items in the job that are due (their message is in
 * the queue or was deferred until now), chosen under the profile's advisory lock so that
 * two handlers of one profile never pick the same items. A handler that has just finished a
 * batch of a busy profile continues with these instead of giving its in-flight slot back
 * to a queue of deferred messages (worker.ts); the messages still carrying them find
 * nothing left to apply.
 */
export function claimNextDue(
  pool: pg.Pool,
  request: Omit<ClaimRequest, 'itemIds'> & { readonly limit: number },
): Promise<Claim> {
  return claim(pool, { ...request, itemIds: [] }, async (client) => {
    const { rows } = await client.query<{ id: number }>(
      `SELECT id FROM bulk_items
        WHERE job_id = $1 AND profile_id = $2 AND status IN ('PENDING', 'RETRY') AND due_at <= now()
        LIMIT $3`,
      [request.jobId, request.profileId, request.limit],
    );
    return rows.map((row) => row.id);
  });
}

/**
 * The claim's statements run one by one without a transaction around them, under a
 * session-level advisory lock of the profile (taken with try: a claim that finds it held
 * treats the profile as busy). Each statement sees what committed before it, as in a READ
 * COMMITTED transaction, and each step is guarded on its own, so a crash between them
 * leaves nothing half-done that a retry would not finish. What the transaction would cost:
 * the statement that moves items to RUNNING locks the job row (the count trigger) until
 * commit, and every batch of the job waits for that lock; on its own, it holds it only
 * while it runs, not across a round trip to a worker whose CPU is busy.
 */
async function claim(
  pool: pg.Pool,
  request: ClaimRequest,
  chooseItems: (client: pg.PoolClient) => Promise<readonly number[]>,
): Promise<Claim> {
  const client = await pool.connect();
  let locked = false;
  let broken = false;
  try {
    return await claimSteps(client, request, chooseItems, () => {
      locked = true;
    });
  } catch (error) {
    broken = true;
    throw error;
  } finally {
    if (locked) {
      await client
        .query("SELECT pg_advisory_unlock(hashtextextended('bulk-profile:' || $1::text, 0))", [
          request.profileId,
        ])
        .catch(() => {
          broken = true;
        });
    }
    // A connection in an unknown state is closed, which also drops its advisory lock.
    client.release(broken);
  }
}

async function claimSteps(
  client: pg.PoolClient,
  request: ClaimRequest,
  chooseItems: (client: pg.PoolClient) => Promise<readonly number[]>,
  onLocked: () => void,
): Promise<Claim> {
  const job = await client.query<{ status: string }>('SELECT status FROM bulk_jobs WHERE id = $1', [
    request.jobId,
  ]);
  const status = job.rows[0]?.status;
  if (status !== 'RUNNING') return { kind: 'job-not-running', status };

  // Only live claims count (liveLeaseLeftMs): a dead worker's do not hold the cap.
  const liveLeftMs = liveLeaseLeftMs(request.leaseMs);
  const liveClaims = async () => {
    const { rows } = await client.query<{ claims: number }>(
      `SELECT count(DISTINCT lease_owner)::int AS claims FROM bulk_items
          WHERE profile_id = $1 AND status = 'RUNNING'
            AND lease_expires_at > now() + $2 * interval '1 millisecond'`,
      [request.profileId, liveLeftMs],
    );
    return rows[0]?.claims ?? 0;
  };
  // A message whose items were all applied meanwhile (a profile's delayed batch, whose
  // items its chains took: dispatch.ts) is dropped at once, not deferred over the cap again.
  if (request.itemIds.length > 0) {
    const { rows: open } = await client.query<{ open: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM bulk_items WHERE job_id = $2 AND id = ANY($1)
          AND (status IN ('PENDING', 'RETRY') OR (status = 'RUNNING' AND lease_expires_at < now()))) AS open`,
      [request.itemIds, request.jobId],
    );
    if (open[0]?.open !== true) return { kind: 'claimed', items: [], blocked: [], othersInFlight: 0 };
  }
  // A profile at its cap gets many messages at once; checking before the lock, and not
  // queueing for a lock another claim of the profile holds, keeps them from lining up (each
  // in a handler slot) behind one another only to learn that the profile is busy.
  const before = await liveClaims();
  if (before >= request.profileInFlight) return { kind: 'busy', inFlight: before };
  const { rows: locked } = await client.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_lock(hashtextextended('bulk-profile:' || $1::text, 0)) AS locked",
    [request.profileId],
  );
  if (locked[0]?.locked !== true) return { kind: 'busy', inFlight: before, lockHeld: true };
  onLocked();
  const claims = await liveClaims();
  if (claims >= request.profileInFlight) return { kind: 'busy', inFlight: claims };
  const itemIds = await chooseItems(client);
  if (itemIds.length === 0) return { kind: 'claimed', items: [], blocked: [], othersInFlight: claims };
  const claimable = `i.id = ANY($1) AND i.job_id = $2
      AND (i.status IN ('PENDING', 'RETRY') OR (i.status = 'RUNNING' AND i.lease_expires_at < now()))`;
  const superseded = await client.query(
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
    [itemIds, request.jobId, FleetErrorCode.Superseded],
  );
  // Live items of this batch that the claim below leaves: they wait for an older change of
  // their entity, or another claim holds them. The caller sends them again shortly (a
  // message too many is harmless; one too few would leave them to the sweeper).
  const live = await client.query<{ id: number }>(
    `SELECT id FROM bulk_items WHERE id = ANY($1) AND job_id = $2 AND status IN ('PENDING', 'RETRY')`,
    [itemIds, request.jobId],
  );
  const claimed = await client.query<{
    id: number;
    entity_type: EntityType;
    entity_id: string;
    change: KeywordChange | CampaignChange;
    attempts: number;
    error_code: string | null;
  }>(
    `WITH candidates AS (
         SELECT i.id FROM bulk_items i
          WHERE ${claimable}
            AND NOT EXISTS (SELECT 1 FROM bulk_items o
                             WHERE o.entity_type = i.entity_type AND o.entity_id = i.entity_id
                               AND o.job_seq < i.job_seq AND o.status = 'RUNNING'
                               AND o.lease_expires_at > now())
          ORDER BY i.id FOR UPDATE)
       UPDATE bulk_items i
          SET status = 'RUNNING', lease_owner = $3, lease_expires_at = now() + $4 * interval '1 millisecond',
              updated_at = now()
         FROM candidates WHERE i.job_id = $2 AND i.id = candidates.id
       RETURNING i.id, i.entity_type, i.entity_id::text AS entity_id, i.change, i.attempts, i.error_code`,
    [itemIds, request.jobId, request.owner, request.leaseMs],
  );
  const claimedIds = new Set(claimed.rows.map((row) => row.id));
  // Only superseding finishes items here, and so only then can the claim finish the job
  // (its BulkJobCompleted row is published by the sweeper).
  if ((superseded.rowCount ?? 0) > 0) await completeJob(client, request.jobId);
  return {
    kind: 'claimed',
    items: claimed.rows
      .map((row) => ({
        id: row.id,
        entityType: row.entity_type,
        entityId: row.entity_id,
        change: row.change,
        attempts: row.attempts,
        lastErrorCode: row.error_code,
      }))
      .sort((a, b) => a.id - b.id),
    blocked: live.rows.map((row) => row.id).filter((id) => !claimedIds.has(id)),
    othersInFlight: claims,
  };
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

export async function recordOutcomes(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  outcomes: readonly ItemOutcome[],
): Promise<RecordedOutcomes> {
  // One statement on its own (no transaction around it): changing items' statuses locks
  // the job row (the count trigger), and every batch of the job waits for that lock, so it
  // is held while the statement runs and not across a round trip to a busy worker. The
  // completion check follows as a statement of its own: whoever records the job's last item
  // runs it after that commit, and a crash in between leaves it to the sweeper (settleJobs).
  const result = await pool.query<{ id: number; job_status: string }>(
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
      RETURNING i.id, (SELECT status FROM bulk_jobs WHERE id = $8) AS job_status`,
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
  const running = result.rows.length > 0 && result.rows.every((row) => row.job_status === 'RUNNING');
  return {
    recorded: new Set(result.rows.map((row) => row.id)),
    // A cancelled job's waiting items are cancelled first (completeIfDone, in a transaction).
    completion: running
      ? await completeJob(pool, jobId)
      : await inTransaction(pool, (client) => completeIfDone(client, jobId)),
  };
}

/**
 * Gives claimed items back without counting an attempt (rate limited, or the worker is
 * stopping): RETRY if tried before, else PENDING, due again in `dueInMs`. `unanswered`
 * names the items of a call sent but never answered (timed out, connection lost), marked
 * NO_ANSWER so that their next attempt reads them back first (verify.ts); `readBack`, those
 * read back and not sent since, whose mark is cleared: the next attempt needs no read.
 */
export async function releaseItems(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  ids: readonly number[],
  dueInMs: number,
  marks: { readonly unanswered?: readonly number[]; readonly readBack?: readonly number[] } = {},
): Promise<void> {
  await pool.query(
    `UPDATE bulk_items SET status = CASE WHEN attempts > 0 THEN 'RETRY' ELSE 'PENDING' END,
            error_code = CASE WHEN id = ANY($5) THEN $6 WHEN id = ANY($7) THEN NULL ELSE error_code END,
            lease_owner = NULL, lease_expires_at = NULL,
            due_at = now() + $3 * interval '1 millisecond', updated_at = now()
      WHERE job_id = $4 AND id = ANY($1) AND status = 'RUNNING' AND lease_owner = $2`,
    [ids, owner, Math.ceil(dueInMs), jobId, marks.unanswered ?? [], NO_ANSWER, marks.readBack ?? []],
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

/**
 * Extends a live claim's lease while its Ads call is in flight: the lease can then be short
 * (a dead worker's items come back soon) without expiring under a slow call. Only rows still
 * RUNNING under this owner move, so a claim that has already lost its items (the sweeper
 * recovered them, another claim took them) extends nothing and learns so from the count.
 */
export async function renewLease(
  pool: pg.Pool,
  jobId: string,
  owner: string,
  leaseMs: number,
): Promise<number> {
  const result = await pool.query(
    `UPDATE bulk_items SET lease_expires_at = now() + $3 * interval '1 millisecond'
      WHERE job_id = $1 AND lease_owner = $2 AND status = 'RUNNING'`,
    [jobId, owner, leaseMs],
  );
  return result.rowCount ?? 0;
}

/**
 * How long until the profile's next live item of the job is due (0: one is due now);
 * undefined when none is waiting. A chain that has run out of due items waits this long
 * for a retry or a rate-limited item to come due instead of giving its slot up.
 */
export async function nextDueInMs(
  pool: pg.Pool,
  jobId: string,
  profileId: number,
): Promise<number | undefined> {
  const { rows } = await pool.query<{ in_ms: number | null }>(
    `SELECT greatest(0, extract(epoch FROM min(due_at) - now()) * 1000)::int AS in_ms FROM bulk_items
      WHERE job_id = $1 AND profile_id = $2 AND status IN ('PENDING', 'RETRY') AND due_at IS NOT NULL`,
    [jobId, profileId],
  );
  return rows[0]?.in_ms ?? undefined;
}

/** Up to `limit` of the profile's items in the job that are due now (not claimed: for a message). */
export async function dueItemIds(
  pool: pg.Pool,
  jobId: string,
  profileId: number,
  limit: number,
): Promise<number[]> {
  const { rows } = await pool.query<{ id: number }>(
    `SELECT id FROM bulk_items
      WHERE job_id = $1 AND profile_id = $2 AND status IN ('PENDING', 'RETRY') AND due_at <= now()
      ORDER BY id LIMIT $3`,
    [jobId, profileId, limit],
  );
  return rows.map((row) => row.id);
}
