import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../shared/backoff.ts';

describe('backoff', () => {
  it('grows, stays within [ceiling/2, ceiling], and is capped', () => {
    const policy = { baseMs: 1_000, capMs: 8_000 };
    expect(backoffDelayMs(1, policy, () => 0)).toBe(500);
    expect(backoffDelayMs(1, policy, () => 0.999)).toBe(999);
    expect(backoffDelayMs(3, policy, () => 0)).toBe(2_000);
    expect(backoffDelayMs(10, policy, () => 0.999)).toBeLessThanOrEqual(8_000);
    // Below the cap, the next delay never undercuts the previous one.
    for (let attempt = 1; attempt < 4; attempt += 1) {
      expect(backoffDelayMs(attempt + 1, policy, () => 0)).toBeGreaterThanOrEqual(
        backoffDelayMs(attempt, policy, () => 1),
      );
    }
    expect(backoffDelayMs(1, { ...policy, minMs: 900 }, () => 0)).toBe(900);
  });
});
