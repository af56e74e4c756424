import type { BackfillJob, BackfillPartition } from './records.ts';
import { JobStatus, PartitionStatus } from './status.ts';
import type { ThrottleDecision } from './throttle.ts';

/** The progress read model: what `status`, `list` and the dashboard show of a job. */

export interface Progress {
  /** Share done, 0…1: rows processed of the estimate at start; 1 only once completed. */
  readonly fraction: number;
  readonly rowsProcessed: number;
  /** Rows still to go, from the estimate at start (never below 0). */
  readonly rowsRemaining: number;
  /** Sum of the running chains' rates, rows/s. */
  readonly rate: number;
  /** Seconds to go at the current rate; undefined when nothing moves. */
  readonly etaSeconds: number | undefined;
  /** The most recent throttle decision of any partition. */
  readonly throttle: ThrottleDecision | null;
  readonly partitions: { readonly running: number; readonly total: number };
}

/** The most a running job shows: it is not done until its chains say so. */
const RUNNING_FRACTION_CAP = 0.999;

/**
 * Progress of a job from its partitions: rows, share done, rate, ETA, throttle state.
 * The share counts rows against the estimate at start (as gh-ost does), not the cursors'
 * share of the id space: ids are rarely dense — a few old rows far below the rest put
 * nearly the whole id space behind the first cursor move. Without an estimate (an empty
 * table at start), the id space is all there is.
 */
export function progressOf(
  job: Pick<BackfillJob, 'status' | 'rowsEstimate'>,
  partitions: readonly Pick<
    BackfillPartition,
    'rangeStart' | 'rangeEnd' | 'cursor' | 'rowsProcessed' | 'status' | 'currentRate' | 'lastThrottle'
  >[],
): Progress {
  let span = 0;
  let behind = 0;
  let rows = 0;
  let rate = 0;
  let throttle: ThrottleDecision | null = null;
  for (const partition of partitions) {
    span += partition.rangeEnd - partition.rangeStart;
    behind += partition.cursor - partition.rangeStart;
    rows += partition.rowsProcessed;
    if (partition.status === PartitionStatus.Running) rate += partition.currentRate;
    if (partition.lastThrottle !== null && (throttle === null || partition.lastThrottle.at > throttle.at)) {
      throttle = partition.lastThrottle;
    }
  }
  const done = job.status === JobStatus.Completed;
  const share = job.rowsEstimate > 0 ? rows / job.rowsEstimate : span === 0 ? 1 : behind / span;
  const fraction = done ? 1 : Math.min(RUNNING_FRACTION_CAP, share);
  const rowsRemaining = done ? 0 : Math.max(0, job.rowsEstimate - rows);
  return {
    fraction,
    rowsProcessed: rows,
    rowsRemaining,
    rate,
    etaSeconds: done ? 0 : rate > 0 ? rowsRemaining / rate : undefined,
    throttle,
    partitions: {
      running: partitions.filter((partition) => partition.status === PartitionStatus.Running).length,
      total: partitions.length,
    },
  };
}
