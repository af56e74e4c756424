import { DEFAULT_DRAIN_TIMEOUT_MS } from '../contract/config.ts';
import { QUEUE_NAMES, type QueueName, topology } from '../contract/topology.ts';

/**
 * How each worker is deployed: what it may touch (IAM is derived from `sendsTo` and
 * `usesAdsApi`), how big a task is, and how it scales. The queue a worker consumes is the
 * one of the same name in the topology.
 */

/** One worker per queue, named after it. */
export const WORKER_NAMES = QUEUE_NAMES;
export type WorkerName = (typeof WORKER_NAMES)[number];

export interface WorkerDeployment {
  /** Queues the worker sends messages to (besides dead-lettering into its own DLQ). */
  readonly sendsTo: readonly QueueName[];
  /** Needs the LWA client credentials and refresh token; a worker that does not never gets them. */
  readonly usesAdsApi: boolean;
  /** Messages one task handles at once (`ADFLEET_CONCURRENCY`). */
  readonly concurrency: number;
  /** Typical seconds one message takes; with concurrency it sets the backlog-per-task target. */
  readonly typicalSecondsPerMessage: number;
  readonly minTasks: number;
  readonly maxTasks: number;
  readonly cpu: number;
  readonly memoryMiB: number;
}

export const workers = {
  'profile-sync': {
    // Fan-out of "sync all" into one message per profile lands back on its own queue.
    sendsTo: ['profile-sync'],
    usesAdsApi: true,
    concurrency: 20,
    // Three paginated list endpoints inside the profile's rate limit.
    typicalSecondsPerMessage: 30,
    minTasks: 1,
    // A sync pulls its pages one after another, so with list pages taking hundreds of ms a
    // sync runs well below its profile's rate and slots, not the client's rate limit, bound
    // the fleet: the capacity model (docs/capacity.md) needs 14 tasks to sync 20,000 profiles
    // inside the queue's one-hour freshness objective; 20 leave headroom for slower pages.
    // Reaching the client-rate floor would take about 50 (1,000 Postgres connections).
    maxTasks: 20,
    cpu: 512,
    memoryMiB: 1024,
  },
  'bulk-item': {
    // Item batches of a job are fanned out onto its own queue.
    sendsTo: ['bulk-item'],
    usesAdsApi: true,
    concurrency: 20,
    // One batch is one Ads API call plus a few row updates.
    typicalSecondsPerMessage: 2,
    minTasks: 1,
    maxTasks: 20,
    cpu: 512,
    memoryMiB: 1024,
  },
  'backfill-chunk': {
    // Each chunk enqueues the next one.
    sendsTo: ['backfill-chunk'],
    // Backfills read and write Postgres only.
    usesAdsApi: false,
    concurrency: 4,
    typicalSecondsPerMessage: 5,
    minTasks: 1,
    // Chunks are throttled on database health: more tasks would only queue on the same rows.
    maxTasks: 4,
    cpu: 256,
    memoryMiB: 512,
  },
} as const satisfies Record<WorkerName, WorkerDeployment>;

/**
 * Seconds ECS waits after SIGTERM before SIGKILL. The drain deadline plus time to flush
 * spans and close pools, so a clean shutdown is never cut short; Fargate allows 120 at most.
 */
export const STOP_TIMEOUT_SECONDS = Math.ceil(DEFAULT_DRAIN_TIMEOUT_MS / 1000) + 15;

/** Port of the worker's /healthz and /readyz (`ADFLEET_HEALTH_PORT`); task-local, never exposed. */
export const HEALTH_PORT = 8080;

/**
 * Target of backlog-per-task scaling: the messages one task can clear while staying well
 * inside the queue's freshness objective. Following AWS's "acceptable backlog per
 * instance" = acceptable latency / time per message, times the messages a task handles at
 * once; the acceptable latency is half of `maxMessageAgeSeconds`, so capacity is added long
 * before the age-of-oldest-message alarm fires.
 */
export function backlogPerTaskTarget(worker: WorkerName): number {
  const deployment: WorkerDeployment = workers[worker];
  const acceptableLatencySeconds = topology.queues[worker].maxMessageAgeSeconds / 2;
  return Math.floor(
    (acceptableLatencySeconds / deployment.typicalSecondsPerMessage) * deployment.concurrency,
  );
}
