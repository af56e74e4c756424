/**
 * The sandbox's hidden capacity: one token bucket per profile and one per API client, like the
 * limits Amazon enforces but never publishes. A request needs a token from both; when either
 * is empty the request gets 429 with Retry-After, and the profile's bucket is not charged if
 * the client's was the one that refused (and vice versa), as a real gateway checks before work.
 */

export interface BucketSpec {
  /** Sustained requests per second. */
  readonly ratePerSecond: number;
  /** Bucket size: requests that may go through at once after a quiet spell. */
  readonly burst: number;
}

/** A bucket of `burst` tokens refilled continuously at `ratePerSecond`. */
export class TokenBucket {
  private spec: BucketSpec;
  private tokens: number;
  private refilledAt: number;

  constructor(spec: BucketSpec, now: number) {
    this.spec = spec;
    this.tokens = spec.burst;
    this.refilledAt = now;
  }

  get current(): BucketSpec {
    return this.spec;
  }

  /** Changes the limits at run time; tokens above the new burst are lost, as on a real downgrade. */
  reconfigure(spec: BucketSpec, now: number): void {
    this.refill(now);
    this.spec = spec;
    this.tokens = Math.min(this.tokens, spec.burst);
  }

  /** Milliseconds until one token will be available; 0 if one is available now. */
  waitMs(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) return 0;
    return ((1 - this.tokens) / this.spec.ratePerSecond) * 1000;
  }

  take(now: number): void {
    this.refill(now);
    this.tokens -= 1;
  }

  private refill(now: number): void {
    const elapsedSeconds = Math.max(0, now - this.refilledAt) / 1000;
    this.tokens = Math.min(this.spec.burst, this.tokens + elapsedSeconds * this.spec.ratePerSecond);
    // Requests are metered by their arrival, and one stamped earlier may be metered after a
    // later one: time never runs back, or the same refill would be counted twice.
    this.refilledAt = Math.max(this.refilledAt, now);
  }
}

export type ThrottleScope = 'profile' | 'client';

export type Admission =
  | { readonly admitted: true }
  | { readonly admitted: false; readonly scope: ThrottleScope; readonly retryAfterMs: number };

export interface CapacityOptions {
  readonly profileDefault: BucketSpec;
  readonly client: BucketSpec;
}

/** Buckets for every profile and client the sandbox has seen, created lazily. */
export class CapacityModel {
  private profileDefault: BucketSpec;
  private clientSpec: BucketSpec;
  private readonly profileOverrides = new Map<number, BucketSpec>();
  private readonly profileBuckets = new Map<number, TokenBucket>();
  private readonly clientBuckets = new Map<string, TokenBucket>();

  constructor(options: CapacityOptions) {
    this.profileDefault = options.profileDefault;
    this.clientSpec = options.client;
  }

  admit(clientId: string, profileId: number | undefined, now: number): Admission {
    const client = this.clientBucket(clientId, now);
    const profile = profileId === undefined ? undefined : this.profileBucket(profileId, now);
    const clientWait = client.waitMs(now);
    const profileWait = profile?.waitMs(now) ?? 0;
    if (profileWait > 0) return { admitted: false, scope: 'profile', retryAfterMs: profileWait };
    if (clientWait > 0) return { admitted: false, scope: 'client', retryAfterMs: clientWait };
    client.take(now);
    profile?.take(now);
    return { admitted: true };
  }

  /** Sets one profile's capacity, or every profile's default (and all existing buckets) without one. */
  setProfileCapacity(spec: BucketSpec, profileId: number | undefined, now: number): void {
    if (profileId === undefined) {
      this.profileDefault = spec;
      this.profileOverrides.clear();
      for (const bucket of this.profileBuckets.values()) bucket.reconfigure(spec, now);
      return;
    }
    this.profileOverrides.set(profileId, spec);
    this.profileBuckets.get(profileId)?.reconfigure(spec, now);
  }

  setClientCapacity(spec: BucketSpec, now: number): void {
    this.clientSpec = spec;
    for (const bucket of this.clientBuckets.values()) bucket.reconfigure(spec, now);
  }

  profileCapacity(profileId: number): BucketSpec {
    return this.profileOverrides.get(profileId) ?? this.profileDefault;
  }

  private profileBucket(profileId: number, now: number): TokenBucket {
    let bucket = this.profileBuckets.get(profileId);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.profileCapacity(profileId), now);
      this.profileBuckets.set(profileId, bucket);
    }
    return bucket;
  }

  private clientBucket(clientId: string, now: number): TokenBucket {
    let bucket = this.clientBuckets.get(clientId);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.clientSpec, now);
      this.clientBuckets.set(clientId, bucket);
    }
    return bucket;
  }
}
