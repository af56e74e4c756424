import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../sandbox/ads-api/capacity.ts';

describe('TokenBucket', () => {
  it('meters requests by their arrival, and one stamped earlier but metered later counts no refill twice', () => {
    const bucket = new TokenBucket({ ratePerSecond: 1, burst: 1 }, 0);
    expect(bucket.waitMs(1_000)).toBe(0);
    bucket.take(1_000);
    // Arrived at 900, handled after the one of 1,000: refused, and time does not run back.
    expect(bucket.waitMs(900)).toBeGreaterThan(0);
    // 950 ms after the admitted call: still short of a token (a clock run back to 900 would say 1,050).
    expect(bucket.waitMs(1_950)).toBeCloseTo(50);
    expect(bucket.waitMs(2_000)).toBe(0);
  });
});
