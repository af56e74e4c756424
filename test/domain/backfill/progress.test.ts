import { describe, expect, it } from 'vitest';
import { progressOf } from '../../../domain/backfill/progress.ts';
import { JobStatus, PartitionStatus } from '../../../domain/backfill/status.ts';

describe('backfill progress', () => {
  const partition = (rangeStart: number, rangeEnd: number, cursor: number, rowsProcessed: number) => ({
    rangeStart,
    rangeEnd,
    cursor,
    rowsProcessed,
    status: PartitionStatus.Running,
    currentRate: 1_000,
    lastThrottle: null,
  });

  it('counts rows against the estimate, not the id space a sparse range puts behind the cursor', () => {
    // 100 old rows at ids 1…100, then 10,000 rows from 1,000,000,001: one cursor move past
    // the old rows leaves 99.99% of the id space behind, with 1% of the rows done.
    const progress = progressOf({ status: JobStatus.Running, rowsEstimate: 10_100 }, [
      partition(0, 1_000_010_000, 1_000_000_001, 101),
    ]);
    expect(progress.fraction).toBeCloseTo(0.01, 3);
    expect(progress.rowsRemaining).toBe(9_999);
    expect(progress.etaSeconds).toBeCloseTo(10, 1);
  });

  it('never shows a running job as done, and a completed one always as done', () => {
    const over = progressOf({ status: JobStatus.Running, rowsEstimate: 1_000 }, [
      partition(0, 2_000, 1_900, 1_200),
    ]);
    expect(over.fraction).toBeLessThan(1);
    expect(over.rowsRemaining).toBe(0);
    const done = progressOf({ status: JobStatus.Completed, rowsEstimate: 2_000 }, [
      partition(0, 2_000, 2_000, 1_500),
    ]);
    expect(done.fraction).toBe(1);
    expect(done.etaSeconds).toBe(0);
  });

  it('falls back to the id space without an estimate', () => {
    const progress = progressOf({ status: JobStatus.Running, rowsEstimate: 0 }, [
      partition(0, 1_000, 250, 0),
      partition(1_000, 2_000, 1_250, 0),
    ]);
    expect(progress.fraction).toBe(0.25);
  });
});
