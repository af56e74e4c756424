import { z } from 'zod';

/**
 * What arrives on the backfill-chunk queue. Validated by the chassis before any handler runs.
 *
 *  - `BackfillRequested` (EventBridge, from `adfleet backfill start`): the job and its
 *    partitions are recorded; start each partition's chain.
 *  - `BackfillChunk` (sent by this worker to itself, and by `resume`/the watchdog): process
 *    the next batches of one partition, starting at `cursor`. The cursor is the
 *    compare-and-set guard: a message whose cursor is not the partition's is stale.
 */

const jobId = z.uuid();

export const BackfillRequested = z
  .object({
    jobId,
    name: z.string().min(1).optional(),
  })
  .loose();
export type BackfillRequested = z.output<typeof BackfillRequested>;

export const BackfillChunk = z.object({
  jobId,
  partition: z.number().int().min(0),
  /** Last id the partition had processed when this chunk was sent. */
  cursor: z.number().int(),
  /** Sequence number of this chunk in its partition's chain (logs and spans). */
  chunk: z.number().int().min(1),
  /** Chunks already in the current trace; past the budget the next one starts a new trace. */
  traceChunks: z.number().int().min(0).default(0),
});
export type BackfillChunk = z.output<typeof BackfillChunk>;

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
