import { describe, expect, it } from 'vitest';
import { splitRange } from '../../../domain/backfill/planner.ts';

describe('partitioning the id space', () => {
  it('covers (low, high] with contiguous, non-overlapping ranges', () => {
    const ranges = splitRange(100, 1_100, 3);
    expect(ranges).toEqual([
      { partition: 0, start: 100, end: 434 },
      { partition: 1, start: 434, end: 768 },
      { partition: 2, start: 768, end: 1_100 },
    ]);
  });

  it('makes fewer partitions than asked when there are fewer ids, and none for an empty table', () => {
    expect(splitRange(0, 2, 5)).toEqual([
      { partition: 0, start: 0, end: 1 },
      { partition: 1, start: 1, end: 2 },
    ]);
    expect(splitRange(0, 0, 4)).toEqual([]);
  });

  it('follows the rows, not the id width, when quantiles are known', () => {
    // 100 ids near 1,000 and 100 ids near 1,000,000: equal widths would give one chain everything.
    const ids = [
      ...Array.from({ length: 100 }, (_, index) => 1_000 + index),
      ...Array.from({ length: 100 }, (_, index) => 1_000_000 + index),
    ];
    const quantiles = ids.filter((_, index) => index % 10 === 0);
    const ranges = splitRange(999, 1_000_099, 2, quantiles);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]?.start).toBe(999);
    expect(ranges.at(-1)?.end).toBe(1_000_099);
    const share = (range: { start: number; end: number }) =>
      ids.filter((id) => id > range.start && id <= range.end).length;
    for (const range of ranges) expect(share(range)).toBeGreaterThanOrEqual(80);
    expect(ranges[0]?.end).toBe(ranges[1]?.start);
  });
});
