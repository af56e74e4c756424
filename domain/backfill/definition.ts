import type pg from 'pg';
import type { ThrottlePolicyOverrides } from './throttle.ts';

/**
 * What a backfill is. The engine (chunks, checkpoint, throttle, control) is shared; a
 * backfill only says how to read its next batch by keyset and how to transform and write
 * it. Adding one is one file in `backfills/` plus a line in `registry.ts`.
 */

export interface KeysetBatch {
  /** Exclusive lower bound: the partition's cursor. */
  readonly after: number;
  /** Inclusive upper bound: the end of the partition (never above the high-water id). */
  readonly until: number;
  readonly limit: number;
}

export interface BackfillRow {
  readonly id: number;
}

export interface BackfillDefinition<Row extends BackfillRow> {
  readonly name: string;
  readonly description: string;
  /** The table whose id space is walked; its min/max id at start bound the job. */
  readonly table: string;
  /**
   * The next batch: rows with `after < id <= until`, `ORDER BY id LIMIT limit`. Fewer
   * than `limit` rows means the range is exhausted. Runs inside the batch's transaction.
   */
  readBatch(client: pg.ClientBase, batch: KeysetBatch): Promise<readonly Row[]>;
  /** Transforms and writes the batch in the same transaction; returns rows changed. */
  writeBatch(client: pg.ClientBase, rows: readonly Row[]): Promise<number>;
  readonly defaults: {
    readonly batchSize: number;
    readonly batchesPerChunk: number;
  };
  /** This backfill's throttle policy, over the engine's defaults. */
  readonly throttle?: ThrottlePolicyOverrides;
  /**
   * The latency target's probe: SQL mirroring a production read of this table, timed on
   * its own connection while the backfill runs; `$1`, where it appears, is a random id of
   * the job's range. Default: a primary-key read of `table`.
   */
  readonly latencyProbe?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: each backfill has its own row type
export type AnyBackfill = BackfillDefinition<any>;

export function defineBackfill<Row extends BackfillRow>(
  definition: BackfillDefinition<Row>,
): BackfillDefinition<Row> {
  return definition;
}
