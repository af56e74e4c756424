import { describe, expect, it } from 'vitest';
import {
  DEFAULT_THROTTLE_POLICY,
  decideLatencyThrottle,
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

describe('throttle policy on a latency target', () => {
  const target = resolvePolicy({ latencyTarget: { maxRatio: 1.5, probeSql: 'SELECT 1' } });
  const latencyPolicy = {
    ...target,
    latencyTarget: target.latencyTarget as NonNullable<typeof target.latencyTarget>,
  };
  const verdict = {
    phase: 'pacing' as const,
    over: false,
    limit: 4_000,
    batchSize: 400,
    baselineP99Ms: 1,
    probeP99Ms: 1.2,
    samples: 100,
    exceeding: 1,
    overAt: 4,
    allowed: 0.01,
    baselineSamples: 250,
    heldBy: null,
    revision: 3,
  };

  it('paces by the verdict, says why, and shows baseline and probe p99', () => {
    const under = decideLatencyThrottle(latencyPolicy, { verdict, ceiling: null, reading: healthy });
    expect(under).toMatchObject({
      state: 'healthy',
      limit: 4_000,
      effectiveLimit: 4_000,
      batchSize: 400,
      latency: { targetRatio: 1.5, baselineP99Ms: 1, probeP99Ms: 1.2, source: 'probe' },
    });
    const over = decideLatencyThrottle(latencyPolicy, {
      verdict: { ...verdict, over: true, probeP99Ms: 2, exceeding: 9 },
      ceiling: null,
      reading: healthy,
    });
    expect(over.state).toBe('slowed');
    expect(over.reason).toBe(
      'over target: probe p99 2.00ms vs 1.5 x baseline 1.00ms; 9 of 100 probes slower (over at 4)',
    );
    expect(
      decideLatencyThrottle(latencyPolicy, {
        verdict: { ...verdict, phase: 'learning' },
        ceiling: null,
        reading: healthy,
      }).state,
    ).toBe('learning');
    expect(decideLatencyThrottle(latencyPolicy, { verdict, ceiling: 1_000, reading: healthy })).toMatchObject(
      {
        state: 'ceiling',
        effectiveLimit: 1_000,
      },
    );
  });

  it('keeps the health signals as hard pauses, and ignores their slow thresholds', () => {
    const slowHealth = { ...healthy, probeMs: DEFAULT_THROTTLE_POLICY.probeLatencyMs.slow + 10 };
    expect(decideLatencyThrottle(latencyPolicy, { verdict, ceiling: null, reading: slowHealth }).state).toBe(
      'healthy',
    );
    const paused = decideLatencyThrottle(latencyPolicy, {
      verdict,
      ceiling: null,
      reading: { ...healthy, activeConnections: 65 },
    });
    expect(paused).toMatchObject({ state: 'paused', limit: 4_000 });
    expect(paused.reason).toMatch(/active connections 65 > 64/);
  });

  it('turns on over the defaults and off again with null', () => {
    expect(resolvePolicy().latencyTarget).toBeNull();
    expect(target.latencyTarget).toMatchObject({ maxRatio: 1.5, sampleEveryMs: 20, windowMs: 5_000 });
    expect(resolvePolicy(target, { latencyTarget: null }).latencyTarget).toBeNull();
  });
});
