/**
 * How fast the fleet may call one profile (or the whole API client): the pure math of the
 * adaptive limiter, kept apart from Redis so it can be tested as arithmetic.
 *
 * Amazon does not publish the limits, and they change; all we see is 429 + Retry-After. So
 * each scope (a profile, or the client) keeps a shared `RateState`, and the allowed rate is
 * a function of it and of the time since the last 429. The shape is CUBIC's (RFC 9438),
 * applied to a request rate instead of a congestion window:
 *
 *   rate
 *    │            ceiling·(1+ε) ........ ╱ probe: doubles every `doublingMs`
 *    │  ceiling ─ ─ ─ ─ ─╭────────────╯
 *    │                 ╱  plateau: creep up ε over `plateauMs`
 *    │  β·ceiling ─ ─╱  recover: concave, back to the ceiling in `recoveryMs`
 *    └──────────────┴──────┴──────────────┴──── time since the last 429
 *
 * It spends most of its time just under the ceiling (high utilisation), probes above it
 * rarely (few 429s), and climbs quickly when a probe finds room (a raised limit is found
 * within seconds). The plateau lasts about `probeEveryRequests` requests' worth of time, so
 * one probe — and at most about one 429 — happens per that many requests whatever the rate,
 * within `minPlateauMs` to `maxPlateauMs` (a minute: at a request a second, each probe's 429
 * and its second of Retry-After cost about one call, and a raised limit of a slow profile
 * is found within a minute; probing every 30 s cost the 1 req/s bench case 0.02 of capacity).
 * A slow scope's probe doubles no faster than every four of its call intervals: its 429
 * answers a call, and a rate that doubled in the meantime would overshoot by then.
 *
 * The ceiling is re-estimated at every 429, which is where this beats plain AIMD. Amazon (and
 * the sandbox) meter with token buckets; a 429 means the bucket is empty. Between two 429s the
 * bucket went from empty to empty, so the requests that succeeded in between, divided by the
 * time between, is the bucket's refill rate (the Retry-After pause included: the bucket
 * refilled then, and the burst it saved was spent right after). What the 429 then means
 * depends on that measure and on where the curve was:
 *
 *  - while probing above the plateau, with a measure at the old ceiling (`PLATEAU_HELD` of
 *    it; a plateau that rode on a bucket's saved burst measures less): the plateau's rate
 *    held for its whole length and is kept, crept up by its slack (a bucket of one or two
 *    requests gives a measure of only what was sent, and taking that would walk the
 *    ceiling down at every probe);
 *  - far below the rate in force (under `NEAR_LIMIT` of it): the limit is lower than we
 *    thought (a cut, or slow start overshooting); the measure is the new ceiling, never
 *    below `floor` of the rate in force (a measure taken while the scope was mostly idle
 *    would be far too low; a cut is then found in two or three 429s, each followed by the
 *    fleet-wide Retry-After pause, never a storm) nor below `minMeasuredRate`. Slow start's
 *    429 keeps the floor too: its measure since the start includes the climb, and taken
 *    as the ceiling it held a 20 req/s profile at 17–18 req/s for its first minute (the
 *    nightly sync bench's first night), where a ceiling too high costs one more 429;
 *  - near it, in the recovery or the plateau: the limit is about the rate in force. The
 *    measure is kept if it says so (a large bucket, many successes between two 429s), but
 *    the ceiling never steps more than `GENTLE_DECREASE` below the rate in force: with a
 *    bucket of one request, calls that leave exactly at the limit meet 429s from their own
 *    jitter on the way (a few milliseconds early at Amazon's side is enough), and the
 *    successes between two of them, the pause included, measure less than the limit.
 *    Nor do such 429s compound at a slow scope (`SLOW_SCOPE_RATE`): with fewer than
 *    `MEASURED_SUCCESSES` since the last one (and more than `CUT_SUCCESSES`, which is a
 *    cut), a 429 says nothing the last one did not, and the ceiling stays within one
 *    gentle step of its `anchor`, the ceiling last set on evidence. The price: a cut of a slow scope small enough to leave several
 *    successes between its 429s is met by a 429 every few calls instead of a lower
 *    ceiling; each 429's pause refills the bucket, so its calls still run at about the
 *    new limit.
 *
 * The first 429 has no predecessor; it takes that measure since the state began (which the
 * bucket's initial burst inflates a little) and the next 429 corrects it. A 429 within the
 * first second counts its successes over a whole second: a bucket of one or two requests
 * answers the second or third call of slow start with a 429, and a guess of 0.9 × the rate
 * in force (as before) cost a 1 request/s profile one more 429 and second of Retry-After.
 * That measure, one jitter margin under it, is the ceiling, without the floor: slow start
 * has not climbed yet, so there is no climb in it to average over, and what a bucket admits
 * in its first second is its burst, at least a second's refill (Amazon's and the sandbox's
 * buckets hold that much). Half the initial rate (the floor) sat such a profile at 2.5
 * requests/s, and the two 429s it took to come down cost a 1 request/s profile two seconds
 * of Retry-After; the measure itself, with no margin, met the next 429 two seconds later.
 *
 * Before the first 429 there is no ceiling to remember: the rate starts from `initialRate`
 * and doubles every `doublingMs` (slow start). Growth above the ceiling is also capped at
 * twice the success rate of the last second or two, so a scope that has been idle for an
 * hour does not wake up with a huge rate (RFC 7661's lesson for idle TCP connections).
 */

export interface RateState {
  /** Requests per second the scope is believed to sustain. */
  readonly ceiling: number;
  /** Epoch ms of the last 429 (or of creation): the curve's time origin. */
  readonly since: number;
  /** False until the first 429: the scope is still in slow start. */
  readonly throttledBefore: boolean;
  /** Non-429 responses since `since`, counted by every worker. */
  readonly successes: number;
  /** Epoch ms before which nobody calls this scope (the last Retry-After). */
  readonly blockedUntil: number;
  /**
   * The ceiling last set on evidence (a first second's measure, a cut, a proven plateau, a
   * measure over many successes): 429s that say nothing new walk the ceiling at most one
   * `GENTLE_DECREASE` under it (see `afterThrottle`). Absent before the first 429.
   */
  readonly anchor?: number;
}

export interface AdaptiveRateOptions {
  /** Rate of a scope never seen before. */
  readonly initialRate: number;
  readonly minRate: number;
  readonly maxRate: number;
  /** β: the rate restarts at this share of the new ceiling after a 429. */
  readonly decrease: number;
  /** Time to climb from β·ceiling back to the ceiling. */
  readonly recoveryMs: number;
  /** ε: how far above the ceiling the plateau creeps before probing starts. */
  readonly plateauSlack: number;
  /** The plateau lasts this many requests at the ceiling rate (bounded below). */
  readonly probeEveryRequests: number;
  readonly minPlateauMs: number;
  readonly maxPlateauMs: number;
  /** Probing (and slow start) doubles the rate this often. */
  readonly doublingMs: number;
  /** A new ceiling is never below this share of the rate in force at the 429. */
  readonly floor: number;
  /**
   * A measure never takes the ceiling below this (a 429 at the ceiling still steps it down
   * past it, by `GENTLE_DECREASE`): at a request or two a second, the few successes between
   * two 429s measure the scope's demand (a job starting, a chain between batches) as much as
   * its limit.
   */
  readonly minMeasuredRate: number;
}

export const ADAPTIVE_RATE_DEFAULTS = {
  initialRate: 5,
  minRate: 0.2,
  maxRate: 10_000,
  decrease: 0.9,
  recoveryMs: 2_000,
  plateauSlack: 0.03,
  probeEveryRequests: 120,
  minPlateauMs: 3_000,
  maxPlateauMs: 60_000,
  doublingMs: 2_000,
  floor: 0.5,
  minMeasuredRate: 1,
} as const satisfies AdaptiveRateOptions;

/** A measure this close to the rate in force says the scope sat at its limit, not above it. */
const NEAR_LIMIT = 0.8;
/**
 * A probe's 429 keeps the plateau's rate when the successes since the last 429 come to this
 * share of the old ceiling: the plateau then held at its rate, not on a bucket's saved burst.
 */
const PLATEAU_HELD = 0.95;
/**
 * The ceiling's step down after a 429 at the limit: at 1 request/s with a bucket of one, a
 * slot every 1.03 s leaves room for the calls' jitter (0.95 gave up 0.02 of capacity more
 * in the bench, with as many 429s).
 */
const GENTLE_DECREASE = 0.97;
/**
 * Successes since the last 429 that make its measure evidence of the limit. Fewer (a slow
 * scope: a request or two a second) measure jitter and demand as much as the limit, and
 * such a 429 steps the ceiling no lower than one gentle step under the anchor; each one
 * stepped 3 % under the rate in force before, and at 1 request/s with a bucket of one,
 * where calls' jitter alone meets a 429 every 10 to 40 calls, 7 of them in 55 s walked
 * the ceiling to 0.81 (a bulk bench run: calls 1.18-1.25 s apart for a minute).
 */
const MEASURED_SUCCESSES = 30;
/**
 * At most this many successes between two 429s is a cut whatever the rate: a limit halved
 * under a bucket of one answers every other call with a 429. The ceiling then steps as the
 * measure says and the anchor follows it down.
 */
const CUT_SUCCESSES = 2;
/**
 * The anchor holds only scopes this slow (requests/s): a fast one meets its next 429s after
 * a cut within a second, a few tens of successes apart, and must come down on each.
 */
const SLOW_SCOPE_RATE = 2;

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

export function initialRateState(now: number, options: AdaptiveRateOptions): RateState {
  return { ceiling: options.initialRate, since: now, throttledBefore: false, successes: 0, blockedUntil: 0 };
}

export function plateauMs(ceiling: number, options: AdaptiveRateOptions): number {
  return clamp((options.probeEveryRequests / ceiling) * 1000, options.minPlateauMs, options.maxPlateauMs);
}

/**
 * How often a probe doubles the rate: `doublingMs`, or four of the ceiling's call intervals
 * if longer. A 429 answers a call, so a slow profile learns of the limit a call or two after
 * crossing it; doubling faster than that overshoots by the time the answer comes.
 */
function probeDoublingMs(ceiling: number, options: AdaptiveRateOptions): number {
  return Math.max(options.doublingMs, (4 * 1000) / ceiling);
}

/**
 * Requests per second allowed at `now`. `recentSuccessRate` is the scope's fleet-wide success
 * rate over the last second or two; without it growth is not capped (tests of the curve).
 */
export function currentRate(
  state: RateState,
  now: number,
  options: AdaptiveRateOptions,
  recentSuccessRate?: number,
): number {
  const elapsed = Math.max(0, now - state.since);
  const { ceiling } = state;
  let rate: number;
  if (!state.throttledBefore) {
    rate = ceiling * 2 ** (elapsed / options.doublingMs);
  } else if (elapsed < options.recoveryMs) {
    const remaining = 1 - elapsed / options.recoveryMs;
    rate = ceiling * (1 - (1 - options.decrease) * remaining ** 3);
  } else {
    const plateau = plateauMs(ceiling, options);
    const intoPlateau = elapsed - options.recoveryMs;
    rate =
      intoPlateau < plateau
        ? ceiling * (1 + (options.plateauSlack * intoPlateau) / plateau)
        : ceiling *
          (1 + options.plateauSlack) *
          2 ** ((intoPlateau - plateau) / probeDoublingMs(ceiling, options));
  }
  if (recentSuccessRate !== undefined) {
    rate = Math.min(rate, Math.max(ceiling * (1 + options.plateauSlack), 2 * recentSuccessRate));
  }
  return clamp(rate, options.minRate, options.maxRate);
}

/** True when the curve is past its plateau and above the ceiling: a 429 now answers a probe. */
function probing(state: RateState, now: number, options: AdaptiveRateOptions, rateInForce: number): boolean {
  if (!state.throttledBefore) return false;
  const intoPlateau = now - state.since - options.recoveryMs;
  return (
    intoPlateau >= plateauMs(state.ceiling, options) &&
    rateInForce > state.ceiling * (1 + options.plateauSlack)
  );
}

/**
 * The state a scope with a learned ceiling resumes from after an idle spell (nothing
 * succeeded fleet-wide in the last few seconds — `recentSuccesses`, over longer than a slow
 * profile's gap between calls — and the curve is past its plateau), or undefined when
 * it is not idle. Tonight's first requests then run at last night's ceiling at once — the
 * plateau, then a probe — instead of at whatever the curve's stale clock says. Left as it
 * was, the next 429 would divide the successes since last night's 429 by the hours in
 * between, a measure of the idle time rather than of the limit, and the ceiling would
 * collapse to `floor` of the rate in force (the nightly sync then re-learnt its rate over
 * ten seconds or so). The curve restarts at the top of its recovery, which is credited with
 * the ceiling's worth of successes so the next 429's measure covers busy time only.
 */
export function resumedAfterIdle(
  state: RateState,
  now: number,
  options: AdaptiveRateOptions,
  recentSuccesses: number,
): RateState | undefined {
  if (!state.throttledBefore || recentSuccesses > 0 || now < state.blockedUntil) return undefined;
  if (now - state.since <= options.recoveryMs + plateauMs(state.ceiling, options)) return undefined;
  return {
    ...state,
    since: now - options.recoveryMs,
    successes: Math.round((state.ceiling * options.recoveryMs) / 1000),
  };
}

/**
 * The state after a 429 at `now`. 429s that arrive while the scope is already blocked were
 * sent before the fleet knew; they belong to the same congestion event and only extend the
 * block, so a burst of in-flight 429s lowers the rate once, not once each.
 */
export function afterThrottle(
  state: RateState,
  now: number,
  retryAfterMs: number,
  options: AdaptiveRateOptions,
  recentSuccessRate?: number,
): RateState {
  const blockedUntil = Math.max(state.blockedUntil, now + retryAfterMs);
  if (now < state.blockedUntil) return { ...state, blockedUntil };
  const rateInForce = currentRate(state, now, options, recentSuccessRate);
  const elapsed = now - state.since;
  // Over at least a second: a 429 within a new scope's first second means its bucket held
  // fewer calls than a second's worth at the rate in force (see the header).
  const measured = state.successes / (Math.max(elapsed, 1_000) / 1000);
  const proven = probing(state, now, options, rateInForce) && measured >= state.ceiling * PLATEAU_HELD;
  let ceiling: number;
  if (proven) {
    // The plateau's rate held through its whole length: it is proven.
    ceiling = Math.max(state.ceiling * (1 + options.plateauSlack), Math.min(measured, rateInForce));
  } else if (measured < rateInForce * NEAR_LIMIT) {
    // A cut, or slow start overshooting (see the header); a new scope's 429 within its
    // first second is measured exactly enough to skip the floor.
    const firstSecond = !state.throttledBefore && elapsed < 1_000;
    ceiling = firstSecond
      ? Math.max(measured, options.minMeasuredRate) * GENTLE_DECREASE
      : Math.max(
          measured,
          rateInForce * options.floor,
          Math.min(rateInForce * GENTLE_DECREASE, options.minMeasuredRate),
        );
  } else {
    // A 429 at about the ceiling: the measure, at most one jitter margin below the rate in force.
    ceiling = Math.max(Math.min(measured, rateInForce), rateInForce * GENTLE_DECREASE);
  }
  // A slow scope's 429 that adds no evidence (see MEASURED_SUCCESSES), jitter or demand
  // rather than a new limit: one gentle step under the anchor at most, never above the rate
  // in force, and the anchor stays. Any other 429 anchors the ceiling it sets (the first
  // one, a first second's measure among them, has no anchor yet).
  const { anchor } = state;
  const noEvidence =
    anchor !== undefined &&
    anchor <= SLOW_SCOPE_RATE &&
    !proven &&
    state.successes > CUT_SUCCESSES &&
    state.successes < MEASURED_SUCCESSES;
  if (noEvidence) ceiling = Math.max(ceiling, Math.min(rateInForce, anchor * GENTLE_DECREASE));
  ceiling = clamp(ceiling, options.minRate, options.maxRate);
  return {
    ceiling,
    since: now,
    throttledBefore: true,
    successes: 0,
    blockedUntil,
    anchor: noEvidence ? anchor : ceiling,
  };
}
