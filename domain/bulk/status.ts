/**
 * The bulk job vocabulary: what an item and a job can be, and which of those are final.
 * The migration (0004_bulk_jobs.sql) checks the same lists.
 */

export const ItemStatus = {
  Pending: 'PENDING',
  Running: 'RUNNING',
  Retry: 'RETRY',
  Succeeded: 'SUCCEEDED',
  Failed: 'FAILED',
  Cancelled: 'CANCELLED',
} as const;
export type ItemStatus = (typeof ItemStatus)[keyof typeof ItemStatus];

export const ITEM_STATUSES = Object.values(ItemStatus);
export const TERMINAL_ITEM_STATUSES: readonly ItemStatus[] = [
  ItemStatus.Succeeded,
  ItemStatus.Failed,
  ItemStatus.Cancelled,
];

export const JobStatus = {
  /** Written by `bulk submit`; its items wait for dispatch. */
  Submitted: 'SUBMITTED',
  Running: 'RUNNING',
  /** `bulk cancel` while batches were in flight: they finish, nothing else starts. */
  Cancelling: 'CANCELLING',
  Completed: 'COMPLETED',
  CompletedWithErrors: 'COMPLETED_WITH_ERRORS',
  Cancelled: 'CANCELLED',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = [
  JobStatus.Completed,
  JobStatus.CompletedWithErrors,
  JobStatus.Cancelled,
];
export const LIVE_JOB_STATUSES: readonly JobStatus[] = [
  JobStatus.Submitted,
  JobStatus.Running,
  JobStatus.Cancelling,
];

export const EntityType = { Keyword: 'keyword', Campaign: 'campaign' } as const;
export type EntityType = (typeof EntityType)[keyof typeof EntityType];
export const ENTITY_TYPES = Object.values(EntityType);

/** Error codes the fleet itself gives an item (Amazon's own codes are kept as Amazon sends them). */
export const FleetErrorCode = {
  /** A later-submitted job changes the same entity: this older change is not applied. */
  Superseded: 'SUPERSEDED',
  /** `bulk cancel` before the item was applied. */
  Cancelled: 'CANCELLED_BY_OPERATOR',
  /** The worker holding the item stopped answering (crash) and its lease ran out. */
  LeaseExpired: 'LEASE_EXPIRED',
} as const;
