import type pg from 'pg';
import { listJobs, loadJob } from '../backfill/jobs.ts';
import { loadPartitions, loadPartitionsOf } from '../backfill/partitions.ts';
import { type Progress, progressOf } from '../backfill/progress.ts';
import type { BackfillJob, BackfillPartition } from '../backfill/records.ts';
import { isTerminal } from '../backfill/status.ts';

/**
 * Backfill jobs as operators see them: progress and ETA from the backfill model's own
 * read functions, plus what is stuck — a running chain that has not moved for longer than
 * its job's stall_after_ms (its worker died or its message was lost; the watchdog restarts
 * it, and until it does this is what shows it).
 */

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Jobs finished longer ago than this are history: status shows live and recent ones. */
const RECENT_SECONDS = 24 * 3_600;

export interface StalledChain {
  readonly partition: number;
  readonly idleSeconds: number;
}

export interface BackfillView {
  readonly job: BackfillJob;
  readonly progress: Progress;
  readonly stalled: readonly StalledChain[];
}

async function stalledChains(db: Queryable, jobIds: readonly string[]): Promise<Map<string, StalledChain[]>> {
  const { rows } = await db.query<{ jobId: string; partition: number; idleSeconds: number }>(
    `SELECT p.job_id AS "jobId", p.partition, extract(epoch FROM now() - p.updated_at)::float8 AS "idleSeconds"
       FROM backfill_partitions p JOIN backfill_jobs j ON j.id = p.job_id
      WHERE p.job_id = ANY ($1) AND p.status = 'running'
        AND p.updated_at < now() - make_interval(secs => j.stall_after_ms / 1000.0)
      ORDER BY p.job_id, p.partition`,
    [jobIds],
  );
  const byJob = new Map<string, StalledChain[]>();
  for (const { jobId, ...chain } of rows) byJob.set(jobId, [...(byJob.get(jobId) ?? []), chain]);
  return byJob;
}

/** Live jobs, and jobs that finished in the last day (a failure at 1 a.m. still shows at 2). */
export async function readBackfills(db: Queryable): Promise<BackfillView[]> {
  const now = Date.now();
  const jobs = (await listJobs(db, 50)).filter(
    (job) =>
      !isTerminal(job.status) ||
      (job.finishedAt !== null && now - job.finishedAt.getTime() < RECENT_SECONDS * 1000),
  );
  const ids = jobs.map((job) => job.id);
  const [partitions, stalled] = await Promise.all([loadPartitionsOf(db, ids), stalledChains(db, ids)]);
  return jobs.map((job) => ({
    job,
    progress: progressOf(job, partitions.get(job.id) ?? []),
    stalled: stalled.get(job.id) ?? [],
  }));
}

export interface ThrottleEvent {
  readonly at: Date;
  readonly partition: number;
  readonly state: string;
  readonly reason: string;
  readonly probeMs: number | null;
  readonly activeConnections: number | null;
  readonly replicationLagMs: number | null;
  readonly rateLimit: number | null;
}

export interface ProgressSample {
  readonly at: Date;
  readonly rowsProcessed: number;
  readonly rate: number;
}

export interface BackfillDetail extends BackfillView {
  readonly partitions: readonly BackfillPartition[];
  readonly samples: readonly ProgressSample[];
  readonly throttleEvents: readonly ThrottleEvent[];
}

/** One job for its page: partitions, the rows/s history and the latest throttle decisions. */
export async function readBackfill(db: Queryable, jobId: string): Promise<BackfillDetail | undefined> {
  const job = await loadJob(db, jobId);
  if (job === undefined) return undefined;
  const [partitions, stalled, samples, events] = await Promise.all([
    loadPartitions(db, jobId),
    stalledChains(db, [jobId]),
    db.query<ProgressSample>(
      `SELECT at, rows_processed AS "rowsProcessed", current_rate AS rate
         FROM (SELECT * FROM backfill_progress_samples WHERE job_id = $1 ORDER BY at DESC LIMIT 720) recent
        ORDER BY at`,
      [jobId],
    ),
    db.query<ThrottleEvent>(
      `SELECT at, partition, state, reason, probe_ms AS "probeMs", active_connections AS "activeConnections",
              replication_lag_ms AS "replicationLagMs", rate_limit AS "rateLimit"
         FROM backfill_throttle_events WHERE job_id = $1 ORDER BY at DESC LIMIT 50`,
      [jobId],
    ),
  ]);
  return {
    job,
    partitions,
    progress: progressOf(job, partitions),
    stalled: stalled.get(jobId) ?? [],
    samples: samples.rows,
    throttleEvents: events.rows,
  };
}
