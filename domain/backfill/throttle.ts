/**
 * The throttle: given the database's health and the chain's current limit, how fast may
 * the next batch go? Pure functions, so the policy is testable without a database.
 *
 *   any reading past its `pause` threshold → paused: no batch; probe again after pauseMs
 *   any reading past its `slow` threshold  → slowed: limit ×= decrease (multiplicative)
 *   all readings healthy                   → limit ×= increase, unlimited once it is high
 *   the operator's ceiling                 → caps whatever the health allows ("ceiling")
 *
 * Multiplicative decrease and increase (not additive) because the same policy must react
 * within a few batches at 100 rows/s and at 50,000 rows/s.
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
} as const satisfies ThrottlePolicy;

export type ThrottlePolicyOverrides = {
  readonly [K in keyof ThrottlePolicy]?: ThrottlePolicy[K] extends Thresholds
    ? Partial<Thresholds>
    : ThrottlePolicy[K];
};

/** A policy from defaults and any number of partial overrides (later wins). */
export function resolvePolicy(
  ...overrides: ReadonlyArray<ThrottlePolicyOverrides | undefined>
): ThrottlePolicy {
  let policy: ThrottlePolicy = DEFAULT_THROTTLE_POLICY;
  for (const override of overrides) {
    if (override === undefined) continue;
    policy = {
      ...policy,
      ...override,
      probeLatencyMs: { ...policy.probeLatencyMs, ...override.probeLatencyMs },
      activeConnections: { ...policy.activeConnections, ...override.activeConnections },
      replicationLagMs: { ...policy.replicationLagMs, ...override.replicationLagMs },
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
} as const;
export type ThrottleState = (typeof ThrottleState)[keyof typeof ThrottleState];

export interface ThrottleDecision {
  readonly state: ThrottleState;
  readonly reason: string;
  /** The controller's limit after this decision, rows/s; null: unlimited. */
  readonly limit: number | null;
  /** What the next batch may run at: the limit under the operator's ceiling; null: unlimited. */
  readonly effectiveLimit: number | null;
  readonly reading: HealthReading;
  readonly at: string;
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

/**
 * The next decision. `limit` is the controller's current limit (null: unlimited) and
 * `observedRate` the chain's recent rows/s, which is where a slowdown starts from when no
 * limit is in force yet. `ceiling` is the operator's rows/s for this chain.
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
  const { reading } = input;
  const signals = [
    {
      name: 'probe latency',
      value: reading.probeMs,
      unit: 'ms',
      thresholds: policy.probeLatencyMs,
    },
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
  const worst = signals.some((signal) => signal.severity === 'pause')
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
  let effectiveLimit = limit;
  if (input.ceiling !== null && (effectiveLimit === null || effectiveLimit > input.ceiling)) {
    effectiveLimit = input.ceiling;
    if (state === ThrottleState.Healthy) {
      state = ThrottleState.Ceiling;
      reason = `operator ceiling ${round(input.ceiling)} rows/s`;
    }
  }
  return {
    state,
    reason,
    limit: limit === null ? null : round(limit),
    effectiveLimit: effectiveLimit === null ? null : round(effectiveLimit),
    reading,
    at: (input.now ?? new Date()).toISOString(),
  };
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
