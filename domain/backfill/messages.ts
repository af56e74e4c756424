import type { Payload } from '../../contract/events.ts';

/**
 * What arrives on the backfill-chunk queue (schemas in contract/events.ts):
 *
 *  - `BackfillRequested` (EventBridge, from `adfleet backfill start`): the job and its
 *    partitions are recorded; start each partition's chain.
 *  - `BackfillChunk` (sent by this worker to itself, and by `resume`/the watchdog): process
 *    the next batches of one partition, starting at `cursor`. The cursor is the
 *    compare-and-set guard: a message whose cursor is not the partition's is stale.
 */
export type BackfillRequested = Payload<'BackfillRequested'>;
export type BackfillChunk = Payload<'BackfillChunk'>;

/**
 * The chunk that (re)starts a partition's chain from its durable cursor: on start, on
 * resume and from the watchdog. A fresh partition has no chunks yet, so it starts at 1.
 */
export function restartChunk(
  jobId: string,
  partition: { readonly partition: number; readonly cursor: number; readonly chunks: number },
): BackfillChunk {
  return {
    jobId,
    partition: partition.partition,
    cursor: partition.cursor,
    chunk: partition.chunks + 1,
    traceChunks: 0,
  };
}
