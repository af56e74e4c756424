/**
 * The latency-targeted throttle's controller: the operator states how much production's
 * latency the backfill may cost (`maxRatio`: p99 at most this many times its idle p99)
 * and the controller finds the fastest pace that keeps it. Pure: it is fed probe samples
 * and the chains' activity with their times, so it is testable without a database or a
 * clock (the worker feeds it: workers/backfill-chunk/pace-monitor.ts).
 *
 *   baseline    p99 of the quiet probe samples: taken while the job's chains in this
 *               process were at rest (held by the controller, paused, or between chunks)
 *               and at least `quietAfterMs` after their last batch. Not the gaps between
 *               paced batches: a backfill's effect outlasts its batch. The p99s of fixed
 *               blocks of `baselineBlockSamples` (100), and of the last five whole blocks
 *               the second-lowest (of two, the lower): not one p99 of all of them, which a
 *               stall takes over — a second-long stall of the host while the chains rested
 *               put five probes of 700–900 ms among 500 quiet ones, so their p99, the fifth
 *               slowest, was a 728 ms baseline, a target of 1.1 s, and for the 20 s until
 *               those samples aged out the controller ran flat out. Nor their median: a
 *               backfill's rest is not production's idle at once. Its dirty pages are
 *               written out and its dead rows vacuumed while it rests, and the first probes
 *               meet a cold cache; in the bench such blocks' p99s were 2–4 ms against
 *               production's idle 1.3–1.9 ms. The median of five was 4.4 ms for the job's
 *               first 30 s (a 6.6 ms target; the pace climbed to 40,000 rows/s and
 *               production's p99 doubled), and after each fast stretch it rose again: the
 *               faster the backfill had run, the looser its target. A low block is
 *               production at rest; a high one may be the backfill's aftermath, a stall or
 *               the host's noise. So the low one, and the stricter target: the
 *               second-lowest of five block p99s estimates about production's p97–p98, a
 *               target that much tighter than the operator's. Before the first
 *               batch the chains hold until the baseline is known ("learning"); after a
 *               long stretch with no quiet sample they hold again for a moment to learn
 *               it afresh, since production's own load drifts.
 *   window      every sample of the last `windowMs`, but none from before the last
 *               change of pace: a verdict is on the pace in force. Judged since the last
 *               decrease only, each verdict under target added 500 rows/s every 250 ms on
 *               a window mostly of slower paces: 2,000 rows/s more each second, faster
 *               than the window could show what any of them cost (in the bench, from
 *               5,800 to 20,500 rows/s within 17 s, where 2,500 held the target). So the
 *               pace changes at most once per `minSamples` probes (2 s at the defaults).
 *   over        the window holds more probes slower than maxRatio × baseline than a p99
 *               at the target would plausibly give: at a true p99 exactly at the target,
 *               1 % of probes exceed it, and the count of them in n probes is binomial
 *               (n, 0.01); the verdict is "over" only at a count that such a p99 would
 *               reach less often than `falseOverRate` (0.01: the allowed share, below). Not "the window's p99 over the
 *               target": at 100–250 samples the p99 is the second or third slowest probe,
 *               so one stray slow probe (a GC pause, a scheduler hiccup on the worker's
 *               host) halved the pace while production's p99, over its thousands of
 *               queries, had not moved. A real rise (a load step, the backfill's own
 *               contention) puts many probes over the target and is seen as fast.
 *   AIMD        every `adjustEveryMs`, with at least `minSamples` to judge by: clearly
 *               over (the binomial count above) → rows/s ×= decrease; the window's p99 over
 *               the target but not clearly → rows/s ×= easeDecrease; under it → rows/s +=
 *               increaseRowsPerSecond, never beyond twice what the chains actually achieved,
 *               and not while the budget holds it (below).
 *               The middle step is what holds the target: with only the clear verdict, a
 *               probe p99 at 1.5–2 times the target (3 to 5 of 250 probes slower) was
 *               "under" and the pace went on climbing, and production's p99 sat at 2.4×
 *               idle under a 1.5× target. A stray probe or two does not move a p99 of
 *               100 or more samples past the target, so the step is not a stray's.
 *   budget      a p99 is a pooled tail: held at the target, the window's p99 is over it
 *               half the time, and a run's p99 is what those halves make. In the bench the
 *               probe's p99 sat at 1.51× its baseline (the median of its verdicts) under a
 *               1.5× target, and production's was 1.71× in one round of three. So a p99
 *               over the longer memory: while more than the allowed share (below) of the
 *               probes taken as the chains ran in the last `budgetWindowMs` were slower
 *               than the target, a verdict under it holds the pace instead of raising it.
 *   allowed     a p99 at the target is 1 % of probes slower than it: each judgement above
 *               asks whether more than 1 % were ("the window's p99 over the target" is
 *               that share over 1 %), or more than the quiet probes' own share slower than
 *               the target, whichever is more. Rest's own share because the baseline is
 *               biased low: on a noisy host the quiet probes themselves were slower than
 *               1.5 × their p97 more than 1 % of the time, and every verdict then compared
 *               the backfill with a rest that broke the target too. Judged against 1 %
 *               alone, the pace sat at its floor with the backfill costing nothing (a CI
 *               run: 45 s at 20 rows/s after a load had gone, held by the budget at every
 *               verdict; with two busy loops beside the worker test, 17 rows/s unloaded,
 *               over target at every verdict). What the backfill may not do is make the
 *               tail worse than rest has it, nor worse than the target.
 *   batch size  the rate × batchIntervalMs, between minBatchSize and the job's batch size:
 *               a slow pace runs small batches, so each holds the database for less time.
 *
 * Why p99 against a learned baseline rather than a fixed number of milliseconds: the same
 * query costs 0.3 ms on one database and 3 ms on another, and the operator's question is
 * "how much worse may production get", which is a ratio.
 */

export interface LatencyTargetPolicy {
  /** Production's probe p99 may be at most this many times its baseline p99. */
  readonly maxRatio: number;
  /** SQL mirroring a production read; `$1`, where it appears, is a random id of the job's range. */
  readonly probeSql: string;
  /** One probe every this many ms, on the probe's own connection. */
  readonly sampleEveryMs: number;
  /** The probe p99 covers this much recent time, ms. */
  readonly windowMs: number;
  /** No verdict on fewer samples than this (since the last change of pace). */
  readonly minSamples: number;
  /**
   * No increase while more than 1 % of the probes taken as the chains ran in this much
   * recent time were slower than the target, ms (see the header: budget).
   */
  readonly budgetWindowMs: number;
  /**
   * How often a p99 exactly at the target may be judged over it: the window is over when
   * its count of probes slower than the target would come up less often than this.
   */
  readonly falseOverRate: number;
  /** The controller judges at most this often, ms (and changes the pace at most once per `minSamples` probes). */
  readonly adjustEveryMs: number;
  /** The baseline is learned from the last this many quiet samples (whole blocks of them). */
  readonly baselineSamples: number;
  /** The baseline is the second-lowest of the p99s of blocks of this many of them (see the header). */
  readonly baselineBlockSamples: number;
  /**
   * Quiet samples needed before the first batch (and to learn afresh); the first learning
   * also waits for two whole baseline blocks.
   */
  readonly learnSamples: number;
  /** A sample is quiet when no batch ran for at least this long before it, ms. */
  readonly quietAfterMs: number;
  /** With no quiet sample for this long, the chains hold to learn the baseline afresh, ms. */
  readonly relearnAfterMs: number;
  /** The pace after learning, rows/s per chain. */
  readonly startRowsPerSecond: number;
  /** Added to the pace on each verdict under the target, rows/s. */
  readonly increaseRowsPerSecond: number;
  /** The pace is multiplied by this on each verdict clearly over the target. */
  readonly decrease: number;
  /** The pace is multiplied by this when the window's p99 is over the target, but not clearly. */
  readonly easeDecrease: number;
  /** The pace never falls below this, rows/s. */
  readonly minRowsPerSecond: number;
  /** Batch size ≈ pace × this, ms. */
  readonly batchIntervalMs: number;
  readonly minBatchSize: number;
}

export const DEFAULT_LATENCY_TARGET = {
  maxRatio: 1.5,
  probeSql: '',
  sampleEveryMs: 20,
  windowMs: 5_000,
  minSamples: 100,
  budgetWindowMs: 30_000,
  falseOverRate: 0.05,
  adjustEveryMs: 250,
  baselineSamples: 500,
  baselineBlockSamples: 100,
  learnSamples: 100,
  quietAfterMs: 250,
  relearnAfterMs: 60_000,
  startRowsPerSecond: 2_000,
  increaseRowsPerSecond: 500,
  decrease: 0.5,
  easeDecrease: 0.8,
  minRowsPerSecond: 50,
  batchIntervalMs: 100,
  minBatchSize: 50,
} as const satisfies LatencyTargetPolicy;

/** The default probe of a backfill that names none: a primary-key read of its table. */
export function defaultProbeSql(quotedTable: string): string {
  return `SELECT * FROM ${quotedTable} WHERE id = $1`;
}

export interface LatencyVerdict {
  readonly phase: 'learning' | 'pacing';
  /** The last judgement was over the target: the window's p99 past it, or clearly (`overAt`). */
  readonly over: boolean;
  /** rows/s per chain. */
  readonly limit: number;
  readonly batchSize: number;
  readonly baselineP99Ms: number | null;
  readonly probeP99Ms: number | null;
  /** Samples the probe p99 was taken over. */
  readonly samples: number;
  /** Of those, how many were slower than the target (maxRatio × baseline). */
  readonly exceeding: number;
  /** The count of slower probes at which that many samples are judged over the target. */
  readonly overAt: number;
  /**
   * The share of probes that may be slower than the target: 1 %, or the quiet probes' own
   * share slower than it, whichever is more (see the header: allowed).
   */
  readonly allowed: number;
  readonly baselineSamples: number;
  /**
   * Under target, but the budget held the pace: of the probes taken as the chains ran in
   * the last budgetWindowMs, how many were slower than the target, and the share of them
   * allowed (1 %, or the quiet probes' own share slower than the target). Null: not held.
   */
  readonly heldBy: Budget | null;
  /** Bumped on every change of pace: a consumer can tell a new verdict from a repeated one. */
  readonly revision: number;
}

export interface Budget {
  readonly over: number;
  readonly of: number;
  /** The share of `of` that may be slower than the target: 1 % or rest's own, the more. */
  readonly allowed: number;
}

interface Sample {
  readonly at: number;
  readonly ms: number;
}

interface PacedSample extends Sample {
  /** Taken as some chain ran (not at rest): the budget counts these. */
  readonly paced: boolean;
}

export function p99(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] as number;
}

/**
 * The baseline of `quiet` samples (oldest first; `seen` quiet samples ever, the last of them
 * `quiet`'s last): the p99 of each whole block of `block` samples, blocks counted from the
 * first quiet sample ever, and the second-lowest of those p99s (of two, the lower). Under
 * two whole blocks, the p99 of them all. A stall, or the backfill's aftermath, in up to
 * all but two blocks does not move it (see the header). Fixed blocks, not blocks counted back from
 * the newest sample: counted back, every new sample moved every block's edge, and the
 * bench's baseline swung between 2.1 and 3.8 ms from one decision to the next — a target
 * that moved by half while production stood still. Fixed, it moves only when a block
 * fills: every 100 quiet samples, 2 s of rest at the default cadence.
 */
export function baselineP99(
  quiet: readonly number[],
  block: number,
  seen: number = quiet.length,
): number | null {
  const { start, count } = wholeBlocks(quiet.length, block, seen);
  if (count < 2) return p99(quiet);
  const p99s: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const from = start + index * block;
    p99s.push(p99(quiet.slice(from, from + block)) as number);
  }
  p99s.sort((a, b) => a - b);
  return p99s[count >= 3 ? 1 : 0] as number;
}

/**
 * The whole fixed blocks among `kept` samples, the last of `seen` ever: where the first
 * begins (an index into the kept samples) and how many there are.
 */
export function wholeBlocks(kept: number, block: number, seen: number): { start: number; count: number } {
  if (block < 1) return { start: 0, count: 0 };
  const first = seen - kept;
  const startOfFirst = Math.ceil(first / block) * block;
  return { start: startOfFirst - first, count: Math.max(0, Math.floor((seen - startOfFirst) / block)) };
}

/**
 * The fewest of `n` samples over the target that a true p99 at the target (each sample
 * over it with probability `share`, 0.01 for a p99) reaches with probability below
 * `rate`: the binomial upper tail, summed term by term (n is at most a few hundred, so
 * this is exact and cheap; no statistics library needed for one tail).
 */
export function exceedancesForOver(n: number, rate: number, share = 0.01): number {
  const p = Math.min(share, 1 - 1e-9);
  let term = (1 - p) ** n; // P(X = 0)
  let below = 0; // P(X < k)
  for (let k = 0; k <= n; k += 1) {
    if (1 - below < rate) return k;
    below += term;
    term = (term * (n - k) * p) / ((k + 1) * (1 - p));
  }
  return n + 1;
}

export class LatencyController {
  private readonly recent: PacedSample[] = [];
  private heldBy: Budget | null = null;
  private readonly quiet: number[] = [];
  /** Quiet samples ever: where the baseline's blocks begin and end. */
  private quietSeen = 0;
  private phase: 'learning' | 'pacing' = 'learning';
  private learnedSince: number;
  private quietSinceLearning = 0;
  private lastQuietAt: number;
  private limit: number;
  private over = false;
  private lastAdjustAt = Number.NEGATIVE_INFINITY;
  /** When the pace last changed: a verdict judges only the probes since. */
  private lastChangeAt = Number.NEGATIVE_INFINITY;
  private revision = 0;
  private probeP99Ms: number | null = null;
  /** The baseline the last verdict was judged against (it moves on with every quiet sample). */
  private judgedBaselineMs: number | null = null;
  private judgedOn = 0;
  private exceeding = 0;
  private overAt = 0;
  private allowed = 0.01;
  private inFlight = 0;
  private activeChains = 0;
  private lastBatchEndAt = Number.NEGATIVE_INFINITY;
  private readonly achieved: Sample[] = [];
  /** When some chain ran a chunk here: the achieved pace is per second of running, not of pauses. */
  private readonly active: Array<{ from: number; to: number }> = [];

  private readonly policy: LatencyTargetPolicy;
  /** The job's batch size: the largest batch the controller asks for. */
  private readonly maxBatchSize: number;

  /**
   * Samples quiet by this process's own chains, waiting to be checked against the job's
   * chains in other processes (`othersRan`) before they count as baseline.
   */
  private readonly pendingQuiet: Sample[] = [];
  /** Other processes' batches are known up to this instant (+∞: not tracked, a quiet sample counts at once). */
  private othersKnownUntil: number;
  /** Spans in which some other process committed batches of the job. */
  private readonly othersBusy: Array<{ readonly from: number; readonly to: number }> = [];

  /**
   * `tracksOthers`: the job's chains may also run in other processes, and `othersRan`
   * reports their batches; until it has covered a quiet sample's time, the sample waits.
   */
  constructor(
    policy: LatencyTargetPolicy,
    maxBatchSize: number,
    now: number,
    options: { readonly tracksOthers?: boolean } = {},
  ) {
    this.policy = policy;
    this.maxBatchSize = maxBatchSize;
    this.limit = Math.max(policy.minRowsPerSecond, policy.startRowsPerSecond);
    this.learnedSince = now;
    this.lastQuietAt = now;
    this.othersKnownUntil = options.tracksOthers === true ? now : Number.POSITIVE_INFINITY;
  }

  /**
   * Other processes' chains of the job committed `rows` rows between `from` and `to` (as
   * the job's progress in the database says, less this process's own). A sample is only
   * baseline if no process ran a batch of the job near it: a process whose own chains
   * rest while another task's run the job would otherwise learn the other task's load as
   * production's idle, and set its target that much too loose. Samples within
   * `quietAfterMs` of such a span are not quiet (a batch that committed just after `from`
   * may have started up to that long before it).
   */
  othersRan(from: number, to: number, rows: number): void {
    if (rows > 0) this.othersBusy.push({ from, to });
    this.othersKnownUntil = Math.max(this.othersKnownUntil, to);
    this.settleQuiet();
  }

  /** Quiet samples the other processes' reports now cover: baseline, or dropped. */
  private settleQuiet(): void {
    const margin = this.policy.quietAfterMs;
    const settledUntil = this.othersKnownUntil - margin;
    while (this.pendingQuiet.length > 0 && (this.pendingQuiet[0] as Sample).at <= settledUntil) {
      const sample = this.pendingQuiet.shift() as Sample;
      const nearOthers = this.othersBusy.some(
        (span) => sample.at >= span.from - margin && sample.at <= span.to + margin,
      );
      if (!nearOthers) this.addQuiet(sample);
    }
    const oldest = this.pendingQuiet[0]?.at ?? settledUntil;
    while (this.othersBusy.length > 0 && (this.othersBusy[0] as { to: number }).to + margin < oldest)
      this.othersBusy.shift();
    // Reports stopped (the progress read fails): bounded, and no baseline is learned meanwhile.
    if (this.pendingQuiet.length > this.policy.baselineSamples) this.pendingQuiet.shift();
  }

  private addQuiet({ at, ms }: Sample): void {
    this.quiet.push(ms);
    this.quietSeen += 1;
    // One block short of another whole one kept, so `baselineSamples` always holds whole blocks.
    const keep = this.policy.baselineSamples + Math.max(0, this.policy.baselineBlockSamples - 1);
    if (this.quiet.length > keep) this.quiet.shift();
    this.lastQuietAt = at;
    if (at >= this.learnedSince) this.quietSinceLearning += 1;
  }

  /** How many chains of the job run a chunk in this process as of `now`. */
  chainsActive(count: number, now: number): void {
    if (this.activeChains === 0 && count > 0) this.active.push({ from: now, to: Number.POSITIVE_INFINITY });
    if (this.activeChains > 0 && count === 0) {
      const open = this.active.at(-1);
      if (open !== undefined) open.to = now;
    }
    this.activeChains = count;
  }

  /** Of the `windowMs` before `now`, how long some chain ran, ms. */
  private activeMs(now: number): number {
    const from = now - this.policy.windowMs;
    while (this.active.length > 0 && (this.active[0] as { to: number }).to < from) this.active.shift();
    return this.active.reduce(
      (sum, interval) => sum + Math.max(0, Math.min(now, interval.to) - Math.max(from, interval.from)),
      0,
    );
  }

  /** A chain starts a batch. */
  batchStarted(): void {
    this.inFlight += 1;
  }

  /** A chain's step ended at `at` having processed `rows`. */
  batchEnded(at: number, rows: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.lastBatchEndAt = at;
    if (rows > 0) this.achieved.push({ at, ms: rows });
  }

  /** One probe sample: started at `at`, took `ms`. Samples arrive in time order. */
  addSample(at: number, ms: number): void {
    const atRest = this.phase === 'learning' || this.activeChains === 0;
    this.recent.push({ at, ms, paced: !atRest || this.inFlight > 0 });
    const quiet = atRest && this.inFlight === 0 && at - this.lastBatchEndAt >= this.policy.quietAfterMs;
    if (!quiet) return;
    this.pendingQuiet.push({ at, ms });
    this.settleQuiet();
  }

  /** Moves the controller on to `now`: learns, relearns, or judges and adjusts the pace. */
  advance(now: number): LatencyVerdict {
    const { policy } = this;
    const kept = Math.max(policy.windowMs, policy.budgetWindowMs);
    while (this.recent.length > 0 && (this.recent[0] as Sample).at < now - kept) this.recent.shift();
    while (this.achieved.length > 0 && (this.achieved[0] as Sample).at < now - policy.windowMs)
      this.achieved.shift();
    if (this.phase === 'learning') {
      // Two whole blocks at least, so that the first baseline is already the lower of two block
      // p99s: a stall among the first block's probes (a 907 ms baseline in a bench run,
      // and a job that then ran unpaced) moves one block and not the target.
      if (
        this.quietSinceLearning >= policy.learnSamples &&
        wholeBlocks(this.quiet.length, policy.baselineBlockSamples, this.quietSeen).count >= 2
      ) {
        this.phase = 'pacing';
        this.lastAdjustAt = now;
        this.revision += 1;
      }
    } else if (now - this.lastQuietAt > policy.relearnAfterMs) {
      this.phase = 'learning';
      this.judgedBaselineMs = null;
      this.learnedSince = now;
      this.quietSinceLearning = 0;
      this.revision += 1;
    } else if (now - this.lastAdjustAt >= policy.adjustEveryMs) {
      this.judge(now);
    }
    return this.verdict();
  }

  verdict(): LatencyVerdict {
    const batchSize = Math.round((this.limit * this.policy.batchIntervalMs) / 1000);
    return {
      phase: this.phase,
      over: this.over,
      limit: Math.round(this.limit),
      batchSize: Math.max(
        Math.min(this.policy.minBatchSize, this.maxBatchSize),
        Math.min(this.maxBatchSize, batchSize),
      ),
      baselineP99Ms: this.judgedBaselineMs ?? this.baseline(),
      probeP99Ms: this.probeP99Ms,
      samples: this.judgedOn,
      exceeding: this.exceeding,
      overAt: this.overAt,
      allowed: this.allowed,
      baselineSamples: this.quiet.length,
      heldBy: this.heldBy,
      revision: this.revision,
    };
  }

  private baseline(): number | null {
    return baselineP99(this.quiet, this.policy.baselineBlockSamples, this.quietSeen);
  }

  /**
   * Of the probes taken as the chains ran in the last budgetWindowMs, how many were over
   * `targetMs`, when that is more than the `allowed` share of them; null: within the budget.
   */
  private overBudget(now: number, targetMs: number, allowed: number): Budget | null {
    let of = 0;
    let over = 0;
    for (const sample of this.recent) {
      if (!sample.paced || sample.at < now - this.policy.budgetWindowMs) continue;
      of += 1;
      if (sample.ms > targetMs) over += 1;
    }
    return over > allowed * of ? { over, of, allowed } : null;
  }

  private judge(now: number): void {
    const { policy } = this;
    const window = this.recent
      .filter((sample) => sample.at > this.lastChangeAt && sample.at >= now - policy.windowMs)
      .map((sample) => sample.ms);
    const baseline = this.baseline();
    if (window.length < policy.minSamples || baseline === null) return;
    this.lastAdjustAt = now;
    this.probeP99Ms = p99(window);
    this.judgedBaselineMs = baseline;
    this.judgedOn = window.length;
    const targetMs = baseline * policy.maxRatio;
    const slower = (count: number, ms: number) => (ms > targetMs ? count + 1 : count);
    this.exceeding = window.reduce(slower, 0);
    // 1 %, or what rest itself shows, the more (see the header: allowed).
    this.allowed = Math.max(0.01, this.quiet.reduce(slower, 0) / this.quiet.length);
    this.overAt = exceedancesForOver(window.length, policy.falseOverRate, this.allowed);
    const wasOver = this.over;
    const previous = this.limit;
    const clearlyOver = this.exceeding >= this.overAt;
    // At 1 % allowed, this is the window's p99 over the target.
    this.over = clearlyOver || this.exceeding > this.allowed * window.length;
    // Held: the recent window is under, the longer memory is not (see the header).
    this.heldBy = this.over ? null : this.overBudget(now, targetMs, this.allowed);
    if (this.over) {
      const factor = clearlyOver ? policy.decrease : policy.easeDecrease;
      this.limit = Math.max(policy.minRowsPerSecond, this.limit * factor);
    } else if (this.heldBy === null) {
      // Not past twice what the chains achieved: a pace they cannot reach is no pace, and
      // a decrease from it would take many steps to bite. Achieved per second the chains
      // ran: after a pause (or between chunks) the window's idle part says nothing of the
      // pace they can keep.
      const runningMs = Math.max(policy.adjustEveryMs, this.activeMs(now));
      const achievedRowsPerSecond =
        this.achieved.reduce((sum, sample) => sum + sample.ms, 0) / (runningMs / 1000);
      const room = Math.max(policy.startRowsPerSecond, 2 * achievedRowsPerSecond);
      this.limit = Math.max(this.limit, Math.min(room, this.limit + policy.increaseRowsPerSecond));
    }
    if (this.limit !== previous) this.lastChangeAt = now;
    if (this.limit !== previous || this.over !== wasOver) this.revision += 1;
  }
}
