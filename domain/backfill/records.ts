import type { JobStatus, PartitionStatus } from './status.ts';
import type { ThrottleDecision, ThrottlePolicy } from './throttle.ts';

/** A backfill_jobs row: the lifecycle, the bounds fixed at start, a summary of its partitions. */
export interface BackfillJob {
  readonly id: string;
  readonly name: string;
  readonly status: JobStatus;
  readonly batchSize: number;
  readonly batchesPerChunk: number;
  readonly parallel: number;
  readonly maxRate: number | null;
  readonly throttlePolicy: ThrottlePolicy;
  readonly lowId: number;
  readonly highWaterId: number;
  readonly rowsEstimate: number;
  readonly rowsProcessed: number;
  readonly currentRate: number;
  readonly lastThrottle: ThrottleDecision | null;
  readonly error: string | null;
  readonly traceId: string | null;
  readonly spanId: string | null;
  readonly stallAfterMs: number;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

/** A backfill_partitions row: one chain's durable cursor, counters and throttle state. */
export interface BackfillPartition {
  readonly jobId: string;
  readonly partition: number;
  readonly status: PartitionStatus;
  readonly rangeStart: number;
  readonly rangeEnd: number;
  readonly cursor: number;
  readonly rowsProcessed: number;
  readonly rowsWritten: number;
  readonly batches: number;
  readonly chunks: number;
  readonly currentRate: number;
  readonly rateLimit: number | null;
  readonly throttleState: string;
  readonly lastThrottle: ThrottleDecision | null;
  readonly throttledMs: number;
  readonly traceId: string | null;
  readonly error: string | null;
  readonly updatedAt: Date;
}
