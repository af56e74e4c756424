import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../shared/backoff.ts';
import { OUTAGE_RELEASE_BACKOFF, outageReleaseCeilingMs } from '../../shared/messaging/queue-worker.ts';

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

describe('outage release ceiling', () => {
  it("is never before the released message's return: items handed back are due no sooner", () => {
    for (let releases = 0; releases < 8; releases += 1) {
      const ceiling = outageReleaseCeilingMs(releases);
      for (const draw of [0, 0.5, 0.999]) {
        const delaySeconds = Math.ceil(
          backoffDelayMs(releases + 1, OUTAGE_RELEASE_BACKOFF, () => draw) / 1000,
        );
        expect(ceiling).toBeGreaterThanOrEqual(delaySeconds * 1000);
      }
    }
    expect(outageReleaseCeilingMs(0)).toBe(5_000);
    expect(outageReleaseCeilingMs(20)).toBe(120_000);
  });
});
