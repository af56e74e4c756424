import { context, trace } from '@opentelemetry/api';
import type pg from 'pg';
import { inTransaction } from '../../shared/db.ts';
import { describeError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { type Carrier, extractContext } from '../../shared/messaging/trace-context.ts';
import { liveLeaseLeftMs } from './apply.ts';
import { completeIfDone, publishOutbox } from './completion.ts';
import { dispatchJob } from './dispatch.ts';
import { planBatches } from './plan.ts';
import { type EntityType, FleetErrorCode } from './status.ts';

/**
 * The sweeper every bulk-item worker runs: what no message will do by itself.
 *
 *  - leases that ran out (the worker holding the items died): the items count the attempt
 *    and go back to RETRY (FAILED past the maximum) and are sent again at once, in their
 *    job's trace — they do not wait for SQS to redeliver the dead worker's message;
 *  - profiles whose every claim went stale (the worker holding them died) while they have
 *    due items: a batch of those per dead claim is sent at once, so the profile goes on within seconds of
 *    the death instead of after the dead claims' leases run out (checked every second,
 *    RESUME_EVERY_MS, apart from the rest); a profile with some claims dead and some live,
 *    below its in-flight cap, gets chains for the dead ones started in the sweeping process;
 *  - profiles with items due for STRANDED_AFTER_MS and no claim at all (a chain's worker died
 *    between two of its batches, or between a commit and the send that carried its items
 *    on): a batch of them per in-flight slot is sent again, within about half a minute and
 *    not after the stall threshold;
 *  - items whose message is long overdue (lost between a commit and a send): sent again;
 *  - SUBMITTED jobs nobody dispatched (the CLI died after commit, before publishing);
 *  - jobs with nothing left that are not final yet, and unpublished BulkJobCompleted rows.
 * Every step takes its rows with FOR UPDATE SKIP LOCKED, so the sweepers of several workers
 * divide the work rather than repeat it; a duplicate batch message is harmless anyway.
 */

export interface SweepSettings {
  readonly intervalMs: number;
  /** The claims' lease (liveLeaseLeftMs tells a live claim from a stale one by it). */
  readonly leaseMs: number;
  readonly stallAfterMs: number;
  readonly maxAttempts: number;
  readonly batchSize: number;
  /** Live claims a profile may hold (ADFLEET_BULK_PROFILE_IN_FLIGHT). */
  readonly profileInFlight: number;
}

export interface SweepResult {
  readonly recovered: number;
  readonly stranded: number;
  readonly resent: number;
  readonly dispatched: number;
  readonly completed: number;
  readonly published: number;
}

const SWEEP_ITEMS = 10_000;
const tracer = trace.getTracer('adfleet.bulk');

interface StrayItem {
  id: number;
  job_id: string;
  profile_id: number;
  entity_type: EntityType;
  trace_carrier: Carrier;
}

/** Sends items again as batches, each job's in that job's trace. */
async function resend(messenger: Messenger, items: readonly StrayItem[], batchSize: number, what: string) {
  const byJob = new Map<string, StrayItem[]>();
  for (const item of items) {
    const list = byJob.get(item.job_id) ?? [];
    list.push(item);
    byJob.set(item.job_id, list);
  }
  for (const [jobId, list] of byJob) {
    const batches = planBatches(
      list.map((item) => ({ id: item.id, profileId: item.profile_id, entityType: item.entity_type })),
      batchSize,
    );
    await context.with(extractContext(list[0]?.trace_carrier ?? {}), () =>
      tracer.startActiveSpan(`bulk ${what}`, async (span) => {
        try {
          span.setAttribute('adfleet.bulk.job_id', jobId);
          span.setAttribute('adfleet.bulk.items', list.length);
          await messenger.sendBatch(
            'BulkItemBatch',
            batches.map((batch) => ({ jobId, profileId: batch.profileId, itemIds: batch.itemIds })),
          );
        } finally {
          span.end();
        }
      }),
    );
  }
}

export async function recoverExpiredLeases(
  pool: pg.Pool,
  messenger: Messenger,
  settings: Pick<SweepSettings, 'maxAttempts' | 'batchSize'>,
): Promise<number> {
  const { items, outboxes } = await inTransaction(pool, async (client) => {
    const { rows } = await client.query<StrayItem & { attempts: number }>(
      `SELECT i.id, i.job_id, i.profile_id, i.entity_type, i.attempts, j.trace_carrier
         FROM bulk_items i JOIN bulk_jobs j ON j.id = i.job_id
        WHERE i.status = 'RUNNING' AND i.lease_expires_at < now()
        ORDER BY i.id LIMIT $1 FOR UPDATE OF i SKIP LOCKED`,
      [SWEEP_ITEMS],
    );
    if (rows.length === 0) return { items: [], outboxes: [] };
    await client.query(
      `UPDATE bulk_items i
          SET attempts = i.attempts + 1,
              status = CASE WHEN i.attempts + 1 >= $3 THEN 'FAILED' ELSE 'RETRY' END,
              finished_at = CASE WHEN i.attempts + 1 >= $3 THEN now() END,
              error_code = $4,
              error_message = 'the worker applying it stopped before recording Amazon''s answer (lease expired)',
              lease_owner = NULL, lease_expires_at = NULL, due_at = now(), updated_at = now()
         FROM unnest($1::uuid[], $2::bigint[]) AS s (job_id, id)
        WHERE i.job_id = s.job_id AND i.id = s.id`,
      [
        rows.map((row) => row.job_id),
        rows.map((row) => row.id),
        settings.maxAttempts,
        FleetErrorCode.LeaseExpired,
      ],
    );
    const outboxes: number[] = [];
    for (const jobId of new Set(rows.map((row) => row.job_id))) {
      const outbox = await completeIfDone(client, jobId);
      if (outbox !== undefined) outboxes.push(outbox);
    }
    await resend(
      messenger,
      rows.filter((row) => row.attempts + 1 < settings.maxAttempts),
      settings.batchSize,
      'recover',
    );
    return { items: rows, outboxes };
  });
  for (const outbox of outboxes) await publishOutbox(pool, messenger, outbox);
  return items.length;
}

/**
 * A profile of a running job with claims that went stale (their holder died): all of them,
 * or some, with fewer live ones than its in-flight cap.
 */
export interface OrphanedProfile {
  readonly jobId: string;
  readonly profileId: number;
  /** The chains to start for it: its stale claims, at most its cap less its live ones. */
  readonly claims: number;
  /** The job's trace, for whatever carries the profile on. */
  readonly traceCarrier: Carrier;
}

export interface ResumeHooks {
  /**
   * Carries an orphaned profile on in this process, at once: returns how many of its
   * `claims` chains it started (the bulk-item worker starts chains, which take the
   * profile's due items from the ledger). For a profile with no live claim, the sweeper
   * sends a batch message for each of the rest; one with live claims goes on with those.
   */
  readonly startChains?: (orphan: OrphanedProfile) => number;
}

export async function resumeOrphanedProfiles(
  pool: pg.Pool,
  messenger: Messenger,
  settings: Pick<SweepSettings, 'leaseMs' | 'batchSize' | 'profileInFlight'>,
  hooks: ResumeHooks = {},
): Promise<number> {
  // Profiles of running jobs with stale claims (none expired yet: recoverExpiredLeases takes
  // those) and fewer live ones than the cap. Only whole orphans were resumed before: in a
  // bench run a kill took three of the largest profile's four chains, and it ran on one
  // for 16 s (the dead claims' leases, then its delayed batches) at a quarter of its rate.
  const { rows: orphans } = await pool.query<{
    job_id: string;
    profile_id: string;
    stale: number;
    live: number;
    trace_carrier: Carrier;
  }>(
    `WITH claims AS (
       SELECT i.job_id, i.profile_id, i.lease_owner,
              max(i.lease_expires_at) > now() + $1 * interval '1 millisecond' AS live
         FROM bulk_items i
        WHERE i.status = 'RUNNING' AND i.lease_expires_at > now()
        GROUP BY i.job_id, i.profile_id, i.lease_owner)
     SELECT c.job_id, c.profile_id, j.trace_carrier,
            count(*) FILTER (WHERE NOT c.live)::int AS stale,
            count(*) FILTER (WHERE c.live)::int AS live
       FROM claims c JOIN bulk_jobs j ON j.id = c.job_id
      WHERE j.status = 'RUNNING'
      GROUP BY c.job_id, c.profile_id, j.trace_carrier
     HAVING count(*) FILTER (WHERE NOT c.live) > 0 AND count(*) FILTER (WHERE c.live) < $2
      LIMIT 100`,
    [liveLeaseLeftMs(settings.leaseMs), settings.profileInFlight],
  );
  let resumed = 0;
  for (const orphan of orphans) {
    // A chain for each dead claim, started here if the hook can: a batch message waits
    // behind the queue's backlog (the profiles' delayed batches), and in a bench run the
    // largest profile stood still 11.5 s after a kill while its resumed batches did.
    // Otherwise a batch for each dead claim: each handler that takes one carries on one
    // of the profile's chains (one batch for all of them left a profile that had run
    // four chains with one, which a call Amazon held to the timeout stood still 6.8 s).
    const claims = Math.min(orphan.stale, settings.profileInFlight - orphan.live);
    const started =
      hooks.startChains?.({
        jobId: orphan.job_id,
        profileId: Number(orphan.profile_id),
        claims,
        traceCarrier: orphan.trace_carrier,
      }) ?? 0;
    // With live claims the profile goes on without messages: those would be sent again
    // every second until the dead claims' leases run out.
    if (started >= claims || orphan.live > 0) {
      if (started > 0) resumed += 1;
      continue;
    }
    const { rows: items } = await pool.query<StrayItem>(
      `SELECT i.id, i.job_id, i.profile_id, i.entity_type, j.trace_carrier
         FROM bulk_items i JOIN bulk_jobs j ON j.id = i.job_id
        WHERE i.job_id = $1 AND i.profile_id = $2 AND i.status IN ('PENDING', 'RETRY') AND i.due_at <= now()
        ORDER BY i.id LIMIT $3`,
      [orphan.job_id, orphan.profile_id, settings.batchSize * (claims - started)],
    );
    if (items.length === 0) {
      if (started > 0) resumed += 1;
      continue;
    }
    await resend(messenger, items, settings.batchSize, 'resume');
    resumed += 1;
  }
  return resumed;
}

/**
 * How long a profile's items may stay due with no claim on the profile before the sweeper
 * sends them again. Longer than any wait the fleet itself makes with items due and no
 * claim: a busy profile's deferred message (5–10 s), a drained message's copy (21 s); items
 * released for an Ads outage are due only when their message is surely back.
 */
export const STRANDED_AFTER_MS = 30_000;

/**
 * Profiles of running jobs whose items have been due for `strandedAfterMs` with no claim on
 * the profile, live or stale: nothing carries them. A chain's items are in the ledger, not
 * in a message, so a worker killed while its chain was between two batches (claiming the
 * next, or handing items to a message) left them for the stall sweep, five minutes later
 * (a 50,000-item bench run finished 185 s after its last large profile, for 100 such
 * items). A batch of them per in-flight slot goes out, and the profile's due items are
 * marked due now, so that the next sweeps leave it to those batches for the threshold's
 * time; a duplicate of a message still on its way claims nothing.
 */
export async function resendStranded(
  pool: pg.Pool,
  messenger: Messenger,
  settings: Pick<SweepSettings, 'batchSize' | 'profileInFlight'>,
  strandedAfterMs = STRANDED_AFTER_MS,
): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows: profiles } = await client.query<{ job_id: string; profile_id: string }>(
      `WITH due AS (
         SELECT DISTINCT i.job_id, i.profile_id FROM bulk_items i
          WHERE i.status IN ('PENDING', 'RETRY') AND i.due_at < now() - $1 * interval '1 millisecond')
       SELECT d.job_id, d.profile_id FROM due d JOIN bulk_jobs j ON j.id = d.job_id
        WHERE j.status = 'RUNNING'
          AND NOT EXISTS (SELECT 1 FROM bulk_items r
                           WHERE r.profile_id = d.profile_id AND r.status = 'RUNNING' AND r.lease_expires_at > now())
        LIMIT 100`,
      [strandedAfterMs],
    );
    const items: StrayItem[] = [];
    for (const profile of profiles) {
      const { rows } = await client.query<StrayItem>(
        `SELECT i.id, i.job_id, i.profile_id, i.entity_type, j.trace_carrier
           FROM bulk_items i JOIN bulk_jobs j ON j.id = i.job_id
          WHERE i.job_id = $1 AND i.profile_id = $2 AND i.status IN ('PENDING', 'RETRY') AND i.due_at <= now()
          ORDER BY i.due_at, i.id LIMIT $3 FOR UPDATE OF i SKIP LOCKED`,
        [profile.job_id, profile.profile_id, settings.batchSize * settings.profileInFlight],
      );
      items.push(...rows);
    }
    if (items.length === 0) return 0;
    await resend(messenger, items, settings.batchSize, 'resume stranded');
    // All of each profile's due items, not only those sent: the batches' handlers take the
    // rest (chaining), and the next sweeps give them the threshold's time to.
    const resumed = [...new Map(items.map((item) => [`${item.job_id}:${item.profile_id}`, item])).values()];
    // Only rows this sweep can lock at once: a claim of the profile may hold some of them,
    // and waiting for those while holding the batches' rows is a deadlock with it.
    await client.query(
      `UPDATE bulk_items i SET due_at = now(), updated_at = now()
        WHERE (i.job_id, i.id) IN (
          SELECT d.job_id, d.id FROM bulk_items d
                 JOIN unnest($1::uuid[], $2::bigint[]) AS s (job_id, profile_id)
                   ON d.job_id = s.job_id AND d.profile_id = s.profile_id
           WHERE d.status IN ('PENDING', 'RETRY') AND d.due_at < now()
           FOR UPDATE OF d SKIP LOCKED)`,
      [resumed.map((item) => item.job_id), resumed.map((item) => item.profile_id)],
    );
    return resumed.length;
  });
}

export async function resendOverdue(
  pool: pg.Pool,
  messenger: Messenger,
  settings: Pick<SweepSettings, 'stallAfterMs' | 'batchSize'>,
): Promise<number> {
  return inTransaction(pool, async (client) => {
    // Two queries, one per index: dispatched items by how long they are overdue
    // (bulk_items_due_idx), and undispatched items of a job whose dispatch is long past,
    // through that job (bulk_items_undispatched_idx) — a dispatch that died half-way, or a
    // retry-failed whose BulkJobSubmitted was lost. One query over coalesce(due_at,
    // dispatched_at) could use neither and would read every live item of a running job.
    const overdue = await client.query<StrayItem>(
      `SELECT i.id, i.job_id, i.profile_id, i.entity_type, j.trace_carrier
         FROM bulk_items i JOIN bulk_jobs j ON j.id = i.job_id
        WHERE i.status IN ('PENDING', 'RETRY') AND i.due_at < now() - $1 * interval '1 millisecond'
          AND j.status = 'RUNNING'
        ORDER BY i.due_at LIMIT $2 FOR UPDATE OF i SKIP LOCKED`,
      [settings.stallAfterMs, SWEEP_ITEMS],
    );
    const undispatched = await client.query<StrayItem>(
      `SELECT i.id, i.job_id, i.profile_id, i.entity_type, j.trace_carrier
         FROM bulk_jobs j
              CROSS JOIN LATERAL (
                SELECT i.id, i.job_id, i.profile_id, i.entity_type FROM bulk_items i
                 WHERE i.job_id = j.id AND i.due_at IS NULL AND i.status = 'PENDING'
                 LIMIT $2 FOR UPDATE SKIP LOCKED) i
        WHERE j.status = 'RUNNING' AND j.dispatched_at < now() - $1 * interval '1 millisecond'
        LIMIT $2`,
      [settings.stallAfterMs, SWEEP_ITEMS - overdue.rows.length],
    );
    const rows = [...overdue.rows, ...undispatched.rows];
    if (rows.length === 0) return 0;
    await resend(messenger, rows, settings.batchSize, 'resend');
    await client.query(
      `UPDATE bulk_items i SET due_at = now(), updated_at = now()
         FROM unnest($1::uuid[], $2::bigint[]) AS s (job_id, id)
        WHERE i.job_id = s.job_id AND i.id = s.id`,
      [rows.map((row) => row.job_id), rows.map((row) => row.id)],
    );
    return rows.length;
  });
}

export async function dispatchForgotten(
  pool: pg.Pool,
  messenger: Messenger,
  settings: Pick<SweepSettings, 'stallAfterMs' | 'batchSize'>,
): Promise<number> {
  const { rows } = await pool.query<{ id: string; trace_carrier: Carrier }>(
    `SELECT id, trace_carrier FROM bulk_jobs
      WHERE status = 'SUBMITTED' AND created_at < now() - $1 * interval '1 millisecond'
      ORDER BY created_at LIMIT 10`,
    [settings.stallAfterMs],
  );
  for (const job of rows) {
    await context.with(extractContext(job.trace_carrier), () =>
      dispatchJob(pool, messenger, job.id, settings.batchSize),
    );
  }
  return rows.length;
}

export async function settleJobs(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ id: string; trace_carrier: Carrier }>(
    `SELECT id, trace_carrier FROM bulk_jobs
      WHERE (status = 'RUNNING' AND pending + running + retry = 0) OR (status = 'CANCELLING' AND running = 0)`,
  );
  let completed = 0;
  for (const job of rows) {
    const outbox = await context.with(extractContext(job.trace_carrier), () =>
      inTransaction(pool, (client) => completeIfDone(client, job.id)),
    );
    if (outbox !== undefined) completed += 1;
  }
  return completed;
}

export async function sweepOnce(
  pool: pg.Pool,
  messenger: Messenger,
  settings: SweepSettings,
): Promise<SweepResult> {
  const recovered = await recoverExpiredLeases(pool, messenger, settings);
  const stranded = await resendStranded(pool, messenger, settings);
  const resent = await resendOverdue(pool, messenger, settings);
  const dispatched = await dispatchForgotten(pool, messenger, settings);
  const completed = await settleJobs(pool);
  const published = await publishOutbox(pool, messenger);
  return { recovered, stranded, resent, dispatched, completed, published };
}

export interface Sweeper {
  stop(): Promise<void>;
}

/**
 * How often each sweeper looks for orphaned profiles between its full sweeps: one query on
 * the small index of RUNNING items, so a profile a dead worker held goes on about a second
 * after its claims look stale rather than up to a sweep interval later.
 */
export const RESUME_EVERY_MS = 1_000;

export function startSweeper(
  pool: pg.Pool,
  messenger: Messenger,
  logger: Logger,
  settings: SweepSettings,
  hooks: ResumeHooks = {},
): Sweeper {
  let stopped = false;
  const loops = [
    repeat(settings.intervalMs, async () => {
      const result = await sweepOnce(pool, messenger, settings);
      if (Object.values(result).some((count) => count > 0)) logger.info(result, 'bulk sweep');
    }),
    repeat(Math.min(RESUME_EVERY_MS, settings.intervalMs), async () => {
      const resumed = await resumeOrphanedProfiles(pool, messenger, settings, hooks);
      if (resumed > 0) logger.info({ resumed }, 'bulk sweep');
    }),
  ];
  /** Runs `step` every `everyMs` after the last run ended, until stopped. */
  function repeat(everyMs: number, step: () => Promise<void>) {
    let running: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout;
    const tick = () => {
      running = step()
        .catch((error: unknown) => logger.warn({ err: describeError(error) }, 'bulk sweep failed'))
        .finally(() => {
          if (!stopped) timer = setTimeout(tick, everyMs);
        });
    };
    timer = setTimeout(tick, everyMs);
    return {
      async stop() {
        clearTimeout(timer);
        await running;
      },
    };
  }
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops.map((loop) => loop.stop()));
    },
  };
}
