/**
 * The status vocabulary of backfill jobs and their partitions; the transitions between
 * them are enforced in lifecycle.ts (jobs) and checkpoint.ts (a chain stopping).
 */

export const JobStatus = {
  Running: 'running',
  Pausing: 'pausing',
  Paused: 'paused',
  Cancelling: 'cancelling',
  Cancelled: 'cancelled',
  Completed: 'completed',
  Failed: 'failed',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

/** A job in one of these is finished: nothing moves it again. */
export const TERMINAL_JOB_STATUSES = [JobStatus.Cancelled, JobStatus.Completed, JobStatus.Failed] as const;

/** At most one job per backfill is in one of these (a unique index says so too). */
export const LIVE_JOB_STATUSES = [
  JobStatus.Running,
  JobStatus.Pausing,
  JobStatus.Paused,
  JobStatus.Cancelling,
] as const;

export function isTerminal(status: JobStatus): boolean {
  return (TERMINAL_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export const PartitionStatus = {
  Running: 'running',
  Paused: 'paused',
  Completed: 'completed',
  Cancelled: 'cancelled',
  Failed: 'failed',
} as const;
export type PartitionStatus = (typeof PartitionStatus)[keyof typeof PartitionStatus];
