import type pg from 'pg';

/**
 * The range planner: what a new job covers and how it is split into partitions, one chain
 * each. It reads only the target table's bounds and the planner's statistics.
 */

type Queryable = Pick<pg.ClientBase, 'query' | 'escapeIdentifier'>;

export interface PartitionRange {
  readonly partition: number;
  /** Exclusive. */
  readonly start: number;
  /** Inclusive. */
  readonly end: number;
}

export interface JobPlan {
  /** Exclusive: one below the smallest id at start. */
  readonly lowId: number;
  /** Inclusive: the largest id at start; rows inserted later are the application's to fill. */
  readonly highWaterId: number;
  readonly rowsEstimate: number;
  /** No rows: the job is completed at once. */
  readonly empty: boolean;
  readonly ranges: readonly PartitionRange[];
}

/** Bounds the table's id space at its current high-water mark and splits it into `parallel` ranges. */
export async function planJob(client: Queryable, table: string, parallel: number): Promise<JobPlan> {
  const quoted = client.escapeIdentifier(table);
  // min/max on the primary key are two index probes, whatever the table's size.
  const bounds = await client.query<{ low: number | null; high: number | null }>(
    `SELECT (SELECT min(id) FROM ${quoted}) AS low, (SELECT max(id) FROM ${quoted}) AS high`,
  );
  const low = bounds.rows[0]?.low ?? null;
  const high = bounds.rows[0]?.high ?? null;
  const lowId = low === null ? 0 : low - 1;
  const highWaterId = high ?? 0;
  const empty = high === null;
  const rowsEstimate = empty ? 0 : await estimateRows(client, table, quoted);
  const quantiles = parallel > 1 ? await idQuantiles(client, table) : [];
  return {
    lowId,
    highWaterId,
    rowsEstimate,
    empty,
    ranges: splitRange(lowId, highWaterId, parallel, quantiles),
  };
}

/**
 * Splits the id space (low, high] into at most `parallel` contiguous ranges.
 *
 * With `quantiles` — ascending sample ids that cut the table's rows into equal shares, such
 * as Postgres's own `pg_stats.histogram_bounds` — the cuts follow the rows, so chains get
 * equal work however unevenly the ids are spread (two id ranges a world apart, a sequence
 * that jumped). Without them the ranges are of equal width.
 */
export function splitRange(
  low: number,
  high: number,
  parallel: number,
  quantiles: readonly number[] = [],
): PartitionRange[] {
  if (high <= low) return [];
  const inside = quantiles.filter((id) => id > low && id < high);
  const cuts: number[] = [];
  if (inside.length >= parallel) {
    for (let index = 1; index < parallel; index += 1) {
      cuts.push(inside[Math.round((index * (inside.length - 1)) / parallel)] as number);
    }
  } else {
    const width = Math.ceil((high - low) / parallel);
    for (let cut = low + width; cut < high; cut += width) cuts.push(cut);
  }
  const ends = [...new Set(cuts)].filter((cut) => cut > low && cut < high).sort((a, b) => a - b);
  ends.push(high);
  let start = low;
  return ends.map((end, partition) => {
    const range = { partition, start, end };
    start = end;
    return range;
  });
}

/** The planner's histogram of the table's ids: free, and close enough to split work evenly. */
async function idQuantiles(client: Queryable, table: string): Promise<number[]> {
  const { rows } = await client.query<{ bounds: string[] | null }>(
    `SELECT histogram_bounds::text::text[] AS bounds FROM pg_stats
      WHERE schemaname = current_schema() AND tablename = $1 AND attname = 'id'`,
    [table],
  );
  return (rows[0]?.bounds ?? []).map(Number).filter(Number.isFinite);
}

/** The planner's estimate when the table was analyzed, else an exact count (small, fresh tables). */
async function estimateRows(client: Queryable, name: string, quoted: string): Promise<number> {
  const { rows } = await client.query<{ estimate: number }>(
    `SELECT reltuples::bigint AS estimate FROM pg_class WHERE oid = to_regclass($1)`,
    [name],
  );
  const estimate = rows[0]?.estimate ?? -1;
  if (estimate > 100_000) return estimate;
  const counted = await client.query<{ count: number }>(`SELECT count(*)::bigint AS count FROM ${quoted}`);
  return counted.rows[0]?.count ?? 0;
}
