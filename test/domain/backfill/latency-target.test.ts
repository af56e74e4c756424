import { describe, expect, it } from 'vitest';
import {
  baselineP99,
  DEFAULT_LATENCY_TARGET,
  exceedancesForOver,
  LatencyController,
  type LatencyTargetPolicy,
  p99,
} from '../../../domain/backfill/latency-target.ts';

/**
 * Blocks of 10: the first learning's two whole blocks are its 20 samples. No budget (its
 * own test sets one): the other tests judge one window at a time.
 */
const policy = {
  ...DEFAULT_LATENCY_TARGET,
  probeSql: 'SELECT 1',
  learnSamples: 20,
  minSamples: 10,
  baselineBlockSamples: 10,
  budgetWindowMs: 0,
};

/** Feeds samples of the given durations, one every sampleEveryMs from `from`; returns the time after. */
function feedEach(controller: LatencyController, from: number, durations: readonly number[]): number {
  let at = from;
  for (const ms of durations) {
    controller.addSample(at, ms);
    at += policy.sampleEveryMs;
  }
  return at;
}

/** Feeds `count` samples of `ms`, one every sampleEveryMs from `from`; returns the time after. */
function feed(controller: LatencyController, from: number, count: number, ms: number): number {
  let at = from;
  for (let index = 0; index < count; index += 1) {
    controller.addSample(at, ms);
    at += policy.sampleEveryMs;
  }
  return at;
}

/** A controller past learning (on `settings`, the tests' policy by default), its baseline p99 1 ms, at `now`. */
function learned(settings: LatencyTargetPolicy = policy): { controller: LatencyController; now: number } {
  const controller = new LatencyController(settings, 1_000, 0);
  const now = feed(controller, 0, settings.learnSamples, 1);
  expect(controller.advance(now).phase).toBe('pacing');
  controller.chainsActive(1, now);
  return { controller, now };
}

/**
 * A controller past learning (1 ms), then 100 probes at rest, `restSlow` of them 2 ms (over
 * the 1.5 ms target) and the rest 1 ms, then a window later (the verdicts judge paced probes
 * only) its chains running. Its baseline is still 1 ms: the learned blocks are clean.
 */
function pacingAfterRest(
  settings: LatencyTargetPolicy,
  restSlow: number,
): { controller: LatencyController; now: number } {
  let { controller, now } = learned(settings);
  controller.chainsActive(0, now);
  now = feedEach(
    controller,
    now,
    Array.from({ length: 100 }, (_, index) => (index % 10 === 0 && index / 10 < restSlow ? 2 : 1)),
  );
  now += settings.windowMs;
  controller.chainsActive(1, now);
  return { controller, now };
}

describe('latency target controller', () => {
  it('learns its first baseline over two whole blocks, so a stall in one does not become the target', () => {
    const controller = new LatencyController({ ...policy, baselineBlockSamples: 100 }, 1_000, 0);
    // 100 quiet probes of 1 ms, three of them caught in a second-long stall.
    const durations = Array.from({ length: 100 }, (_, index) => ([40, 41, 42].includes(index) ? 900 : 1));
    let now = feedEach(controller, 0, durations);
    // Enough samples for learnSamples, but one block: its p99 would be 900 ms. Still learning.
    expect(controller.advance(now)).toMatchObject({ phase: 'learning', baselineP99Ms: 900 });
    now = feed(controller, now, 100, 1);
    expect(controller.advance(now)).toMatchObject({ phase: 'pacing', baselineP99Ms: 1 });
  });

  it('learns its baseline from quiet samples before the first batch', () => {
    const controller = new LatencyController(policy, 1_000, 0);
    let now = feed(controller, 0, policy.learnSamples - 1, 2);
    expect(controller.advance(now)).toMatchObject({ phase: 'learning', baselineP99Ms: 2 });
    now = feed(controller, now, 1, 2);
    expect(controller.advance(now)).toMatchObject({ phase: 'pacing', limit: policy.startRowsPerSecond });
  });

  it('halves the pace when the probe p99 is over the target, and adds while under it', () => {
    let { controller, now } = learned();
    const start = controller.verdict().limit;
    now = feed(controller, now, policy.minSamples, 1.6);
    const over = controller.advance(now + policy.adjustEveryMs);
    expect(over).toMatchObject({
      over: true,
      limit: start / 2,
      probeP99Ms: 1.6,
      baselineP99Ms: 1,
      exceeding: policy.minSamples,
    });
    // Samples from before the decrease no longer count: nothing to judge yet.
    now += policy.adjustEveryMs;
    expect(controller.advance(now + policy.adjustEveryMs).limit).toBe(start / 2);
    // The chains achieve their pace; under target, the pace grows by the additive step.
    controller.batchStarted();
    controller.batchEnded(now, start);
    now = feed(controller, now + 1, policy.minSamples, 1.2);
    const under = controller.advance(now + policy.adjustEveryMs);
    expect(under).toMatchObject({ over: false, limit: start / 2 + policy.increaseRowsPerSecond });
  });

  it('judges the pace in force: after a change, it waits for a window of probes at the new pace', () => {
    let { controller, now } = learned();
    const start = controller.verdict().limit;
    controller.batchStarted();
    controller.batchEnded(now, 10 * start);
    now = feed(controller, now, policy.minSamples, 1);
    now += policy.adjustEveryMs;
    const raised = controller.advance(now);
    expect(raised.limit).toBe(start + policy.increaseRowsPerSecond);
    // Judged again on the same probes (all under target), it would climb again: it holds
    // until minSamples probes at the new pace are in.
    now += policy.adjustEveryMs;
    expect(controller.advance(now).limit).toBe(raised.limit);
    now = feed(controller, now, policy.minSamples - 1, 1);
    expect(controller.advance(now).limit).toBe(raised.limit);
    now = feed(controller, now, 1, 1);
    expect(controller.advance(now).limit).toBe(raised.limit + policy.increaseRowsPerSecond);
  });

  it('holds its pace under target while more than 1 % of the last 30 s of probes were over it', () => {
    const budgeted = { ...policy, budgetWindowMs: 30_000 };
    let { controller, now } = learned(budgeted);
    const start = controller.verdict().limit;
    now = feed(controller, now, budgeted.minSamples, 10);
    now += budgeted.adjustEveryMs;
    expect(controller.advance(now)).toMatchObject({ over: true, limit: start / 2 });
    // Back under target, but 10 of the last 20 probes were over it: the pace holds, and says why.
    now = feed(controller, now + 1, budgeted.minSamples, 1);
    now += budgeted.adjustEveryMs;
    expect(controller.advance(now)).toMatchObject({
      over: false,
      limit: start / 2,
      heldBy: { over: 10, of: 20, allowed: 0.01 },
    });
    // Probes taken at rest are not the backfill's: they do not dilute the budget.
    controller.chainsActive(0, now);
    now = feed(controller, now, 500, 1);
    controller.chainsActive(1, now);
    now = feed(controller, now, budgeted.minSamples, 1);
    expect(controller.advance(now)).toMatchObject({ limit: start / 2, heldBy: { over: 10, of: 30 } });
    // Once the slow probes are more than 30 s old, the pace climbs again.
    now = feed(controller, now + 30_000, budgeted.minSamples, 1);
    expect(controller.advance(now)).toMatchObject({
      over: false,
      heldBy: null,
      limit: start / 2 + budgeted.increaseRowsPerSecond,
    });
  });

  it("judges a window against rest's own share of slow probes when that is over 1 %", () => {
    /** One paced window of 20 probes, one over the target, after a rest slow `restSlow` times in 100. */
    function verdictAfterRest(restSlow: number) {
      let { controller, now } = pacingAfterRest(policy, restSlow);
      now = feedEach(controller, now, [...Array.from({ length: 19 }, () => 1), 2]);
      return controller.advance(now + policy.adjustEveryMs);
    }
    // Rest clean: 1 slow probe of 20 is the window's p99 over the target.
    expect(verdictAfterRest(0)).toMatchObject({ over: true, allowed: 0.01, baselineP99Ms: 1 });
    // Rest slow 10 times in 120 quiet probes: 1 in 20 is no worse than rest.
    const noisy = verdictAfterRest(10);
    expect(noisy).toMatchObject({ over: false, baselineP99Ms: 1 });
    expect(noisy.allowed).toBeCloseTo(10 / 120);
    expect(noisy.overAt).toBeGreaterThan(exceedancesForOver(20, policy.falseOverRate));
  });

  it("allows its budget rest's own share of slow probes, so a noisy host does not pin the pace", () => {
    const budgeted = { ...policy, budgetWindowMs: 30_000 };
    /** A controller whose quiet probes were over the target `restSlow` times in 100 (after learning at 1 ms). */
    function afterRest(restSlow: number) {
      let { controller, now } = pacingAfterRest(budgeted, restSlow);
      // One paced probe of ten over the target: the window's p99 is over it, the pace eases.
      now = feedEach(controller, now, [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]);
      now += budgeted.adjustEveryMs;
      const eased = controller.advance(now);
      expect(eased).toMatchObject({ over: true, baselineP99Ms: 1 });
      now = feed(controller, now + 1, budgeted.minSamples, 1);
      now += budgeted.adjustEveryMs;
      return { eased, under: controller.advance(now) };
    }
    // Rest clean: 1 of the 20 paced probes (5 %) is over the 1 % budget, the pace holds.
    const clean = afterRest(0);
    expect(clean.under).toMatchObject({
      over: false,
      limit: clean.eased.limit,
      heldBy: { over: 1, of: 20, allowed: 0.01 },
    });
    // Rest itself slow 10 times in 120 quiet probes (8.3 %): 5 % is no worse, the pace climbs.
    const noisy = afterRest(10);
    expect(noisy.under).toMatchObject({ over: false, heldBy: null });
    expect(noisy.under.limit).toBeGreaterThan(noisy.eased.limit);
    // Rest slow 4 times in 120 (3.3 %): the allowed share is rest's, and 5 % is over it.
    const someNoise = afterRest(4);
    expect(someNoise.under.heldBy?.allowed).toBeCloseTo(4 / 120);
    expect(someNoise.under.limit).toBe(someNoise.eased.limit);
  });

  it('never falls below its floor, nor climbs past twice what the chains achieved', () => {
    let { controller, now } = learned();
    for (let step = 0; step < 20; step += 1) {
      now = feed(controller, now, policy.minSamples, 10);
      now += policy.adjustEveryMs;
      controller.advance(now);
    }
    expect(controller.verdict().limit).toBe(policy.minRowsPerSecond);
    for (let step = 0; step < 50; step += 1) {
      now = feed(controller, now, policy.minSamples, 1);
      now += policy.adjustEveryMs;
      controller.advance(now);
    }
    // Nothing achieved: the pace stops at the start rate, not far beyond what runs.
    expect(controller.verdict().limit).toBe(policy.startRowsPerSecond);
  });

  it('judges the pace the chains achieved by the time they ran, not by a pause in between', () => {
    let { controller, now } = learned();
    const start = controller.verdict().limit;
    // One second of batches at the start pace…
    for (let batch = 0; batch < 10; batch += 1) {
      controller.batchStarted();
      now = feed(controller, now, 5, 1);
      controller.batchEnded(now, start / 10);
    }
    // …then a 3 s pause (an operator's, or the chain between chunks), then running again.
    controller.chainsActive(0, now);
    now = feed(controller, now, 150, 1);
    controller.chainsActive(1, now);
    now = feed(controller, now, 20, 1);
    // 2,000 rows over 1.65 s of running (1 s, then 0.4 s and the verdict's 0.25 s): room
    // for twice that, 2,424 rows/s, so the pace grows. Counted over the whole 5 s window
    // they would be 400 rows/s, and the pace would stay at the start pace.
    const verdict = controller.advance(now + policy.adjustEveryMs);
    expect(verdict.over).toBe(false);
    expect(verdict.limit).toBe(Math.round((2 * start) / 1.65));
    expect(verdict.limit).toBeGreaterThan(start);
  });

  it('asks for smaller batches at a slow pace, within its bounds', () => {
    const { controller } = learned();
    expect(controller.verdict().batchSize).toBe(
      Math.round((policy.startRowsPerSecond * policy.batchIntervalMs) / 1000),
    );
    expect(new LatencyController({ ...policy, startRowsPerSecond: 50 }, 1_000, 0).verdict().batchSize).toBe(
      policy.minBatchSize,
    );
    expect(new LatencyController({ ...policy, startRowsPerSecond: 1e6 }, 1_000, 0).verdict().batchSize).toBe(
      1_000,
    );
  });

  it('keeps its baseline through a stall among the quiet samples: the second-lowest of block p99s', () => {
    const controller = new LatencyController(policy, 1_000, 0);
    // 500 quiet samples of about 2 ms, and a second-long stall that put six of them near 800 ms.
    const durations = Array.from({ length: 500 }, (_, index) => 1.5 + (index % 10) / 10);
    for (const index of [230, 231, 233, 236, 240, 244]) durations[index] = 700 + index;
    const now = feedEach(controller, 0, durations);
    // One p99 over them all would be the fifth slowest: a stall sample, and a 1.1 s target.
    expect(p99(durations)).toBeGreaterThan(700);
    expect(controller.advance(now).baselineP99Ms).toBe(2.4);
    // Stalls in most blocks are the baseline: production is that slow when the chains rest.
    const everywhere = durations.map((ms, index) => (index % 100 === 7 || index % 100 === 8 ? 50 : ms));
    expect(baselineP99(everywhere, 100)).toBe(50);
    // The backfill's aftermath (its writes flushed, its dead rows vacuumed) in three blocks
    // of five, whose p99s are 4, 1, 4, 2 and 4 ms: the second-lowest, 2 ms, not the median 4.
    const blockOf = (slow: number) =>
      Array.from({ length: 100 }, (_, index) => (index === 50 || index === 51 ? slow : 1));
    expect(baselineP99([4, 1, 4, 2, 4].flatMap(blockOf), 100)).toBe(2);
    // Under two blocks' worth, the p99 of them all; of two blocks, the lower.
    expect(baselineP99([1, 2, 3], 100)).toBe(3);
    expect(baselineP99([...Array(100).fill(1), ...Array(100).fill(4)], 100)).toBe(1);
  });

  it('moves its baseline only when a block of quiet samples fills, not with every sample', () => {
    const controller = new LatencyController({ ...policy, baselineBlockSamples: 100 }, 1_000, 0);
    // Five blocks whose p99s are 2, 3, 4, 5 and 6 ms (two slow probes each, at a block's
    // middle: a p99 of 100 is the second slowest): the second-lowest, 3 ms.
    const blockOf = (slow: number) =>
      Array.from({ length: 100 }, (_, index) => (index === 50 || index === 51 ? slow : 1));
    let now = feedEach(controller, 0, [2, 3, 4, 5, 6].flatMap(blockOf));
    expect(controller.advance(now).baselineP99Ms).toBe(3);
    // Counted back from the newest sample, each of these would have moved every block's edge
    // past a slow probe: the baseline then changes with each one. Fixed blocks hold it.
    for (let index = 0; index < 99; index += 1) {
      now = feedEach(controller, now, [1]);
      expect(controller.verdict().baselineP99Ms).toBe(3);
    }
    // The block fills (its p99 1 ms) and the oldest (2 ms) goes: of 1, 3, 4, 5, 6 the
    // second-lowest is still 3; one more fast block, and of 1, 1, 4, 5, 6 it is 1.
    now = feedEach(controller, now, [1]);
    expect(controller.verdict().baselineP99Ms).toBe(3);
    now = feedEach(controller, now, Array(99).fill(1));
    expect(controller.verdict().baselineP99Ms).toBe(3);
    now = feedEach(controller, now, [1]);
    expect(controller.verdict().baselineP99Ms).toBe(1);
    // Blocks are counted from the first quiet sample ever, whatever the retained slice holds.
    expect(baselineP99([9, ...Array(200).fill(1)], 100, 301)).toBe(1);
  });

  it('learns no baseline from probes taken while another process ran batches of the job', () => {
    const controller = new LatencyController(policy, 1_000, 0, { tracksOthers: true });
    // Quiet here, and no report yet of the job's other processes: the samples wait.
    let now = feed(controller, 0, 2 * policy.learnSamples, 5);
    expect(controller.advance(now)).toMatchObject({ phase: 'learning', baselineSamples: 0 });
    // Another task's chains run the job (its rows arrive in every report): 5 ms probes.
    controller.othersRan(0, now, 1_000);
    for (let step = 0; step < 10; step += 1) {
      const next = feed(controller, now, 10, 5);
      controller.othersRan(now, next, 1_000);
      now = next;
    }
    expect(controller.advance(now)).toMatchObject({ phase: 'learning', baselineSamples: 0 });
    // It rests (no rows in the reports): from quietAfterMs after its last batch on, the
    // probes are production's idle.
    for (let step = 0; step < 15; step += 1) {
      const next = feed(controller, now, 10, 1);
      controller.othersRan(now, next, 0);
      now = next;
    }
    const verdict = controller.advance(now);
    expect(verdict.phase).toBe('pacing');
    expect(verdict.baselineP99Ms).toBe(1);
  });

  it('learns only while the chains rest, and learns afresh after a long stretch without rest', () => {
    // Five blocks of 10 kept, as the defaults keep five of 100.
    let { controller, now } = learned({ ...policy, baselineSamples: 50 });
    // A chain is running (between batches): its samples are not baseline, however quiet.
    now = feed(controller, now + 1_000, 50, 5);
    expect(controller.advance(now).baselineP99Ms).toBe(1);
    now = feed(controller, now + policy.relearnAfterMs, 10, 5);
    expect(controller.advance(now)).toMatchObject({ phase: 'learning' });
    // Held for learning: quiet samples count again. The baseline is the second-lowest of the
    // last five blocks, the old ones among them: slower to rise than to fall, it is the new
    // level once all but one of them hold it (a rise may be the backfill's own aftermath).
    now = feed(controller, now + policy.quietAfterMs, policy.learnSamples, 3);
    expect(controller.advance(now)).toMatchObject({ phase: 'pacing', baselineP99Ms: 1 });
    controller.chainsActive(0, now); // paused: its probes are quiet
    now = feed(controller, now, policy.learnSamples / 2, 3);
    expect(controller.verdict().baselineP99Ms).toBe(1);
    now = feed(controller, now, policy.learnSamples / 2, 3);
    expect(controller.verdict().baselineP99Ms).toBe(3);
  });

  it('eases the pace when the p99 is over the target, and halves it only when slow probes are more than a p99 at the target gives', () => {
    const full = { ...policy, minSamples: 100 };
    let { controller, now } = learned(full);
    const start = controller.verdict().limit;
    // One slow probe in 100 leaves the window's p99 (the second slowest) at 1.1 ms: under.
    const one = Array.from({ length: 100 }, (_, index) => (index === 20 ? 30 : 1.1));
    now = feedEach(controller, now, one);
    const under = controller.advance(now + full.adjustEveryMs);
    expect(under).toMatchObject({ over: false, probeP99Ms: 1.1, exceeding: 1 });
    expect(under.limit).toBeGreaterThanOrEqual(start);
    // Two more: the p99 is 30 ms, over the target, yet two in a hundred is what a p99 at
    // the target gives about one time in four: the pace eases, it is not halved.
    const stray = Array.from({ length: 100 }, (_, index) => (index === 20 || index === 70 ? 30 : 1.1));
    now = feedEach(controller, now + full.adjustEveryMs, stray);
    const eased = controller.advance(now + full.adjustEveryMs);
    expect(eased).toMatchObject({ over: true, probeP99Ms: 30, exceeding: 3 });
    expect(eased.exceeding).toBeLessThan(eased.overAt);
    expect(eased.limit).toBeCloseTo(under.limit * full.easeDecrease, 0);
    // Seven of the next hundred slow: that is a rise, and the pace halves.
    const rise = Array.from({ length: 100 }, (_, index) => (index % 16 === 0 ? 2 : 1.1));
    now = feedEach(controller, now + full.adjustEveryMs + 1, rise);
    const over = controller.advance(now + full.adjustEveryMs);
    expect(over.over).toBe(true);
    expect(over.exceeding).toBeGreaterThanOrEqual(over.overAt);
    expect(over.limit).toBeCloseTo(eased.limit / 2, 0);
  });

  it('calls over at the count a p99 at the target reaches less than one time in twenty', () => {
    // Binomial(n, 0.01): P(X >= 4 | 100) = 1.8 %, P(X >= 3 | 100) = 7.9 %.
    expect(exceedancesForOver(100, 0.05)).toBe(4);
    // P(X >= 6 | 250) = 4.1 %, P(X >= 5 | 250) = 10.8 %.
    expect(exceedancesForOver(250, 0.05)).toBe(6);
    // Few samples: one slow probe in ten is already rare for a p99 (P = 9.6 %) but not that rare.
    expect(exceedancesForOver(10, 0.05)).toBe(2);
    expect(exceedancesForOver(10, 0.2)).toBe(1);
  });

  it('takes the p99 as the value 99 in 100 samples stay at or below', () => {
    expect(p99([])).toBeNull();
    expect(p99(Array.from({ length: 100 }, (_, index) => index + 1))).toBe(99);
    expect(p99([5])).toBe(5);
  });
});
