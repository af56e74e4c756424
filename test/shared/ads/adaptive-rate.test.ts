import { describe, expect, it } from 'vitest';
import {
  ADAPTIVE_RATE_DEFAULTS,
  afterThrottle,
  currentRate,
  initialRateState,
  plateauMs,
  type RateState,
  resumedAfterIdle,
} from '../../../shared/ads/adaptive-rate.ts';
import { parseRetryAfterMs } from '../../../shared/ads/retry-after.ts';

const options = { ...ADAPTIVE_RATE_DEFAULTS, initialRate: 10 };

/**
 * `times` more 429s, `everyMs` apart, each with `successes` since the one before (its
 * since and block set as if the last 429's second of Retry-After had passed): the states.
 */
function throttledAgain(from: RateState, times: number, everyMs: number, successes: number): RateState[] {
  const states: RateState[] = [];
  let state = from;
  for (let i = 1; i <= times; i += 1) {
    const at = i * everyMs;
    state = afterThrottle(
      { ...state, since: at - everyMs / 2, blockedUntil: at - everyMs / 2 + 1_000, successes },
      at,
      1_000,
      options,
    );
    states.push(state);
  }
  return states;
}

function throttledState(overrides: Partial<RateState> = {}): RateState {
  return { ceiling: 20, since: 0, throttledBefore: true, successes: 0, blockedUntil: 1_000, ...overrides };
}

describe('adaptive rate curve', () => {
  it('starts at the initial rate and doubles every doublingMs until the first 429 (slow start)', () => {
    const state = initialRateState(0, options);
    expect(currentRate(state, 0, options)).toBe(10);
    expect(currentRate(state, options.doublingMs, options)).toBeCloseTo(20);
    expect(currentRate(state, 2 * options.doublingMs, options)).toBeCloseTo(40);
  });

  it('restarts at β·ceiling after a 429, is back at the ceiling after recoveryMs, creeps ε over the plateau, then doubles', () => {
    const state = throttledState();
    const plateau = plateauMs(20, options);
    expect(currentRate(state, 0, options)).toBeCloseTo(20 * options.decrease);
    expect(currentRate(state, options.recoveryMs / 2, options)).toBeGreaterThan(20 * options.decrease);
    expect(currentRate(state, options.recoveryMs, options)).toBeCloseTo(20);
    expect(currentRate(state, options.recoveryMs + plateau, options)).toBeCloseTo(
      20 * (1 + options.plateauSlack),
    );
    expect(currentRate(state, options.recoveryMs + plateau + options.doublingMs, options)).toBeCloseTo(
      40 * (1 + options.plateauSlack),
    );
  });

  it('plateaus for about probeEveryRequests requests, within bounds', () => {
    expect(plateauMs(20, options)).toBe((options.probeEveryRequests / 20) * 1000);
    expect(plateauMs(10_000, options)).toBe(options.minPlateauMs);
    expect(plateauMs(1, options)).toBe(options.maxPlateauMs);
  });

  it('caps growth above the ceiling at twice the recent success rate, so an idle scope does not balloon', () => {
    const state = throttledState();
    const late = options.recoveryMs + plateauMs(20, options) + 10 * options.doublingMs;
    expect(currentRate(state, late, options)).toBeGreaterThan(1_000);
    expect(currentRate(state, late, options, 0)).toBeCloseTo(20 * (1 + options.plateauSlack));
    expect(currentRate(state, late, options, 30)).toBeCloseTo(60);
  });

  it('never leaves [minRate, maxRate]', () => {
    expect(currentRate(throttledState({ ceiling: 0.1 }), 0, options)).toBe(options.minRate);
    expect(currentRate(initialRateState(0, options), 3_600_000, options)).toBe(options.maxRate);
  });
});

describe('after a 429', () => {
  it('takes the success rate between two 429s as the new ceiling: the bucket refill rate', () => {
    // 20 s since the last 429, 200 successes: the bucket refills at 10/s, though the fleet
    // was probing at 16/s (twice the 8/s it saw succeed in the last second) when it hit 429.
    const state = throttledState({ ceiling: 9, since: 0, blockedUntil: 1_000, successes: 200 });
    expect(currentRate(state, 20_000, options, 8)).toBeCloseTo(16);
    const next = afterThrottle(state, 20_000, 1_000, options, 8);
    expect(next.ceiling).toBeCloseTo(10);
    expect(next).toMatchObject({ since: 20_000, successes: 0, blockedUntil: 21_000, throttledBefore: true });
    expect(currentRate(next, 20_000, options)).toBeCloseTo(10 * options.decrease);
  });

  it('steps a ceiling met in its plateau one jitter margin down, and no further on jitter alone', () => {
    // At 1 request/s with a bucket of one, a 429 from jitter: the ceiling goes 3 % down.
    const state = throttledState({ ceiling: 1, since: 0, blockedUntil: 1_000, successes: 9, anchor: 1 });
    const now = options.recoveryMs + 8_000;
    const rateInForce = currentRate(state, now, options);
    expect(rateInForce).toBeGreaterThan(1);
    const next = afterThrottle(state, now, 1_000, options);
    expect(next.ceiling).toBeCloseTo(rateInForce * 0.97);
    // Again and again, 9 successes apart (jitter, or a chain between batches): one gentle
    // step under the anchor at most; before, five such 429s walked it to about 0.85.
    for (const walked of throttledAgain(next, 5, 20_000, 9)) {
      expect(walked.ceiling).toBeGreaterThanOrEqual(0.97 - 1e-9);
      expect(walked.anchor).toBe(1);
    }
  });

  it('follows a cut down under 1 request/s: 429s two or fewer successes apart step it each time', () => {
    // A limit halved under a bucket of one answers about every other call with a 429.
    const start = throttledState({ ceiling: 1, since: 0, blockedUntil: 1_000, successes: 2, anchor: 1 });
    const walk = throttledAgain(start, 6, 5_000, 2);
    for (const walked of walk) expect(walked.anchor).toBe(walked.ceiling);
    expect(walk.at(-1)?.ceiling).toBeLessThan(0.9);
  });

  it('takes a measure over many successes as the new anchor, and sets one at the first 429', () => {
    // 40 successes in 5 s at about 20 requests/s in force: a cut, taken down to the floor
    // (half the rate in force), and anchored there, far under the old anchor.
    const state = throttledState({ ceiling: 20, since: 0, blockedUntil: 1_000, successes: 40, anchor: 20 });
    const cut = afterThrottle(state, 5_000, 1_000, options);
    expect(cut.ceiling).toBeCloseTo(currentRate(state, 5_000, options) * options.floor);
    expect(cut.anchor).toBe(cut.ceiling);
    // A fast scope's 429s after a cut come a few tens of successes apart: each steps it
    // down as before (a 36 → 12 requests/s cut is followed by 429s 12–24 successes apart).
    const fast = throttledState({ ceiling: 36, since: 0, blockedUntil: 1_000, successes: 18, anchor: 36 });
    const down = afterThrottle(fast, 1_500, 1_000, options);
    expect(down.ceiling).toBeLessThan(36 * 0.9);
    expect(down.anchor).toBe(down.ceiling);
    // A scope's first 429 (slow start, no anchor yet): whatever the ceiling, it anchors.
    const first = afterThrottle({ ...initialRateState(0, options), successes: 88 }, 10_000, 1_000, options);
    expect(first.anchor).toBe(first.ceiling);
  });

  it("keeps the plateau's proven rate when a probe above it meets the limit", () => {
    // A 1 request/s bucket of one: the plateau held 0.95 → 0.98 for its whole length, the
    // probe found the limit; the successes measure only what was sent, less the pause.
    const ceiling = 0.95;
    const plateau = plateauMs(ceiling, options);
    const now = options.recoveryMs + plateau + 3_000;
    const state = throttledState({ ceiling, since: 0, blockedUntil: 1_000, successes: (0.93 * now) / 1000 });
    expect(currentRate(state, now, options)).toBeGreaterThan(ceiling * (1 + options.plateauSlack));
    const next = afterThrottle(state, now, 1_000, options);
    expect(next.ceiling).toBeCloseTo(ceiling * (1 + options.plateauSlack));
  });

  it('never takes a measured ceiling under minMeasuredRate: a few successes say more about demand', () => {
    // A profile that had few calls to make, at 1.5/s: 1 success in 2 busy seconds.
    const state = throttledState({ ceiling: 1.5, since: 0, blockedUntil: 1_000, successes: 1 });
    const next = afterThrottle(state, 3_000, 1_000, options);
    expect(next.ceiling).toBe(options.minMeasuredRate);
  });

  it('does not let a mostly idle period drag the ceiling below floor × the rate in force', () => {
    const state = throttledState({ since: 0, successes: 10 });
    const now = options.recoveryMs + 1_000;
    const next = afterThrottle(state, now, 1_000, options);
    expect(next.ceiling).toBeCloseTo(currentRate(state, now, options) * options.floor);
  });

  it('counts 429s that arrive while the scope is blocked as the same event: they only extend the block', () => {
    const first = afterThrottle(throttledState({ successes: 100 }), 10_000, 1_000, options);
    const second = afterThrottle({ ...first, successes: 3 }, 10_050, 2_000, options);
    expect(second.ceiling).toBe(first.ceiling);
    expect(second.since).toBe(first.since);
    expect(second.blockedUntil).toBe(12_050);
  });

  it("keeps the floor on slow start's 429: the climb's measure would hold the ceiling under the limit", () => {
    // Doubling from 5/s, 88 successes in 4.4 s: the measure (20/s) includes the climb.
    const state: RateState = { ...initialRateState(0, options), successes: 88 };
    const rateInForce = currentRate(state, 4_400, options);
    expect(rateInForce * options.floor).toBeGreaterThan(20);
    expect(afterThrottle(state, 4_400, 1_000, options).ceiling).toBeCloseTo(rateInForce * options.floor);
  });

  it('takes the measure of a 429 near the rate in force, but never more than a jitter margin under it', () => {
    // A large bucket met in its plateau: the successes since the last 429 measure 98 % of the rate.
    const now = options.recoveryMs + plateauMs(19, options) / 2;
    const probe = throttledState({ ceiling: 19, since: 0, blockedUntil: 1_000 });
    const rateInForce = currentRate(probe, now, options);
    const state = { ...probe, successes: (0.98 * rateInForce * now) / 1000 };
    expect(afterThrottle(state, now, 1_000, options).ceiling).toBeCloseTo(0.98 * rateInForce);
    // A bucket of one: 8.5 successes in 10 s at about 1 req/s; the ceiling stays at 0.97 of it.
    const small = throttledState({ ceiling: 1, since: 0, blockedUntil: 1_000, successes: 8.5 });
    const smallRate = currentRate(small, 10_000, options);
    expect(afterThrottle(small, 10_000, 1_000, options).ceiling).toBeCloseTo(smallRate * 0.97);
  });

  it("takes a 429 in a new scope's first second, measured over a whole second, as the ceiling (less a jitter margin)", () => {
    // A bucket of 2 at 2 req/s, slow start at 5 req/s: 2 successes, the third call refused.
    const state: RateState = { ...initialRateState(0, options), successes: 2 };
    expect(currentRate(state, 400, options) * options.floor).toBeGreaterThan(2.5);
    expect(afterThrottle(state, 400, 1_000, options).ceiling).toBeCloseTo(2 * 0.97);
    // A bucket of one: the second call refused; the ceiling is about 1 req/s, not half of 5.
    const one: RateState = { ...initialRateState(0, options), successes: 1 };
    expect(afterThrottle(one, 200, 1_000, options).ceiling).toBeCloseTo(0.97);
    // After the first second, slow start's floor holds again (the climb is in the measure).
    const later: RateState = { ...initialRateState(0, options), successes: 3 };
    const rateLater = currentRate(later, 1_500, options);
    expect(afterThrottle(later, 1_500, 1_000, options).ceiling).toBeCloseTo(rateLater * options.floor);
  });

  it('on the first 429 of a new scope, uses the success rate since the scope began', () => {
    const state: RateState = { ...initialRateState(0, options), successes: 120 };
    const next = afterThrottle(state, 4_000, 1_000, options);
    expect(next.ceiling).toBeCloseTo(30);
    expect(next.throttledBefore).toBe(true);
  });
});

describe('Retry-After parsing', () => {
  it('reads delta-seconds, HTTP dates, and falls back to one second', () => {
    expect(parseRetryAfterMs('2')).toBe(2_000);
    expect(parseRetryAfterMs('0.5')).toBe(500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:03 GMT', now)).toBe(3_000);
    expect(parseRetryAfterMs(null)).toBe(1_000);
    expect(parseRetryAfterMs('soon')).toBe(1_000);
  });
});

describe('after an idle spell', () => {
  const hourLater = 3_600_000;

  it("resumes a learned ceiling at the top of its recovery, credited with the ceiling's successes", () => {
    const state = throttledState({ ceiling: 20, since: 0, successes: 5_000 });
    const resumed = resumedAfterIdle(state, hourLater, options, 0);
    expect(resumed).toEqual({
      ...state,
      since: hourLater - options.recoveryMs,
      successes: (20 * options.recoveryMs) / 1000,
    });
    // At the learned ceiling at once, not β below it, and it plateaus before it probes.
    expect(currentRate(resumed as RateState, hourLater, options, 0)).toBeCloseTo(20);
    expect(
      currentRate(resumed as RateState, hourLater + plateauMs(20, options) / 2, options, 20),
    ).toBeLessThan(20 * (1 + options.plateauSlack));
  });

  it("keeps the next 429's measure to the busy time: the ceiling is not collapsed by the idle hours", () => {
    const state = throttledState({ ceiling: 20, since: 0, successes: 5_000 });
    // Not resumed, a 429 early in the night divides 5,000 successes by an hour: the new
    // ceiling is floor × whatever rate was in force, here about half the limit.
    const stale = afterThrottle(state, hourLater + 8_000, 1_000, options, 8);
    expect(stale.ceiling).toBeLessThan(20 * 0.75);
    // 8 s at about 20/s after the resume.
    const resumed = resumedAfterIdle(state, hourLater, options, 0) as RateState;
    const busy = { ...resumed, successes: resumed.successes + 8 * 20 };
    // Its plateau held at 20/s, crept up by the slack, and the 429 met the probe above it.
    const next = afterThrottle(busy, hourLater + 8_000, 1_000, options, 20);
    expect(next.ceiling).toBeCloseTo(20 * (1 + options.plateauSlack));
  });

  it('leaves alone a scope that is busy, blocked, within its plateau, or still in slow start', () => {
    const state = throttledState({ ceiling: 20, since: 0, blockedUntil: 1_000 });
    expect(resumedAfterIdle(state, hourLater, options, 3)).toBeUndefined();
    expect(
      resumedAfterIdle({ ...state, blockedUntil: hourLater + 1 }, hourLater, options, 0),
    ).toBeUndefined();
    const withinPlateau = options.recoveryMs + plateauMs(20, options);
    expect(resumedAfterIdle(state, withinPlateau, options, 0)).toBeUndefined();
    expect(resumedAfterIdle(initialRateState(0, options), hourLater, options, 0)).toBeUndefined();
  });
});
