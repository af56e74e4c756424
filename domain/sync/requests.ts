import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { PayloadIn } from '../../contract/events.ts';
import { inTransaction } from '../../shared/db.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { existingProfiles } from './entities.ts';
import type { DirectTrigger, Queryable, SyncSettings, SyncTrigger } from './model.ts';

/**
 * Asking for syncs without piling them up. Every producer of SyncProfile — the nightly
 * fan-out, a bulk job's re-sync, an operator, a run's own follow-up — comes through here.
 * Under the lock of each profile's `profile_sync_state` row:
 *
 *   a run is going (live heartbeat) → the request is added to the run's follow-up list;
 *                                     when the run ends it sends ONE follow-up sync for all
 *                                     of them (the run started before the request, so it
 *                                     may have missed what the request is about);
 *   a message is queued (no run has  → nothing to do: the queued sync starts after this
 *   started since it was sent)         request and sees whatever prompted it;
 *   otherwise                        → one SyncProfile message, and the profile is queued.
 *
 * The messages go out before the transaction commits: a crash in between leaves an extra
 * message (which the run claim recognises and folds), never a "queued" mark without one.
 */

export type RequestOutcome = 'enqueued' | 'already-queued' | 'follow-up' | 'unknown-profile';

export interface RequestResult {
  readonly profileId: number;
  readonly outcome: RequestOutcome;
}

/** At most this many requests are remembered in a follow-up; it is one sync whatever the count. */
const MAX_FOLDED = 20;

interface StateRow {
  profile_id: number;
  queued_live: boolean;
  running_live: boolean;
  /** How long the profile's last good sync ran; null when it has none. */
  last_good_ms: number | null;
  now: Date;
}

/**
 * The order syncs are sent in: longest expected first, by the last good sync's duration
 * (which holds both the profile's size and its rate limit), profiles never synced before
 * those (their size is unknown, and starting a long one late costs the whole night).
 * A nightly sync cannot end before its longest profile does; queued behind hundreds of
 * small ones, that profile would start late and end the night late.
 */
export function longestFirst<T extends { profileId: number; lastGoodMs: number | null }>(
  entries: readonly T[],
): T[] {
  const expected = (entry: T) => entry.lastGoodMs ?? Number.POSITIVE_INFINITY;
  return [...entries].sort((a, b) => expected(b) - expected(a) || a.profileId - b.profileId);
}

/** What one request does to one profile, given its state (pure; see the block comment). */
export function decideRequest(state: { queuedLive: boolean; runningLive: boolean }): RequestOutcome {
  if (state.runningLive) return 'follow-up';
  if (state.queuedLive) return 'already-queued';
  return 'enqueued';
}

/** Locks the profiles' sync state rows (creating missing ones), in id order against deadlocks. */
export async function lockStates(
  client: Queryable,
  profileIds: readonly number[],
  settings: SyncSettings,
): Promise<StateRow[]> {
  await client.query(
    `INSERT INTO profile_sync_state (profile_id) SELECT unnest($1::bigint[]) ORDER BY 1 ON CONFLICT DO NOTHING`,
    [profileIds],
  );
  // Locked first, read after: a statement that waited for a row lock sees the row's new
  // version but not the rows it joins (a run inserted by the transaction it waited for), so
  // the join gets a statement of its own, with a snapshot taken after the lock.
  await client.query(
    'SELECT 1 FROM profile_sync_state WHERE profile_id = ANY($1::bigint[]) ORDER BY profile_id FOR UPDATE',
    [profileIds],
  );
  const { rows } = await client.query<StateRow>(
    `SELECT s.profile_id,
            coalesce(s.queued_at > now() - make_interval(secs => $2 / 1000.0), false) AS queued_live,
            coalesce(r.status = 'running' AND r.heartbeat_at > now() - make_interval(secs => $3 / 1000.0), false)
              AS running_live,
            (EXTRACT(EPOCH FROM g.finished_at - g.started_at) * 1000)::float8 AS last_good_ms,
            now() AS now
       FROM profile_sync_state s LEFT JOIN sync_runs r ON r.id = s.running_run_id
            LEFT JOIN sync_runs g ON g.id = s.last_good_run_id
      WHERE s.profile_id = ANY($1::bigint[])
      ORDER BY s.profile_id`,
    [profileIds, settings.queuedExpiryMs, settings.staleAfterMs],
  );
  return rows;
}

/** Appends triggers to the profiles' follow-up lists (follow-ups are flattened, the list capped). */
export async function addFollowUps(client: Queryable, profileIds: readonly number[], trigger: SyncTrigger) {
  if (profileIds.length === 0) return;
  const folded: DirectTrigger[] = trigger.kind === 'follow-up' ? [...trigger.folded] : [trigger];
  await client.query(
    `UPDATE profile_sync_state
        SET follow_up = (SELECT jsonb_agg(t ORDER BY n) FROM (
              SELECT t, n FROM jsonb_array_elements(coalesce(follow_up, '[]'::jsonb) || $2::jsonb)
                WITH ORDINALITY AS e (t, n) ORDER BY n LIMIT $3) AS capped)
      WHERE profile_id = ANY($1::bigint[])`,
    [profileIds, JSON.stringify(folded), MAX_FOLDED],
  );
}

/**
 * Sends one SyncProfile per profile and marks them queued, inside the caller's transaction
 * (the profiles' state rows locked).
 */
export async function enqueueLocked(
  client: Queryable,
  messenger: Messenger,
  profileIds: readonly number[],
  trigger: SyncTrigger,
  requestedAt: Date,
): Promise<void> {
  if (profileIds.length === 0) return;
  const payloads: PayloadIn<'SyncProfile'>[] = profileIds.map((profileId) => ({
    profileId,
    requestId: randomUUID(),
    requestedAt: requestedAt.toISOString(),
    trigger,
  }));
  await messenger.sendBatch('SyncProfile', payloads);
  await client.query(
    `UPDATE profile_sync_state s SET queued_at = $3, queued_request_id = q.request_id
       FROM unnest($1::bigint[], $2::uuid[]) AS q (profile_id, request_id)
      WHERE s.profile_id = q.profile_id`,
    [payloads.map((payload) => payload.profileId), payloads.map((payload) => payload.requestId), requestedAt],
  );
}

/** Requests a sync of each profile for one trigger; returns what became of each request. */
export async function requestSyncs(
  pool: pg.Pool,
  messenger: Messenger,
  profileIds: readonly number[],
  trigger: SyncTrigger,
  settings: SyncSettings,
): Promise<RequestResult[]> {
  const unique = [...new Set(profileIds)];
  if (unique.length === 0) return [];
  const known = await existingProfiles(pool, unique);
  const results = new Map<number, RequestOutcome>(
    unique.filter((id) => !known.has(id)).map((id) => [id, 'unknown-profile']),
  );
  if (known.size > 0) {
    await inTransaction(pool, async (client) => {
      const states = await lockStates(client, [...known], settings);
      const decided = longestFirst(
        states.map((state) => ({
          profileId: Number(state.profile_id),
          lastGoodMs: state.last_good_ms,
          outcome: decideRequest({ queuedLive: state.queued_live, runningLive: state.running_live }),
        })),
      );
      const now = states[0]?.now ?? new Date();
      await addFollowUps(
        client,
        decided.filter((entry) => entry.outcome === 'follow-up').map((entry) => entry.profileId),
        trigger,
      );
      await enqueueLocked(
        client,
        messenger,
        decided.filter((entry) => entry.outcome === 'enqueued').map((entry) => entry.profileId),
        trigger,
        now,
      );
      for (const entry of decided) results.set(entry.profileId, entry.outcome);
    });
  }
  return unique.map((profileId) => ({ profileId, outcome: results.get(profileId) ?? 'unknown-profile' }));
}
