import { describe, expect, it } from 'vitest';
import { JobStatus, PartitionStatus, progressOf, splitRange } from '../../../domain/backfill/jobs.ts';
import {
  DEFAULT_THROTTLE_POLICY,
  decideThrottle,
  paceMs,
  resolvePolicy,
  smoothRate,
} from '../../../domain/backfill/throttle.ts';

const healthy = { probeMs: 2, activeConnections: 3, replicationLagMs: null };
const policy = resolvePolicy({ minRowsPerSecond: 100 });

describe('throttle policy', () => {
  it('stays unlimited while healthy, and names the operator ceiling when that is what binds', () => {
    const free = decideThrottle(policy, {
      limit: null,
      observedRate: 9_000,
      ceiling: null,
      reading: healthy,
    });
    expect(free).toMatchObject({ state: 'healthy', limit: null, effectiveLimit: null });
    const capped = decideThrottle(policy, {
      limit: null,
      observedRate: 9_000,
      ceiling: 500,
      reading: healthy,
    });
    expect(capped).toMatchObject({ state: 'ceiling', limit: null, effectiveLimit: 500 });
  });

  it('halves from the observed rate on a slow reading, down to the floor, and says which signal', () => {
    const slow = { ...healthy, probeMs: DEFAULT_THROTTLE_POLICY.probeLatencyMs.slow + 10 };
    const first = decideThrottle(policy, { limit: null, observedRate: 8_000, ceiling: null, reading: slow });
    expect(first).toMatchObject({ state: 'slowed', limit: 4_000 });
    expect(first.reason).toMatch(/^probe latency 50ms > 40ms$/);
    let limit: number | null = first.limit;
    for (let step = 0; step < 20; step += 1) {
      limit = decideThrottle(policy, { limit, observedRate: limit ?? 0, ceiling: null, reading: slow }).limit;
    }
    expect(limit).toBe(100);
  });

  it('pauses on any reading past its pause threshold: connections, latency or replica lag', () => {
    for (const reading of [
      { ...healthy, activeConnections: 65 },
      { ...healthy, probeMs: 401 },
      { ...healthy, replicationLagMs: 31_000 },
    ]) {
      expect(
        decideThrottle(policy, { limit: 1_000, observedRate: 1_000, ceiling: null, reading }).state,
      ).toBe('paused');
    }
  });

  it('recovers multiplicatively and lifts the limit once it is high enough', () => {
    let limit: number | null = 100;
    const seen: Array<number | null> = [];
    while (limit !== null && seen.length < 30) {
      limit = decideThrottle(policy, { limit, observedRate: 0, ceiling: null, reading: healthy }).limit;
      seen.push(limit);
    }
    expect(seen.slice(0, 3)).toEqual([200, 400, 800]);
    expect(seen.at(-1)).toBeNull();
    expect(seen.length).toBeLessThan(15);
  });

  it('paces batches to the limit and smooths the rate', () => {
    expect(paceMs(1_000, 100, 2_000)).toBe(400);
    expect(paceMs(1_000, 800, 2_000)).toBe(0);
    expect(paceMs(1_000, 10, null)).toBe(0);
    expect(smoothRate(0, 1_000, 500)).toBe(2_000);
    expect(smoothRate(2_000, 1_000, 1_000)).toBeCloseTo(1_700);
  });

  it('keeps operator overrides of one threshold without losing the others', () => {
    const merged = resolvePolicy({ probeLatencyMs: { slow: 5 } }, { pauseMs: 1_000 });
    expect(merged.probeLatencyMs).toEqual({ slow: 5, pause: DEFAULT_THROTTLE_POLICY.probeLatencyMs.pause });
    expect(merged.pauseMs).toBe(1_000);
  });
});

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
