import type pg from 'pg';
import type { JobStatus } from './status.ts';

/** Read models of a bulk job: one job, recent jobs, progress (`bulk status`, `bulk list`). */

export interface BulkJob {
  readonly id: string;
  readonly seq: number;
  readonly kind: string;
  readonly status: JobStatus;
  readonly fileName: string;
  readonly submittedBy: string;
  readonly counts: {
    readonly total: number;
    readonly pending: number;
    readonly running: number;
    readonly retry: number;
    readonly succeeded: number;
    readonly failed: number;
    readonly cancelled: number;
  };
  readonly error: string | null;
  readonly traceId: string | null;
  readonly createdAt: Date;
  readonly dispatchedAt: Date | null;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

const JOB_COLUMNS = `id, seq, kind, status, file_name, submitted_by, total, pending, running, retry,
  succeeded, failed, cancelled, error, trace_id, created_at, dispatched_at, updated_at, finished_at`;

interface JobRow {
  id: string;
  seq: number;
  kind: string;
  status: JobStatus;
  file_name: string;
  submitted_by: string;
  total: number;
  pending: number;
  running: number;
  retry: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  error: string | null;
  trace_id: string | null;
  created_at: Date;
  dispatched_at: Date | null;
  updated_at: Date;
  finished_at: Date | null;
}

function toJob(row: JobRow): BulkJob {
  return {
    id: row.id,
    seq: row.seq,
    kind: row.kind,
    status: row.status,
    fileName: row.file_name,
    submittedBy: row.submitted_by,
    counts: {
      total: row.total,
      pending: row.pending,
      running: row.running,
      retry: row.retry,
      succeeded: row.succeeded,
      failed: row.failed,
      cancelled: row.cancelled,
    },
    error: row.error,
    traceId: row.trace_id,
    createdAt: row.created_at,
    dispatchedAt: row.dispatched_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function loadJob(pool: pg.Pool, jobId: string): Promise<BulkJob | undefined> {
  if (!UUID.test(jobId)) return undefined;
  const { rows } = await pool.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM bulk_jobs WHERE id = $1`, [jobId]);
  return rows[0] === undefined ? undefined : toJob(rows[0]);
}

/** By id, or by a unique prefix of at least 8 characters (what `bulk list` shows first). */
export async function findJob(pool: pg.Pool, idOrPrefix: string): Promise<BulkJob | undefined> {
  if (UUID.test(idOrPrefix)) return loadJob(pool, idOrPrefix);
  if (!/^[0-9a-f-]{8,35}$/i.test(idOrPrefix)) return undefined;
  const { rows } = await pool.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM bulk_jobs WHERE id::text LIKE $1 || '%' ORDER BY created_at DESC LIMIT 2`,
    [idOrPrefix.toLowerCase()],
  );
  return rows.length === 1 && rows[0] !== undefined ? toJob(rows[0]) : undefined;
}

export async function listJobs(pool: pg.Pool, limit: number): Promise<BulkJob[]> {
  const { rows } = await pool.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM bulk_jobs ORDER BY created_at DESC LIMIT $1`,
    [limit],
  );
  return rows.map(toJob);
}

export interface Progress {
  /** Items that are final (succeeded, failed, cancelled). */
  readonly done: number;
  readonly fraction: number;
  /** Final items per second since dispatch. */
  readonly itemsPerSecond: number;
  readonly etaSeconds: number | undefined;
  /** Items waiting for their next attempt. */
  readonly retriesWaiting: number;
}

export function progressOf(job: BulkJob, now: Date = new Date()): Progress {
  const { total, succeeded, failed, cancelled, retry } = job.counts;
  const done = succeeded + failed + cancelled;
  const end = job.finishedAt ?? now;
  const seconds = job.dispatchedAt === null ? 0 : (end.getTime() - job.dispatchedAt.getTime()) / 1000;
  const itemsPerSecond = seconds > 0 ? done / seconds : 0;
  const left = total - done;
  return {
    done,
    fraction: total === 0 ? 1 : done / total,
    itemsPerSecond,
    etaSeconds: left === 0 ? 0 : itemsPerSecond > 0 ? left / itemsPerSecond : undefined,
    retriesWaiting: retry,
  };
}
