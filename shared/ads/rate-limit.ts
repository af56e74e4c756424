import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
} from 'cockatiel';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ThrottledError } from '../errors.ts';
import {
  ADAPTIVE_RATE_DEFAULTS,
  type AdaptiveRateOptions,
  afterThrottle,
  currentRate,
  initialRateState,
  type RateState,
  resumedAfterIdle,
} from './adaptive-rate.ts';
import { AdsThrottledError } from './errors.ts';

/**
 * Fleet-wide adaptive rate limiting for the Ads API: every worker on every task shares one
 * budget per profile and one per API client, through Redis.
 *
 * Two layers, each doing one job:
 *
 *  - ENFORCEMENT is a shared call schedule per scope in Redis (BOOK_SLOT below, one atomic
 *    Lua call): each call books the next slot, 1/rate after the one before, and waits for
 *    it, so calls leave evenly spaced at the scope's current rate, whatever process makes
 *    them, instead of as a burst (which a token bucket on Amazon's side would answer with
 *    429s). A rate change takes effect at the next booking; fractional rates are exact.
 *    Right before it leaves, a call also checks the scope's last departure (DEPART): a
 *    caller whose timer fired late (its event loop was busy) must not be followed by one
 *    that leaves on its slot, closer than one interval behind it.
 *
 *  - ADAPTATION (the schedule does not know the limit, which is unknown): each scope has a
 *    `RateState` hash in Redis — the estimated ceiling, the time of the last 429, successes
 *    since, and `blockedUntil` — plus per-second success counters. The allowed rate is a pure
 *    function of that state and the clock (adaptive-rate.ts: CUBIC-shaped recovery and
 *    probing, ceiling re-estimated from successes between 429s). A 429 rewrites the state
 *    with a compare-and-set (one writer wins; 429s from the same burst count once) and
 *    blocks the scope fleet-wide until Retry-After. Successes are counted in-process and
 *    flushed every `flushMs`, so the hot path costs two bookings and a cached state read.
 *
 * Only profile budgets adapt. Amazon does not say which limit a 429 hit, and charging the
 * client budget on ambiguous evidence collapses the whole fleet's throughput (we tried: a few
 * profile-level 429s misread as client-level cut the fleet to a fifth of capacity). The client
 * budget is a configured fleet-wide ceiling (`clientRatePerSecond`) that every process shares;
 * a client-wide limit below it still gets honoured, because every profile's estimate then
 * drops to the share it actually gets. 429s on calls without a profile block the client.
 *
 * Waiting never fails a message: when the wait would pass the caller's deadline, `acquire`
 * throws AdsThrottledError (a ThrottledError) and the chassis puts the message back after
 * that delay, off the DLQ budget.
 *
 * Redis down: the limiter must not fail the call (that would spend the message's retries
 * on an outage of a helper). A circuit breaker (cockatiel; 3 consecutive Redis failures,
 * half-open after 1 s doubling to 30 s) switches the process to a LOCAL, CONSERVATIVE
 * budget until Redis answers a half-open attempt: each process allows each profile
 * `localProfileRate` (default 1 request/s) and the whole client `localClientRate` (default
 * a twentieth of the fleet ceiling: the most tasks one Ads worker scales to), in
 * rate-limiter-flexible's RateLimiterMemory windows, and honours Retry-After locally.
 * Syncs and bulk items go on, slower; nothing adapts until Redis is back.
 *
 * Clocks: times are each process's Date.now(); tasks run NTP-synced, and a few milliseconds
 * of skew only shifts a 1-second window slightly.
 */

export interface AdsRateLimiterOptions {
  readonly redis: Redis;
  /** Namespace of every key; per-stage or per-test. */
  readonly keyPrefix: string;
  readonly clientId: string;
  readonly profileRate?: Partial<AdaptiveRateOptions>;
  /** Fleet-wide ceiling of the whole API client, in requests/s (not adapted; see above). */
  readonly clientRatePerSecond?: number;
  /**
   * False turns adaptation off: every scope stays at its `initialRate` (only Retry-After is
   * honoured). The benchmark's "fixed guess" baseline; not for production.
   */
  readonly adaptive?: boolean;
  /** How long a process trusts its copy of a scope's state. */
  readonly stateCacheMs?: number;
  /** How often counted successes are written to Redis. */
  readonly flushMs?: number;
  /** Requests/s per profile this process allows itself while Redis is down. @defaultValue 1 */
  readonly localProfileRate?: number;
  /** Requests/s of the whole client this process allows itself while Redis is down. @defaultValue client ceiling / 20 */
  readonly localClientRate?: number;
}

/** What a process allows itself per profile while Redis is down (see the class comment). */
export const LOCAL_PROFILE_RATE_PER_SECOND = 1;
/** The fleet ceiling divided by this is a process's client budget while Redis is down. */
export const LOCAL_CLIENT_RATE_SHARE = 20;

/** The client budget when none is configured; generous, since profiles adapt beneath it. */
export const DEFAULT_CLIENT_RATE_PER_SECOND = 2_000;

/** What `acquire` hands back. */
export interface RatePermit {
  /** The scope's rate when the call was admitted (for logs and metrics). */
  readonly ratePerSecond: number;
}

export interface AcquireOptions {
  readonly signal?: AbortSignal;
  /** Epoch ms: waiting past this throws AdsThrottledError instead. */
  readonly deadline?: number;
}

interface Scope {
  readonly kind: 'profile' | 'client';
  readonly id: string;
  readonly stateKey: string;
  readonly options: AdaptiveRateOptions;
}

interface ScopeView {
  readonly state: RateState;
  readonly version: number;
  /** Fleet-wide successes per second over the last one to two seconds. */
  readonly recentSuccessRate: number;
  readonly fetchedAt: number;
}

const WINDOW_MS = 1_000;
/**
 * Scopes unused for two days are forgotten; the next use starts from the initial rate again.
 * Longer than a day so that a profile touched only by the nightly sync finds last night's
 * estimate tonight instead of slow-starting from the initial rate (a day's TTL expired at
 * about the time the next night's sync began).
 */
const STATE_TTL_MS = 48 * 60 * 60 * 1000;
/**
 * A scope with no success in this many seconds (fleet-wide) is idle: longer than the gap
 * between a slow profile's calls, which a one-second view mistook for idleness.
 */
const IDLE_SECONDS = 5;
const SUCCESS_BUCKET_TTL_MS = (IDLE_SECONDS + 1) * 1000;
const CAS_ATTEMPTS = 8;

/** How far ahead a call may book its slot; a caller whose slot is further off waits and asks again. */
const SLOT_HORIZON_MS = 1_000;

/*
 * The scope's call schedule, GCRA-style: KEYS[1] holds the time of the next free slot. A call
 * takes max(that, now) and moves it one interval on, so calls leave exactly 1/rate apart at
 * any rate, fractions of a request per second included, whichever process makes them.
 * Written here rather than taken from rate-limiter-flexible: its limiters count calls in
 * windows of whole points (a 1.5 req/s scope gets 1 or 2 per second, and each window starts
 * at the first call after the last one ended, a lag every second), and it has no schedule.
 * Times are Redis's clock, so processes' clocks do not skew the spacing.
 * Returns {1, ms to wait for the slot} or {0, ms until a slot is within the horizon}.
 */
const BOOK_SLOT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if slot - now > horizon then return {0, math.ceil(slot - now - horizon)} end
redis.call('SET', KEYS[1], string.format('%.3f', slot + interval), 'PX', math.ceil(slot + interval - now) + 1000)
return {1, math.floor(slot - now)}
`;

/*
 * The scope's departures: KEYS[1] holds the time the last call left. A call may leave once
 * ARGV[1] ms have passed since then; otherwise it learns how long to wait. The schedule above
 * spaces the slots, but a caller's timer fires late whenever its event loop is busy (tens of
 * ms on a loaded task), and a late call followed by an on-time one reaches Amazon closer than
 * one interval apart: at a burst of one, a 429. Checking the spacing of the departures
 * themselves keeps every pair at least one interval apart, whoever was late. KEYS[2] is the
 * schedule: no slot is booked less than one interval after a departure, so lateness moves
 * the schedule on instead of piling callers up here.
 * Returns 0 (leave now, recorded) or the ms to wait before asking again.
 */
const DEPART = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local spacing = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if now - last < spacing then return math.ceil(last + spacing - now) end
redis.call('SET', KEYS[1], string.format('%.3f', now), 'PX', math.ceil(spacing) + 1000)
local slot = tonumber(redis.call('GET', KEYS[2]) or '0')
if slot < now + spacing then
  redis.call('SET', KEYS[2], string.format('%.3f', now + spacing), 'PX', math.ceil(spacing) + 1000)
end
return 0
`;

// Writes the state's fields only if nobody wrote since we read it (optimistic concurrency).
const COMPARE_AND_SET = `
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', version + 1, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

function encodeState(state: RateState): string[] {
  return [
    'ceiling',
    String(state.ceiling),
    'since',
    String(state.since),
    'throttledBefore',
    state.throttledBefore ? '1' : '0',
    'successes',
    String(state.successes),
    'blockedUntil',
    String(state.blockedUntil),
    // Always written (0: none), so a state reset over an anchored one clears it.
    'anchor',
    String(state.anchor ?? 0),
  ];
}

function decodeState(fields: Record<string, string>): { state: RateState; version: number } | undefined {
  if (fields.ceiling === undefined || fields.since === undefined) return undefined;
  return {
    state: {
      ceiling: Number(fields.ceiling),
      since: Number(fields.since),
      throttledBefore: fields.throttledBefore === '1',
      successes: Number(fields.successes ?? 0),
      blockedUntil: Number(fields.blockedUntil ?? 0),
      ...(Number(fields.anchor ?? 0) > 0 ? { anchor: Number(fields.anchor) } : {}),
    },
    version: Number(fields.version ?? 0),
  };
}

export class AdsRateLimiter {
  private readonly redis: Redis;
  private readonly keyPrefix: string;
  private readonly clientScope: Scope;
  private readonly profileOptions: AdaptiveRateOptions;
  private readonly adaptive: boolean;
  private readonly stateCacheMs: number;
  private readonly flushMs: number;
  private readonly views = new Map<string, ScopeView>();
  private readonly reading = new Map<string, Promise<ScopeView>>();
  /** Successes counted since the last flush, by state key. */
  private pendingSuccesses = new Map<string, { readonly scope: Scope; count: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly redisBreaker: CircuitBreakerPolicy;
  private readonly localProfile: RateLimiterMemory;
  private readonly localClient: RateLimiterMemory;
  /** Retry-After blocks recorded while Redis was down, by state key. */
  private readonly localBlocks = new Map<string, number>();
  /** Calls admitted from the local budget (Redis down), for logs and tests. */
  localAdmissions = 0;

  constructor(options: AdsRateLimiterOptions) {
    this.redis = options.redis;
    this.keyPrefix = options.keyPrefix;
    this.adaptive = options.adaptive ?? true;
    this.stateCacheMs = options.stateCacheMs ?? 100;
    this.flushMs = options.flushMs ?? 100;
    this.profileOptions = { ...ADAPTIVE_RATE_DEFAULTS, ...options.profileRate };
    // The client scope never adapts: its "initial" rate is the configured ceiling, forever.
    const clientRate = options.clientRatePerSecond ?? DEFAULT_CLIENT_RATE_PER_SECOND;
    this.clientScope = this.scope('client', options.clientId, {
      ...ADAPTIVE_RATE_DEFAULTS,
      initialRate: clientRate,
      maxRate: clientRate,
    });
    this.redis.defineCommand('adsRateCompareAndSet', { numberOfKeys: 1, lua: COMPARE_AND_SET });
    this.redis.defineCommand('adsRateBookSlot', { numberOfKeys: 1, lua: BOOK_SLOT });
    this.redis.defineCommand('adsRateDepart', { numberOfKeys: 2, lua: DEPART });
    // Only Redis failures count: a throttle (the budget is spent) or an abort is an answer.
    this.redisBreaker = circuitBreaker(
      handleWhen(
        (error) =>
          !(error instanceof ThrottledError) && !(error instanceof Error && error.name === 'AbortError'),
      ),
      {
        halfOpenAfter: new ExponentialBackoff({ initialDelay: 1_000, maxDelay: 30_000 }),
        breaker: new ConsecutiveBreaker(3),
      },
    );
    this.localProfile = new RateLimiterMemory({
      points: Math.max(1, Math.floor(options.localProfileRate ?? LOCAL_PROFILE_RATE_PER_SECOND)),
      duration: WINDOW_MS / 1000,
    });
    this.localClient = new RateLimiterMemory({
      points: Math.max(1, Math.floor(options.localClientRate ?? clientRate / LOCAL_CLIENT_RATE_SHARE)),
      duration: WINDOW_MS / 1000,
    });
  }

  /** True while Redis is considered down and the local budget applies. */
  get degraded(): boolean {
    return this.redisBreaker.state !== CircuitState.Closed;
  }

  /** Waits until one call to `profileId` (or a client-wide call when undefined) is within budget. */
  async acquire(profileId: number | undefined, options: AcquireOptions = {}): Promise<RatePermit> {
    try {
      return await this.redisBreaker.execute(() => this.acquireShared(profileId, options));
    } catch (error) {
      if (error instanceof ThrottledError || (error instanceof Error && error.name === 'AbortError'))
        throw error;
      if (options.signal?.aborted) throw error;
      // Redis failed (or its breaker is open): the conservative local budget.
      return this.acquireLocal(profileId, options);
    }
  }

  /** The local budget (Redis down): fixed per-process windows and locally recorded Retry-After blocks. */
  private async acquireLocal(profileId: number | undefined, options: AcquireOptions): Promise<RatePermit> {
    const { signal } = options;
    const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
    const windows: Array<readonly [RateLimiterMemory, Scope]> = [
      ...(profileId === undefined ? [] : [[this.localProfile, this.profileScope(profileId)] as const]),
      [this.localClient, this.clientScope] as const,
    ];
    for (const [limiter, scope] of windows) {
      for (;;) {
        signal?.throwIfAborted();
        const blockedUntil = Math.max(
          this.localBlocks.get(scope.stateKey) ?? 0,
          this.localBlocks.get(this.clientScope.stateKey) ?? 0,
        );
        if (blockedUntil > Date.now()) {
          await this.wait(blockedUntil - Date.now(), deadline, profileId, signal);
          continue;
        }
        try {
          await limiter.consume(scope.id);
          break;
        } catch (rejection) {
          if (!(rejection instanceof RateLimiterRes)) throw rejection;
          await this.wait(Math.max(1, rejection.msBeforeNext), deadline, profileId, signal);
        }
      }
    }
    this.localAdmissions += 1;
    return { ratePerSecond: profileId === undefined ? this.localClient.points : this.localProfile.points };
  }

  private async acquireShared(profileId: number | undefined, options: AcquireOptions): Promise<RatePermit> {
    const { signal } = options;
    const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
    const profileScope = profileId === undefined ? undefined : this.profileScope(profileId);
    for (;;) {
      signal?.throwIfAborted();
      const [profileView, clientView] = await Promise.all([
        profileScope === undefined ? undefined : this.view(profileScope),
        this.view(this.clientScope),
      ]);
      const now = Date.now();
      const blockedUntil = Math.max(profileView?.state.blockedUntil ?? 0, clientView.state.blockedUntil);
      if (blockedUntil > now) {
        await this.wait(blockedUntil - now, deadline, profileId, signal);
        continue;
      }
      let slotDelayMs = 0;
      let ratePerSecond = 0;
      let spacingMs = 0;
      if (profileScope !== undefined && profileView !== undefined) {
        const slot = await this.take(profileScope, this.rateOf(profileScope, profileView, now));
        if (!slot.admitted) {
          await this.wait(slot.retryInMs, deadline, profileId, signal);
          continue;
        }
        slotDelayMs = slot.slotDelayMs;
        ratePerSecond = slot.ratePerSecond;
        spacingMs = slot.intervalMs;
      }
      for (;;) {
        const slot = await this.take(this.clientScope, this.rateOf(this.clientScope, clientView, Date.now()));
        if (slot.admitted) {
          if (slotDelayMs > 0) {
            await sleep(slotDelayMs, undefined, { signal });
            // Another worker may have hit a 429 while we waited for the slot: the slot, booked
            // at the rate before it, is forfeit rather than spent adding to the same congestion.
            if (profileScope !== undefined && profileView !== undefined) {
              const { state } = await this.view(profileScope);
              if (state.since !== profileView.state.since || state.blockedUntil > Date.now()) break;
            }
          }
          if (profileScope !== undefined) await this.depart(profileScope, spacingMs, signal);
          return { ratePerSecond };
        }
        await this.wait(slot.retryInMs, deadline, profileId, signal);
      }
    }
  }

  /** A call admitted by `acquire` got an answer that was not a 429. */
  recordSuccess(profileId: number | undefined): void {
    // Successes feed only the estimates of scopes that adapt (profiles): counting the
    // client's would cost Redis writes nobody reads.
    if (profileId === undefined) return;
    const scope = this.profileScope(profileId);
    if (!this.adapts(scope)) return;
    this.countSuccess(scope);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      // Success counts feed the estimates only; losing a batch to a Redis blip is harmless.
      this.flush().catch(() => {});
    }, this.flushMs).unref();
  }

  /** A call got 429: lower the guilty scope's shared rate and block it until Retry-After. */
  async recordThrottle(profileId: number | undefined, retryAfterMs: number): Promise<void> {
    const scope = profileId === undefined ? this.clientScope : this.profileScope(profileId);
    const blockedUntil = Date.now() + retryAfterMs;
    this.localBlocks.set(scope.stateKey, Math.max(this.localBlocks.get(scope.stateKey) ?? 0, blockedUntil));
    try {
      await this.redisBreaker.execute(() => this.recordSharedThrottle(scope, retryAfterMs));
    } catch {
      // Redis down: the block above holds for this process, the fleet learns nothing.
    }
  }

  private async recordSharedThrottle(scope: Scope, retryAfterMs: number): Promise<void> {
    await this.flush().catch(() => {});
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const view = await this.read(scope);
      const now = Date.now();
      const next = this.adapts(scope)
        ? afterThrottle(view.state, now, retryAfterMs, scope.options, view.recentSuccessRate)
        : { ...view.state, blockedUntil: Math.max(view.state.blockedUntil, now + retryAfterMs) };
      if (await this.compareAndSet(scope, view.version, next)) {
        this.views.set(scope.stateKey, { ...view, state: next, version: view.version + 1, fetchedAt: now });
        // A new congestion event forfeits every slot booked before it (acquireShared), but
        // the schedule still counted them: the first call after the block waited behind
        // up to two intervals of slots nobody would use (at 1 request/s, a second more per
        // 429). The schedule restarts with the block; callers book again once it ends.
        // The last departure goes with it: the block, Amazon's own Retry-After, is the
        // spacing the next call needs.
        if (next.since !== view.state.since)
          await this.redis.del(this.slotKey(scope), this.departureKey(scope));
        return;
      }
    }
    // Every attempt lost to other writers, who were recording the same congestion.
  }

  /** The rate a scope runs at now, as this process sees it (for logs, metrics and tests). */
  async currentRate(profileId: number | undefined): Promise<number> {
    const scope = profileId === undefined ? this.clientScope : this.profileScope(profileId);
    if (this.degraded) return profileId === undefined ? this.localClient.points : this.localProfile.points;
    return this.rateOf(scope, await this.view(scope), Date.now());
  }

  /** Writes pending success counts; call before the process exits. */
  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.degraded) return; // the counts are estimates; a Redis that is down keeps the stop from hanging
    await this.flush();
  }

  private adapts(scope: Scope): boolean {
    return this.adaptive && scope.kind === 'profile';
  }

  private rateOf(scope: Scope, view: ScopeView, now: number): number {
    if (!this.adapts(scope)) return scope.options.initialRate;
    return currentRate(view.state, now, scope.options, view.recentSuccessRate);
  }

  private async wait(ms: number, deadline: number, profileId: number | undefined, signal?: AbortSignal) {
    if (Date.now() + ms > deadline) throw new AdsThrottledError(profileId, ms);
    await sleep(ms, undefined, { signal });
  }

  /**
   * Books the scope's next call slot: `1000 / rate` ms after the one before, never in the
   * past, at most SLOT_HORIZON_MS (or one interval, if longer) ahead; how long to wait for it.
   */
  private async take(
    scope: Scope,
    rate: number,
  ): Promise<
    | { admitted: true; slotDelayMs: number; ratePerSecond: number; intervalMs: number }
    | { admitted: false; retryInMs: number }
  > {
    const intervalMs = WINDOW_MS / Math.max(rate, Number.MIN_VALUE);
    const redis = this.redis as Redis & {
      adsRateBookSlot(key: string, intervalMs: number, horizonMs: number): Promise<[number, number]>;
    };
    const [admitted, ms] = await redis.adsRateBookSlot(
      this.slotKey(scope),
      intervalMs,
      Math.max(SLOT_HORIZON_MS, intervalMs),
    );
    if (admitted === 1) return { admitted: true, slotDelayMs: ms, ratePerSecond: rate, intervalMs };
    return { admitted: false, retryInMs: Math.max(1, ms) };
  }

  /**
   * Waits until at least `spacingMs` have passed since the scope's last call left (DEPART),
   * and records this one's departure. Not bounded by the caller's deadline: the wait is at
   * most one interval past a slot the caller already holds.
   */
  private async depart(scope: Scope, spacingMs: number, signal?: AbortSignal): Promise<void> {
    const redis = this.redis as Redis & {
      adsRateDepart(departureKey: string, slotKey: string, spacingMs: number): Promise<number>;
    };
    for (;;) {
      const waitMs = await redis.adsRateDepart(this.departureKey(scope), this.slotKey(scope), spacingMs);
      if (waitMs <= 0) return;
      await sleep(waitMs, undefined, { signal });
    }
  }

  private scope(kind: Scope['kind'], id: string, options: AdaptiveRateOptions): Scope {
    return { kind, id, stateKey: `${this.keyPrefix}:ads:rate:${kind}:${id}`, options };
  }

  private profileScope(profileId: number): Scope {
    return this.scope('profile', String(profileId), this.profileOptions);
  }

  /** The scope's call schedule (BOOK_SLOT): the time of its next free slot. */
  private slotKey(scope: Scope): string {
    return `${this.keyPrefix}:ads:slot:${scope.kind}:${scope.id}`;
  }

  /** When the scope's last call left (DEPART). */
  private departureKey(scope: Scope): string {
    return `${this.keyPrefix}:ads:departed:${scope.kind}:${scope.id}`;
  }

  private successKey(scope: Scope, second: number): string {
    return `${scope.stateKey}:ok:${second}`;
  }

  private countSuccess(scope: Scope): void {
    const pending = this.pendingSuccesses.get(scope.stateKey);
    if (pending === undefined) this.pendingSuccesses.set(scope.stateKey, { scope, count: 1 });
    else pending.count += 1;
  }

  private async flush(): Promise<void> {
    if (this.pendingSuccesses.size === 0) return;
    const batch = this.pendingSuccesses;
    this.pendingSuccesses = new Map();
    const second = Math.floor(Date.now() / 1000);
    const pipeline = this.redis.pipeline();
    for (const { scope, count } of batch.values()) {
      const bucket = this.successKey(scope, second);
      pipeline.hincrby(scope.stateKey, 'successes', count);
      pipeline.pexpire(scope.stateKey, STATE_TTL_MS);
      pipeline.incrby(bucket, count);
      pipeline.pexpire(bucket, SUCCESS_BUCKET_TTL_MS);
    }
    await pipeline.exec();
  }

  private async view(scope: Scope): Promise<ScopeView> {
    const cached = this.views.get(scope.stateKey);
    if (cached !== undefined && Date.now() - cached.fetchedAt < this.stateCacheMs) return cached;
    let reading = this.reading.get(scope.stateKey);
    if (reading === undefined) {
      reading = this.read(scope).finally(() => this.reading.delete(scope.stateKey));
      this.reading.set(scope.stateKey, reading);
    }
    return reading;
  }

  /** The scope's state straight from Redis (created on first use), cached for `view`. */
  private async read(scope: Scope): Promise<ScopeView> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const now = Date.now();
      const second = Math.floor(now / 1000);
      const pipeline = this.redis.pipeline().hgetall(scope.stateKey);
      // Success counts exist only for scopes that adapt (see recordSuccess); oldest first.
      if (this.adapts(scope)) {
        for (let back = IDLE_SECONDS - 1; back >= 0; back -= 1)
          pipeline.get(this.successKey(scope, second - back));
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed !== undefined) throw failed[0];
      const [stateResult, ...buckets] = results;
      const counts = buckets.map(([, value]) => Number(value ?? 0));
      const previous = counts.at(-2) ?? 0;
      const current = counts.at(-1) ?? 0;
      const decoded = decodeState((stateResult?.[1] ?? {}) as Record<string, string>);
      if (decoded === undefined) {
        const version = Number(((stateResult?.[1] ?? {}) as Record<string, string>).version ?? 0);
        await this.compareAndSet(scope, version, initialRateState(now, scope.options));
        continue;
      }
      // Sliding-window estimate: last full second plus the part of this one gone by.
      const recentSuccessRate = (previous + current) / (1 + (now % 1000) / 1000);
      const resumed = this.adapts(scope)
        ? resumedAfterIdle(
            decoded.state,
            now,
            scope.options,
            counts.reduce((sum, count) => sum + count, 0),
          )
        : undefined;
      if (resumed !== undefined) {
        // One process wins the write; the others re-read and find the resumed state.
        await this.compareAndSet(scope, decoded.version, resumed);
        continue;
      }
      const view: ScopeView = { ...decoded, recentSuccessRate, fetchedAt: now };
      this.views.set(scope.stateKey, view);
      return view;
    }
    throw new Error(`could not initialise rate state ${scope.stateKey}: too much write contention`);
  }

  private async compareAndSet(scope: Scope, version: number, state: RateState): Promise<boolean> {
    const redis = this.redis as Redis & {
      adsRateCompareAndSet(key: string, version: number, ttlMs: number, ...fields: string[]): Promise<number>;
    };
    return (
      (await redis.adsRateCompareAndSet(scope.stateKey, version, STATE_TTL_MS, ...encodeState(state))) === 1
    );
  }
}
