import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { markRemoved, upsertPage } from './entities.ts';
import {
  countsFrom,
  type DirectTrigger,
  ENTITY_KINDS,
  type EntityKind,
  type Queryable,
  type RunCounts,
  RunStatus,
  type SyncSettings,
  type SyncTrigger,
} from './model.ts';
import { addFollowUps, enqueueLocked } from './requests.ts';

/**
 * A sync run's life, guarded by its profile's `profile_sync_state` row lock and, for every
 * write a worker makes while running, by the run's `attempts` (a fencing token: a worker
 * whose run was resumed or taken over by another cannot write to it any more).
 *
 * A SyncProfile message arrives (claimRun):
 *   its own request's run is running  → live heartbeat: a duplicate delivery; come back
 *                                       later (busy). Stale or released: resume that run
 *                                       (attempts + 1) from its checkpoint.
 *   a run that started after this     → covered: that run sees whatever this request was
 *   request succeeded or is live        about; nothing to do.
 *   another request's run is live     → folded into that run's follow-up.
 *   another request's run is stale    → its worker died: that run becomes `superseded`, and
 *                                       a new run takes over its checkpoint.
 *   nothing runs                      → a new run, resuming a recent failed run's checkpoint.
 *
 * A run ends (finishRun / failRun) by marking what the API no longer returned as removed,
 * recording the outcome, and sending the follow-up sync if requests were folded meanwhile.
 * A worker that stops (SIGTERM) or is deferred by the rate limit releases its run
 * (heartbeat NULL): its message's redelivery resumes it at once.
 */

export interface SyncRequest {
  readonly profileId: number;
  readonly requestId: string;
  readonly requestedAt: Date;
  readonly trigger: SyncTrigger;
  readonly traceId?: string | undefined;
}

/** Where one listing got to: done, or the page count and the token to go on with. */
export interface ListPosition {
  readonly done: boolean;
  readonly pages: number;
  readonly nextToken: string | undefined;
}

/**
 * Where each entity kind's listing got to. `parts` is undefined for a kind listed whole
 * (the position is then its own), or one position per part when it was split (pull.ts:
 * keyword parts); the kind is done when every part is.
 */
export type Checkpoint = Record<
  EntityKind,
  ListPosition & { readonly parts: readonly ListPosition[] | undefined }
>;

const START: ListPosition = { done: false, pages: 0, nextToken: undefined };

export interface ClaimedRun {
  readonly runId: number;
  readonly profileId: number;
  readonly attempt: number;
  readonly startedAt: Date;
  readonly trigger: SyncTrigger;
  readonly counts: RunCounts;
  readonly pages: number;
  readonly throttledMs: number;
  readonly throttledRequests: number;
  readonly checkpoint: Checkpoint;
  /** Set when the run resumes from a checkpoint; says from where, or why it could not. */
  readonly resumeNote: string | undefined;
}

export type Claim =
  | { readonly kind: 'run'; readonly run: ClaimedRun }
  | { readonly kind: 'covered'; readonly byRunId: number }
  | { readonly kind: 'folded'; readonly intoRunId: number }
  | { readonly kind: 'busy'; readonly runId: number };

/** The run this worker holds was resumed or taken over by another: it must stop writing. */
export class RunTakenOverError extends Error {
  override readonly name = 'RunTakenOverError';
  constructor(runId: number) {
    super(`sync run ${runId} was taken over by another attempt`);
  }
}

interface RunRow {
  id: number;
  request_id: string;
  status: RunStatus;
  started_at: Date;
  live: boolean;
  holder: string | null;
}

/** The worker process claiming runs: its id, and whether it is running a given run right now. */
export interface RunHolder {
  readonly id: string;
  holds(runId: number): boolean;
}

const secs = (ms: number) => ms / 1000;

async function runningRun(client: Queryable, profileId: number, staleAfterMs: number, holder: RunHolder) {
  const { rows } = await client.query<RunRow>(
    `SELECT r.id, r.request_id, r.status, r.started_at,
            coalesce(r.heartbeat_at > now() - make_interval(secs => $2), false) AS live, r.holder
       FROM profile_sync_state s JOIN sync_runs r ON r.id = s.running_run_id
      WHERE s.profile_id = $1 AND r.status = 'running'`,
    [profileId, secs(staleAfterMs)],
  );
  const row = rows[0];
  // Our own run that we are not running any more was cut short here: it is not alive.
  if (row !== undefined && row.holder === holder.id && !holder.holds(row.id)) row.live = false;
  return row;
}

/** A run that started at or after the request and succeeded or is still live serves it. */
async function coveringRun(client: Queryable, request: SyncRequest, staleAfterMs: number) {
  const { rows } = await client.query<{ id: number }>(
    `SELECT id FROM sync_runs
      WHERE profile_id = $1 AND started_at >= $2
        AND (status = 'succeeded'
             OR (status = 'running' AND heartbeat_at > now() - make_interval(secs => $3)))
      ORDER BY id DESC LIMIT 1`,
    [request.profileId, request.requestedAt, secs(staleAfterMs)],
  );
  if (rows[0] !== undefined) return rows[0].id;
  // A request whose run was superseded is served by the run that took it over.
  const own = await client.query<{ id: number }>(
    `SELECT id FROM sync_runs WHERE request_id = $1 AND status IN ('succeeded', 'superseded') LIMIT 1`,
    [request.requestId],
  );
  return own.rows[0]?.id;
}

async function loadCheckpoint(client: Queryable, runId: number): Promise<Checkpoint> {
  const checkpoint = Object.fromEntries(
    ENTITY_KINDS.map((kind) => [kind, { ...START, parts: undefined }]),
  ) as Checkpoint;
  const { rows } = await client.query<{
    kind: EntityKind;
    part: number;
    parts: number;
    page: number;
    next_token: string | null;
  }>(
    `SELECT DISTINCT ON (kind, part) kind, part, parts, page, next_token FROM sync_run_pages
      WHERE run_id = $1 ORDER BY kind, part, page DESC`,
    [runId],
  );
  const positions = new Map<EntityKind, { parts: number; at: Map<number, ListPosition> }>();
  for (const row of rows) {
    const kind = positions.get(row.kind) ?? { parts: row.parts, at: new Map<number, ListPosition>() };
    positions.set(row.kind, kind);
    kind.at.set(row.part, {
      done: row.next_token === null,
      pages: row.page,
      nextToken: row.next_token ?? undefined,
    });
  }
  for (const [kind, { parts, at }] of positions) {
    if (parts === 1) {
      checkpoint[kind] = { ...(at.get(0) ?? START), parts: undefined };
      continue;
    }
    // A part that had recorded nothing when the run stopped starts from its first page.
    const split = Array.from({ length: parts }, (_, part) => at.get(part) ?? START);
    checkpoint[kind] = {
      done: split.every((position) => position.done),
      pages: split.reduce((sum, position) => sum + position.pages, 0),
      nextToken: undefined,
      parts: split,
    };
  }
  return checkpoint;
}

interface ClaimedRow {
  id: number;
  attempts: number;
  started_at: Date;
  trigger: string;
  trigger_detail: Record<string, unknown>;
  counts: unknown;
  pages: number;
  throttled_ms: number;
  throttled_requests: number;
  checkpoint_age_ms: number | null;
}

const CLAIMED_COLUMNS = `id, attempts, started_at, trigger, trigger_detail, counts, pages, throttled_ms,
  throttled_requests, (EXTRACT(EPOCH FROM now() - checkpoint_at) * 1000)::float8 AS checkpoint_age_ms`;

function triggerOf(row: Pick<ClaimedRow, 'trigger' | 'trigger_detail'>): SyncTrigger {
  return { kind: row.trigger, ...row.trigger_detail } as SyncTrigger;
}

/**
 * Turns a row into a claimed run with its checkpoint, or drops a checkpoint too old to
 * trust (the API's nextToken may have expired): the run then lists from the first page.
 */
async function withCheckpoint(
  client: Queryable,
  row: ClaimedRow,
  profileId: number,
  settings: SyncSettings,
  resumedFrom?: number,
): Promise<ClaimedRun> {
  let resumeNote: string | undefined;
  let checkpoint = await loadCheckpoint(client, row.id);
  let counts = countsFrom(row.counts);
  let pages = row.pages;
  const hasPages = ENTITY_KINDS.some((kind) => checkpoint[kind].pages > 0);
  if (hasPages && row.checkpoint_age_ms !== null && row.checkpoint_age_ms > settings.resumeMaxAgeMs) {
    const minutes = Math.round(row.checkpoint_age_ms / 60_000);
    resumeNote = `checkpoint is ${minutes} min old, past the ${Math.round(settings.resumeMaxAgeMs / 60_000)} min a nextToken is trusted: listing from the first page`;
    await client.query('DELETE FROM sync_run_pages WHERE run_id = $1', [row.id]);
    checkpoint = await loadCheckpoint(client, row.id);
    counts = countsFrom({});
    pages = 0;
  } else if (hasPages) {
    const where = ENTITY_KINDS.map(
      (kind) =>
        `${kind} ${
          checkpoint[kind].done
            ? 'done'
            : checkpoint[kind].parts === undefined
              ? `after page ${checkpoint[kind].pages}`
              : `after pages ${checkpoint[kind].parts?.map((part) => part.pages).join('/')} of its ${checkpoint[kind].parts?.length} parts`
        }`,
    );
    resumeNote = `resumed${resumedFrom === undefined ? '' : ` from run ${resumedFrom}`}: ${where.join(', ')}`;
  }
  if (resumeNote !== undefined) {
    await client.query('UPDATE sync_runs SET resume_note = $2, counts = $3, pages = $4 WHERE id = $1', [
      row.id,
      resumeNote,
      counts,
      pages,
    ]);
  }
  return {
    runId: row.id,
    profileId,
    attempt: row.attempts,
    startedAt: row.started_at,
    trigger: triggerOf(row),
    counts,
    pages,
    throttledMs: row.throttled_ms,
    throttledRequests: row.throttled_requests,
    checkpoint,
    resumeNote,
  };
}

function triggerColumns(trigger: SyncTrigger): [string, Record<string, unknown>] {
  const { kind, ...detail } = trigger;
  return [kind, detail];
}

/** Decides what a SyncProfile message does (see the block comment) and starts or resumes its run. */
export function claimRun(
  pool: pg.Pool,
  request: SyncRequest,
  settings: SyncSettings,
  holder: RunHolder,
): Promise<Claim> {
  return inTransaction(pool, async (client): Promise<Claim> => {
    await client.query(`INSERT INTO profile_sync_state (profile_id) VALUES ($1) ON CONFLICT DO NOTHING`, [
      request.profileId,
    ]);
    await client.query('SELECT 1 FROM profile_sync_state WHERE profile_id = $1 FOR UPDATE', [
      request.profileId,
    ]);
    const running = await runningRun(client, request.profileId, settings.staleAfterMs, holder);

    if (running !== undefined && running.request_id === request.requestId) {
      if (running.live) return { kind: 'busy', runId: running.id };
      const { rows } = await client.query<ClaimedRow>(
        `UPDATE sync_runs SET attempts = attempts + 1, heartbeat_at = now(), holder = $2 WHERE id = $1
         RETURNING ${CLAIMED_COLUMNS}`,
        [running.id, holder.id],
      );
      return {
        kind: 'run',
        run: await withCheckpoint(client, rows[0] as ClaimedRow, request.profileId, settings),
      };
    }

    const covering = await coveringRun(client, request, settings.staleAfterMs);
    if (covering !== undefined) return { kind: 'covered', byRunId: covering };

    if (running?.live) {
      await addFollowUps(client, [request.profileId], request.trigger);
      return { kind: 'folded', intoRunId: running.id };
    }

    // Take over the checkpoint of a stale run, or of a recent failed one.
    const { rows: previous } = await client.query<{ id: number; status: RunStatus }>(
      `SELECT id, status FROM sync_runs
        WHERE profile_id = $1 AND (id = $2 OR (status = 'failed' AND finished_at > now() - make_interval(secs => $3)))
          AND EXISTS (SELECT 1 FROM sync_run_pages p WHERE p.run_id = sync_runs.id)
        ORDER BY id DESC LIMIT 1`,
      [request.profileId, running?.id ?? null, secs(settings.resumeMaxAgeMs)],
    );
    const from = previous[0];
    const [trigger, detail] = triggerColumns(request.trigger);
    const { rows } = await client.query<ClaimedRow>(
      `INSERT INTO sync_runs (profile_id, request_id, requested_at, trigger, trigger_detail, trace_id, resumed_from, holder)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${CLAIMED_COLUMNS}`,
      [
        request.profileId,
        request.requestId,
        request.requestedAt,
        trigger,
        detail,
        request.traceId ?? null,
        from?.id ?? null,
        holder.id,
      ],
    );
    const created = rows[0] as ClaimedRow;
    if (running !== undefined) {
      await client.query(
        `UPDATE sync_runs SET status = 'superseded', superseded_by = $2::bigint, finished_at = now(), heartbeat_at = NULL,
                error = coalesce(error, 'its worker stopped answering; run ' || $2::text || ' took over')
          WHERE id = $1`,
        [running.id, created.id],
      );
    }
    if (from !== undefined) {
      // The old run's pages, counts and waits become the new run's: it goes on where that one stopped.
      await client.query('UPDATE sync_run_pages SET run_id = $2 WHERE run_id = $1', [from.id, created.id]);
      const { rows: carried } = await client.query<ClaimedRow>(
        `UPDATE sync_runs n SET counts = o.counts, pages = o.pages, throttled_ms = o.throttled_ms,
                throttled_requests = o.throttled_requests, checkpoint_at = o.checkpoint_at
           FROM sync_runs o WHERE n.id = $1 AND o.id = $2
         RETURNING n.id, n.attempts, n.started_at, n.trigger, n.trigger_detail, n.counts, n.pages, n.throttled_ms,
                   n.throttled_requests, (EXTRACT(EPOCH FROM now() - n.checkpoint_at) * 1000)::float8 AS checkpoint_age_ms`,
        [created.id, from.id],
      );
      Object.assign(created, carried[0]);
    }
    await client.query(
      `UPDATE profile_sync_state SET running_run_id = $2, queued_at = NULL, queued_request_id = NULL WHERE profile_id = $1`,
      [request.profileId, created.id],
    );
    return { kind: 'run', run: await withCheckpoint(client, created, request.profileId, settings, from?.id) };
  });
}

export interface PageProgress {
  readonly counts: RunCounts;
  readonly pages: number;
  readonly throttledMs: number;
  readonly throttledRequests: number;
}

/**
 * One page: its upsert, its place in the checkpoint and the run's progress, in one
 * transaction, so the checkpoint never claims a page whose rows are not written. The parts of
 * a split kind record their pages side by side, so the run's totals are added to in the
 * statement (under the run row's lock) rather than written from a copy: what one part
 * committed a moment before is never overwritten. The totals after this page come back.
 */
export function recordPage(
  pool: pg.Pool,
  run: ClaimedRun,
  kind: EntityKind,
  page: {
    /** Which part of a split kind, of how many (0 of 1: listed whole). */
    readonly part: { readonly index: number; readonly of: number };
    readonly number: number;
    readonly items: readonly unknown[];
    readonly ids: readonly string[];
    readonly nextToken: string | undefined;
  },
  throttled: { readonly throttledMs: number; readonly throttledRequests: number },
): Promise<PageProgress> {
  return inTransaction(pool, async (client) => {
    const written = await upsertPage(client, kind, run.profileId, page.items);
    await client.query(
      `INSERT INTO sync_run_pages (run_id, kind, part, parts, page, entity_ids, next_token) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (run_id, kind, part, page) DO UPDATE SET entity_ids = EXCLUDED.entity_ids, next_token = EXCLUDED.next_token`,
      [run.runId, kind, page.part.index, page.part.of, page.number, page.ids, page.nextToken ?? null],
    );
    const { rows } = await client.query<{
      counts: unknown;
      pages: number;
      throttled_ms: number;
      throttled_requests: number;
    }>(
      `UPDATE sync_runs SET
              counts = jsonb_set(counts, ARRAY[$3::text], jsonb_build_object(
                'seen', coalesce((counts -> $3 ->> 'seen')::int, 0) + $4,
                'inserted', coalesce((counts -> $3 ->> 'inserted')::int, 0) + $5,
                'changed', coalesce((counts -> $3 ->> 'changed')::int, 0) + $6,
                'restored', coalesce((counts -> $3 ->> 'restored')::int, 0) + $7,
                'removed', coalesce((counts -> $3 ->> 'removed')::int, 0))),
              pages = pages + 1,
              throttled_ms = greatest(throttled_ms, $8), throttled_requests = greatest(throttled_requests, $9),
              heartbeat_at = now(), checkpoint_at = now()
        WHERE id = $1 AND attempts = $2 AND status = 'running'
        RETURNING counts, pages, throttled_ms, throttled_requests`,
      [
        run.runId,
        run.attempt,
        kind,
        page.items.length,
        written.inserted,
        written.changed,
        written.restored,
        Math.round(throttled.throttledMs),
        throttled.throttledRequests,
      ],
    );
    const row = rows[0];
    if (row === undefined) throw new RunTakenOverError(run.runId);
    return {
      counts: countsFrom(row.counts),
      pages: row.pages,
      throttledMs: row.throttled_ms,
      throttledRequests: row.throttled_requests,
    };
  });
}

/** The entities of a kind the profile's last good sync saw (undefined: no good sync yet). */
export async function lastGoodSeen(
  db: Queryable,
  profileId: number,
  kind: EntityKind,
): Promise<number | undefined> {
  const { rows } = await db.query<{ counts: unknown }>(
    `SELECT r.counts FROM profile_sync_state s JOIN sync_runs r ON r.id = s.last_good_run_id WHERE s.profile_id = $1`,
    [profileId],
  );
  return rows[0] === undefined ? undefined : countsFrom(rows[0].counts)[kind].seen;
}

/** Drops a kind's pages (every part's) when its listing must start again from the first page. */
export async function restartKind(pool: pg.Pool, run: ClaimedRun, kind: EntityKind, note: string) {
  await pool.query('DELETE FROM sync_run_pages WHERE run_id = $1 AND kind = $2', [run.runId, kind]);
  // The kind's pages are listed again: what they counted as seen is counted again.
  await pool.query(
    `UPDATE sync_runs SET resume_note = $2,
            counts = CASE WHEN counts ? $3 THEN jsonb_set(counts, ARRAY[$3::text, 'seen'], '0') ELSE counts END
      WHERE id = $1`,
    [run.runId, note, kind],
  );
}

/** Locks the state row and takes its follow-up list; the run must still be this attempt's. */
async function endRun(
  client: Queryable,
  run: ClaimedRun,
  status: RunStatus,
  set: string,
  values: unknown[],
): Promise<DirectTrigger[]> {
  const { rows } = await client.query<{ follow_up: DirectTrigger[] | null }>(
    'SELECT follow_up FROM profile_sync_state WHERE profile_id = $1 FOR UPDATE',
    [run.profileId],
  );
  const { rowCount } = await client.query(
    `UPDATE sync_runs SET status = $3, finished_at = now(), heartbeat_at = NULL, ${set}
      WHERE id = $1 AND attempts = $2 AND status = 'running'`,
    [run.runId, run.attempt, status, ...values],
  );
  if (rowCount !== 1) throw new RunTakenOverError(run.runId);
  return rows[0]?.follow_up ?? [];
}

/** Sends the follow-up for what was folded during the run, if anything was. */
async function sendFollowUp(
  client: Queryable,
  messenger: Messenger,
  run: ClaimedRun,
  folded: DirectTrigger[],
) {
  if (folded.length === 0) return false;
  const { rows } = await client.query<{ now: Date }>('SELECT clock_timestamp() AS now');
  await enqueueLocked(
    client,
    messenger,
    [run.profileId],
    { kind: 'follow-up', folded },
    rows[0]?.now ?? new Date(),
  );
  return true;
}

export interface FinishedRun {
  readonly counts: RunCounts;
  readonly finishedAt: Date;
  readonly followUp: boolean;
}

/** Success: removals marked, the run recorded, the profile's last good sync moved, the follow-up sent. */
export function finishRun(
  pool: pg.Pool,
  messenger: Messenger,
  run: ClaimedRun,
  progress: PageProgress,
): Promise<FinishedRun> {
  return inTransaction(pool, async (client) => {
    const removed = await markRemoved(client, run.profileId, run.runId);
    const counts = structuredClone(progress.counts);
    for (const kind of ENTITY_KINDS) counts[kind].removed = removed[kind];
    const folded = await endRun(
      client,
      run,
      RunStatus.Succeeded,
      'counts = $4, pages = $5, throttled_ms = $6, throttled_requests = $7',
      [counts, progress.pages, Math.round(progress.throttledMs), progress.throttledRequests],
    );
    await client.query('DELETE FROM sync_run_pages WHERE run_id = $1', [run.runId]);
    const { rows } = await client.query<{ finished_at: Date }>(
      `UPDATE profiles SET last_synced_at = now() WHERE id = $1 RETURNING last_synced_at AS finished_at`,
      [run.profileId],
    );
    await client.query(
      `UPDATE profile_sync_state SET running_run_id = NULL, last_good_run_id = $2, failing_since = NULL, follow_up = NULL
        WHERE profile_id = $1`,
      [run.profileId, run.runId],
    );
    const followUp = await sendFollowUp(client, messenger, run, folded);
    return { counts, finishedAt: rows[0]?.finished_at ?? new Date(), followUp };
  });
}

/** Failure: recorded on the run and the profile (failing since its first failure); the follow-up still goes. */
export function failRun(
  pool: pg.Pool,
  messenger: Messenger,
  run: ClaimedRun,
  error: string,
  progress: PageProgress,
) {
  return inTransaction(pool, async (client) => {
    const folded = await endRun(
      client,
      run,
      RunStatus.Failed,
      'error = $4, counts = $5, pages = $6, throttled_ms = $7, throttled_requests = $8',
      [
        error.slice(0, 2_000),
        progress.counts,
        progress.pages,
        Math.round(progress.throttledMs),
        progress.throttledRequests,
      ],
    );
    await client.query(
      `UPDATE profile_sync_state SET running_run_id = NULL, last_failed_run_id = $2, last_error = $3,
              last_error_at = now(), failing_since = coalesce(failing_since, now()), follow_up = NULL
        WHERE profile_id = $1`,
      [run.profileId, run.runId, error.slice(0, 2_000)],
    );
    await sendFollowUp(client, messenger, run, folded);
  });
}

/**
 * The worker lets go of a run it cannot finish now (drain deadline, rate-limit deferral):
 * the run stays `running` with no heartbeat, so its message's redelivery resumes it at once.
 */
export async function releaseRun(pool: pg.Pool, run: ClaimedRun, progress: PageProgress): Promise<void> {
  await pool.query(
    `UPDATE sync_runs SET heartbeat_at = NULL, throttled_ms = $3, throttled_requests = $4
      WHERE id = $1 AND attempts = $2 AND status = 'running'`,
    [run.runId, run.attempt, Math.round(progress.throttledMs), progress.throttledRequests],
  );
}
