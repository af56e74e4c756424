/**
 * What the sandbox counts so a test can check the fleet's behaviour from the outside:
 * requests and 429s per profile and per client, LWA grants, and how many times each entity
 * had a mutation applied ("applied exactly once" is `mutations.keywords[id] === 1`).
 */

export interface RequestCounters {
  /** Requests that reached the capacity check (authenticated, well-formed). */
  requests: number;
  /** Of those, refused with 429. */
  throttled: number;
  /** Of those, refused with an injected 5xx. */
  failed: number;
}

export interface SandboxStats {
  readonly totals: RequestCounters;
  readonly profiles: Record<string, RequestCounters>;
  readonly clients: Record<string, RequestCounters>;
  /** Successful `grant_type=refresh_token` exchanges. */
  readonly lwaGrants: number;
  /** Requests refused with 401 (missing, wrong or expired access token). */
  readonly unauthorized: number;
}

export interface MutationCounts {
  readonly keywords: Record<string, number>;
  readonly campaigns: Record<string, number>;
}

/** One request at the capacity check, when arrivals are recorded (`recordArrivals`). */
export interface Arrival {
  /** Epoch ms. */
  readonly at: number;
  readonly outcome: 'ok' | 'throttled' | 'failed';
}

function emptyCounters(): RequestCounters {
  return { requests: 0, throttled: 0, failed: 0 };
}

export class StatsRecorder {
  private totals = emptyCounters();
  private profiles = new Map<string, RequestCounters>();
  private clients = new Map<string, RequestCounters>();
  private keywordMutations = new Map<string, number>();
  private campaignMutations = new Map<string, number>();
  private unanswered: Record<keyof MutationCounts, Map<string, number>> = {
    keywords: new Map(),
    campaigns: new Map(),
  };
  /** Per profile, every request's arrival while recording is on (a bench's timeline). */
  private arrivalLog: Map<string, Arrival[]> | undefined;
  lwaGrants = 0;
  unauthorized = 0;

  /** Starts (afresh) or stops recording each profile's arrivals. */
  recordArrivals(on: boolean): void {
    this.arrivalLog = on ? new Map() : undefined;
  }

  arrivals(profileId: number): readonly Arrival[] {
    return [...(this.arrivalLog?.get(String(profileId)) ?? [])];
  }

  record(
    clientId: string,
    profileId: number | undefined,
    outcome: 'ok' | 'throttled' | 'failed',
    at: number = Date.now(),
  ): void {
    if (this.arrivalLog !== undefined && profileId !== undefined) {
      const key = String(profileId);
      const log = this.arrivalLog.get(key) ?? [];
      log.push({ at, outcome });
      this.arrivalLog.set(key, log);
    }
    const targets = [this.totals, this.countersOf(this.clients, clientId)];
    if (profileId !== undefined) targets.push(this.countersOf(this.profiles, String(profileId)));
    for (const counters of targets) {
      counters.requests += 1;
      if (outcome === 'throttled') counters.throttled += 1;
      if (outcome === 'failed') counters.failed += 1;
    }
  }

  /** `unanswered`: applied for a caller that had already given up (see FaultSpec.slowRate). */
  recordMutation(kind: 'keywords' | 'campaigns', entityId: string, unanswered = false): void {
    const counts = kind === 'keywords' ? this.keywordMutations : this.campaignMutations;
    counts.set(entityId, (counts.get(entityId) ?? 0) + 1);
    if (unanswered) this.unanswered[kind].set(entityId, (this.unanswered[kind].get(entityId) ?? 0) + 1);
  }

  snapshot(): SandboxStats {
    return structuredClone({
      totals: this.totals,
      profiles: Object.fromEntries(this.profiles),
      clients: Object.fromEntries(this.clients),
      lwaGrants: this.lwaGrants,
      unauthorized: this.unauthorized,
    });
  }

  mutations(): MutationCounts {
    return {
      keywords: Object.fromEntries(this.keywordMutations),
      campaigns: Object.fromEntries(this.campaignMutations),
    };
  }

  unansweredMutations(): MutationCounts {
    return {
      keywords: Object.fromEntries(this.unanswered.keywords),
      campaigns: Object.fromEntries(this.unanswered.campaigns),
    };
  }

  reset(): void {
    this.unanswered = { keywords: new Map(), campaigns: new Map() };
    this.totals = emptyCounters();
    this.profiles = new Map();
    this.clients = new Map();
    this.keywordMutations = new Map();
    this.campaignMutations = new Map();
    this.lwaGrants = 0;
    this.unauthorized = 0;
  }

  private countersOf(map: Map<string, RequestCounters>, key: string): RequestCounters {
    let counters = map.get(key);
    if (counters === undefined) {
      counters = emptyCounters();
      map.set(key, counters);
    }
    return counters;
  }
}
