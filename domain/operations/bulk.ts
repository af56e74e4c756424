import type pg from 'pg';
import { type BulkJob, listJobs, loadJob, type Progress, progressOf } from '../bulk/jobs.ts';
import { failureSummary, type ReportRow, reportRows } from '../bulk/report.ts';
import { LIVE_JOB_STATUSES } from '../bulk/status.ts';

/**
 * Bulk jobs as operators see them, through the bulk model's own read functions: counts,
 * progress and ETA, failures by Amazon's code, and what is stuck — a live job whose items
 * have not changed for STUCK_AFTER_SECONDS while some are still to do.
 */

/** Longer than the longest retry backoff and lease: a job this quiet is not waiting on purpose. */
export const STUCK_AFTER_SECONDS = 15 * 60;
const RECENT_MS = 24 * 3_600 * 1000;

export interface BulkJobView {
  readonly job: BulkJob;
  readonly progress: Progress;
  /** Seconds since an item last changed, for a live job with items to do; else null. */
  readonly idleSeconds: number | null;
  readonly stuck: boolean;
  readonly failures: ReadonlyArray<{ code: string; count: number; example: string }>;
}

function viewOf(job: BulkJob, failures: BulkJobView['failures'], now: number): BulkJobView {
  const progress = progressOf(job, new Date(now));
  const live = LIVE_JOB_STATUSES.includes(job.status);
  const idleSeconds =
    live && progress.done < job.counts.total ? (now - job.updatedAt.getTime()) / 1000 : null;
  return {
    job,
    progress,
    idleSeconds,
    stuck: idleSeconds !== null && idleSeconds > STUCK_AFTER_SECONDS,
    failures,
  };
}

/** Live jobs, and jobs that finished in the last day (37 failed items at 1 a.m. still show at 2). */
export async function readBulkJobs(db: pg.Pool): Promise<BulkJobView[]> {
  const now = Date.now();
  const jobs = (await listJobs(db, 50)).filter(
    (job) =>
      LIVE_JOB_STATUSES.includes(job.status) ||
      (job.finishedAt !== null && now - job.finishedAt.getTime() < RECENT_MS),
  );
  return Promise.all(
    jobs.map(async (job) => viewOf(job, job.counts.failed > 0 ? await failureSummary(db, job.id) : [], now)),
  );
}

export interface BulkJobDetail extends BulkJobView {
  /** The first failed items in file order, with Amazon's answer. */
  readonly failedItems: readonly ReportRow[];
  /** Items that became final per time bucket since dispatch: the job's progress over time. */
  readonly finishedOverTime: ReadonlyArray<{ readonly at: Date; readonly items: number }>;
}

const FAILED_ITEMS_SHOWN = 200;
const BUCKETS = 60;

export async function readBulkJob(db: pg.Pool, jobId: string): Promise<BulkJobDetail | undefined> {
  const job = await loadJob(db, jobId);
  if (job === undefined) return undefined;
  const failedItems: ReportRow[] = [];
  if (job.counts.failed > 0) {
    for await (const row of reportRows(db, job.id, { failedOnly: true })) {
      failedItems.push(row);
      if (failedItems.length >= FAILED_ITEMS_SHOWN) break;
    }
  }
  const [failures, buckets] = await Promise.all([
    job.counts.failed > 0 ? failureSummary(db, job.id) : Promise.resolve([]),
    db.query<{ at: Date; items: number }>(
      `WITH span AS (
         SELECT coalesce(j.dispatched_at, j.created_at) AS start, coalesce(j.finished_at, now()) AS stop
           FROM bulk_jobs j WHERE j.id = $1)
       SELECT span.start + (b.bucket - 1) * (span.stop - span.start) / $2 AS at, b.items::int AS items
         FROM span,
              LATERAL (SELECT width_bucket(extract(epoch FROM i.finished_at),
                                           extract(epoch FROM span.start), extract(epoch FROM span.stop) + 0.001, $2) AS bucket,
                              count(*) AS items
                         FROM bulk_items i
                        WHERE i.job_id = $1 AND i.finished_at IS NOT NULL
                        GROUP BY 1) b
        WHERE b.bucket BETWEEN 1 AND $2
        ORDER BY at`,
      [jobId, BUCKETS],
    ),
  ]);
  return { ...viewOf(job, failures, Date.now()), failedItems, finishedOverTime: buckets.rows };
}
