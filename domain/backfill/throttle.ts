import { DEFAULT_LATENCY_TARGET, type LatencyTargetPolicy, type LatencyVerdict } from './latency-target.ts';

/**
 * The throttle: how fast may the next batch go? Pure functions, so the policy is testable
 * without a database. Two modes, by the job's policy:
 *
 * On database health (the default; `decideThrottle`), one step per new health reading:
 *   any reading past its `pause` threshold → paused: no batch; probe again after pauseMs
 *   any reading past its `slow` threshold  → slowed: limit ×= decrease (multiplicative)
 *   all readings healthy                   → limit ×= increase, unlimited once it is high
 *   the operator's ceiling                 → caps whatever the health allows ("ceiling")
 * Multiplicative decrease and increase (not additive) because the same policy must react
 * within a few batches at 100 rows/s and at 50,000 rows/s.
 *
 * On a latency target (`latencyTarget` set; `decideLatencyThrottle`): the pace is what the
 * latency controller (latency-target.ts) found keeps production's probe p99 within the
 * target ratio of its baseline; health readings past their `pause` thresholds still pause
 * (their `slow` thresholds are not used); the operator's ceiling still caps.
 */

export interface Thresholds {
  readonly slow: number;
  readonly pause: number;
}

export interface ThrottlePolicy {
  /** Latency of the health probe (a timed heartbeat write), ms. */
  readonly probeLatencyMs: Thresholds;
  /** Client backends running a statement (pg_stat_activity), this chain's own excluded. */
  readonly activeConnections: Thresholds;
  /** Replay lag of the slowest replica (pg_stat_replication), ms; ignored without replicas. */
  readonly replicationLagMs: Thresholds;
  /** The limit never falls below this while slowed, rows/s. */
  readonly minRowsPerSecond: number;
  /** Factor applied to the limit on a slow reading. */
  readonly decrease: number;
  /** Factor applied to the limit on a healthy reading. */
  readonly increase: number;
  /** A limit above this is lifted altogether, rows/s. */
  readonly unlimitedAboveRowsPerSecond: number;
  /** While paused by health, probe again after this long, ms. */
  readonly pauseMs: number;
  /** Waits up to this long happen inside the handler; longer ones end the chunk and the next chunk is sent with a delay. */
  readonly maxInlineWaitMs: number;
  /** The health probe runs this often, beside the batches (never on their path), ms. */
  readonly probeEveryMs: number;
  /** Pace by production latency instead of health (null: by health). */
  readonly latencyTarget: LatencyTargetPolicy | null;
}

export const DEFAULT_THROTTLE_POLICY = {
  probeLatencyMs: { slow: 40, pause: 400 },
  activeConnections: { slow: 24, pause: 64 },
  replicationLagMs: { slow: 2_000, pause: 30_000 },
  minRowsPerSecond: 50,
  decrease: 0.5,
  increase: 2,
  unlimitedAboveRowsPerSecond: 100_000,
  pauseMs: 5_000,
  maxInlineWaitMs: 2_000,
  probeEveryMs: 200,
  latencyTarget: null,
} as const satisfies ThrottlePolicy;

export type ThrottlePolicyOverrides = {
  readonly [K in Exclude<keyof ThrottlePolicy, 'latencyTarget'>]?: ThrottlePolicy[K] extends Thresholds
    ? Partial<Thresholds>
    : ThrottlePolicy[K];
} & {
  /** null turns a latency target off; an object turns it on, over the defaults (or the one in force). */
  readonly latencyTarget?: Partial<LatencyTargetPolicy> | null;
};

/** A policy from defaults and any number of partial overrides (later wins). */
export function resolvePolicy(
  ...overrides: ReadonlyArray<ThrottlePolicyOverrides | undefined>
): ThrottlePolicy {
  let policy: ThrottlePolicy = DEFAULT_THROTTLE_POLICY;
  for (const override of overrides) {
    if (override === undefined) continue;
    const { latencyTarget, ...rest } = override;
    policy = {
      ...policy,
      ...rest,
      probeLatencyMs: { ...policy.probeLatencyMs, ...override.probeLatencyMs },
      activeConnections: { ...policy.activeConnections, ...override.activeConnections },
      replicationLagMs: { ...policy.replicationLagMs, ...override.replicationLagMs },
      latencyTarget:
        latencyTarget === undefined
          ? policy.latencyTarget
          : latencyTarget === null
            ? null
            : { ...(policy.latencyTarget ?? DEFAULT_LATENCY_TARGET), ...latencyTarget },
    };
  }
  return policy;
}

export interface HealthReading {
  readonly probeMs: number;
  readonly activeConnections: number;
  /** null: no replica reports lag. */
  readonly replicationLagMs: number | null;
}

export const ThrottleState = {
  Healthy: 'healthy',
  Slowed: 'slowed',
  Paused: 'paused',
  Ceiling: 'ceiling',
  /** No batch while the latency target learns production's idle latency. */
  Learning: 'learning',
} as const;
export type ThrottleState = (typeof ThrottleState)[keyof typeof ThrottleState];

export interface ThrottleDecision {
  readonly state: ThrottleState;
  readonly reason: string;
  /** The controller's limit after this decision, rows/s; null: unlimited. */
  readonly limit: number | null;
  /** What the next batch may run at: the limit under the operator's ceiling; null: unlimited. */
  readonly effectiveLimit: number | null;
  /** Rows per batch the throttle asks for; null: the job's batch size. */
  readonly batchSize: number | null;
  readonly reading: HealthReading;
  /** What the latency target saw (null: paced by health). */
  readonly latency: LatencyView | null;
  readonly at: string;
}

/** The latency target's view, as status shows it and throttle events record it. */
export interface LatencyView {
  readonly targetRatio: number;
  /** p99 of the probe while no batch ran, ms; null until learned. */
  readonly baselineP99Ms: number | null;
  /** p99 of the probe over its recent window, ms; null before enough samples. */
  readonly probeP99Ms: number | null;
  readonly samples: number;
  /** Of those, how many were slower than the target; the verdict is over at `overAt` or more. */
  readonly exceeding?: number;
  readonly overAt?: number;
  /** The share of probes that may be slower than the target: 1 %, or rest's own share, the more. */
  readonly allowed?: number;
  /** Where the latency comes from: the read probe (pg_stat_statements is not used). */
  readonly source: 'probe';
}

/** A decision that runs no batch: the chain waits. */
export function holdsBatches(decision: Pick<ThrottleDecision, 'state'>): boolean {
  return decision.state === ThrottleState.Paused || decision.state === ThrottleState.Learning;
}

type Severity = 'ok' | 'slow' | 'pause';

function grade(value: number | null, thresholds: Thresholds): Severity {
  if (value === null) return 'ok';
  if (value > thresholds.pause) return 'pause';
  if (value > thresholds.slow) return 'slow';
  return 'ok';
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** The worst severity among the health readings, and the signals that have it. */
function gradeHealth(policy: ThrottlePolicy, reading: HealthReading): { worst: Severity; why: string } {
  const signals = [
    { name: 'probe latency', value: reading.probeMs, unit: 'ms', thresholds: policy.probeLatencyMs },
    {
      name: 'active connections',
      value: reading.activeConnections,
      unit: '',
      thresholds: policy.activeConnections,
    },
    {
      name: 'replication lag',
      value: reading.replicationLagMs,
      unit: 'ms',
      thresholds: policy.replicationLagMs,
    },
  ].map((signal) => ({ ...signal, severity: grade(signal.value, signal.thresholds) }));
  const worst: Severity = signals.some((signal) => signal.severity === 'pause')
    ? 'pause'
    : signals.some((signal) => signal.severity === 'slow')
      ? 'slow'
      : 'ok';
  const why = signals
    .filter((signal) => signal.severity === worst)
    .map(
      (signal) =>
        `${signal.name} ${round(signal.value ?? 0)}${signal.unit} > ${
          worst === 'pause' ? signal.thresholds.pause : signal.thresholds.slow
        }${signal.unit}`,
    )
    .join(', ');
  return { worst, why };
}

/** The operator's ceiling over whatever the throttle allows; it names itself when it is what binds. */
function underCeiling(
  decision: Omit<ThrottleDecision, 'effectiveLimit' | 'limit'> & { limit: number | null },
  ceiling: number | null,
): ThrottleDecision {
  let { state, reason } = decision;
  let effectiveLimit = decision.limit;
  if (ceiling !== null && (effectiveLimit === null || effectiveLimit > ceiling)) {
    effectiveLimit = ceiling;
    if (state === ThrottleState.Healthy) {
      state = ThrottleState.Ceiling;
      reason = `operator ceiling ${round(ceiling)} rows/s`;
    }
  }
  return {
    ...decision,
    state,
    reason,
    limit: decision.limit === null ? null : round(decision.limit),
    effectiveLimit: effectiveLimit === null ? null : round(effectiveLimit),
  };
}

/**
 * The next decision on database health. `limit` is the controller's current limit (null:
 * unlimited) and `observedRate` the chain's recent rows/s, which is where a slowdown
 * starts from when no limit is in force yet. `ceiling` is the operator's rows/s for this
 * chain.
 */
export function decideThrottle(
  policy: ThrottlePolicy,
  input: {
    readonly limit: number | null;
    readonly observedRate: number;
    readonly ceiling: number | null;
    readonly reading: HealthReading;
    readonly now?: Date;
  },
): ThrottleDecision {
  const { worst, why } = gradeHealth(policy, input.reading);
  const from = input.limit ?? Math.max(policy.minRowsPerSecond, input.observedRate);
  let state: ThrottleState;
  let limit: number | null;
  let reason: string;
  if (worst === 'pause') {
    state = ThrottleState.Paused;
    limit = Math.max(policy.minRowsPerSecond, from * policy.decrease);
    reason = why;
  } else if (worst === 'slow') {
    state = ThrottleState.Slowed;
    limit = Math.max(policy.minRowsPerSecond, Math.min(from, input.observedRate || from) * policy.decrease);
    reason = why;
  } else {
    state = ThrottleState.Healthy;
    limit = input.limit === null ? null : input.limit * policy.increase;
    if (limit !== null && limit > policy.unlimitedAboveRowsPerSecond) limit = null;
    reason = limit === null ? 'healthy' : 'healthy, recovering';
  }
  return underCeiling(
    {
      state,
      reason,
      limit,
      batchSize: null,
      reading: input.reading,
      latency: null,
      at: (input.now ?? new Date()).toISOString(),
    },
    input.ceiling,
  );
}

/**
 * The next decision on a latency target: the latency controller's verdict, unless a health
 * reading is past its pause threshold (a hard pause whatever the latency says).
 */
export function decideLatencyThrottle(
  policy: ThrottlePolicy & { readonly latencyTarget: LatencyTargetPolicy },
  input: {
    readonly verdict: LatencyVerdict;
    readonly ceiling: number | null;
    readonly reading: HealthReading;
    readonly now?: Date;
  },
): ThrottleDecision {
  const { verdict } = input;
  const { worst, why } = gradeHealth(policy, input.reading);
  const latency: LatencyView = {
    targetRatio: policy.latencyTarget.maxRatio,
    baselineP99Ms: verdict.baselineP99Ms,
    probeP99Ms: verdict.probeP99Ms,
    samples: verdict.samples,
    exceeding: verdict.exceeding,
    overAt: verdict.overAt,
    allowed: verdict.allowed,
    source: 'probe',
  };
  const ms = (value: number | null) => (value === null ? '-' : `${value.toFixed(2)}ms`);
  const percent = (share: number) => `${(100 * share).toFixed(1)} %`;
  const versus = `probe p99 ${ms(verdict.probeP99Ms)} vs ${policy.latencyTarget.maxRatio} x baseline ${ms(verdict.baselineP99Ms)}; ${verdict.exceeding} of ${verdict.samples} probes slower (over at ${verdict.overAt}${verdict.allowed > 0.01 ? `; rest's own ${percent(verdict.allowed)} allowed` : ''})`;
  let state: ThrottleState;
  let reason: string;
  if (worst === 'pause') {
    state = ThrottleState.Paused;
    reason = why;
  } else if (verdict.phase === 'learning') {
    state = ThrottleState.Learning;
    reason = `learning the baseline (${verdict.baselineSamples} quiet samples)`;
  } else if (verdict.over) {
    state = ThrottleState.Slowed;
    reason = `over target: ${versus}`;
  } else {
    state = ThrottleState.Healthy;
    reason =
      verdict.probeP99Ms === null
        ? 'under target (measuring)'
        : verdict.heldBy !== null
          ? `under target, held: ${verdict.heldBy.over} of ${verdict.heldBy.of} probes in the last ${policy.latencyTarget.budgetWindowMs / 1000} s slower (over ${percent(verdict.heldBy.allowed)}); ${versus}`
          : `under target: ${versus}`;
  }
  return underCeiling(
    {
      state,
      reason,
      limit: verdict.limit,
      batchSize: verdict.batchSize,
      reading: input.reading,
      latency,
      at: (input.now ?? new Date()).toISOString(),
    },
    input.ceiling,
  );
}

/** How long to wait after a batch of `rows` that took `elapsedMs`, to stay under `limit` rows/s. */
export function paceMs(rows: number, elapsedMs: number, limit: number | null): number {
  if (limit === null || rows === 0) return 0;
  return Math.max(0, Math.ceil((rows / limit) * 1000 - elapsedMs));
}

/** Exponentially weighted rows/s: recent batches count most, one odd batch does not swing it. */
export function smoothRate(previous: number, rows: number, elapsedMs: number, weight = 0.3): number {
  const instant = elapsedMs <= 0 ? previous : (rows * 1000) / elapsedMs;
  return previous <= 0 ? instant : previous * (1 - weight) + instant * weight;
}
