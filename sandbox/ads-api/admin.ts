import type { AccessTokens } from './auth.ts';
import type { BucketSpec, CapacityModel } from './capacity.ts';
import type { EntityKind, ProfileSizes, SeededAdsData } from './data.ts';
import { applyChanges, type EntityChange, type EntityView, entityView, setRemoved } from './entities.ts';
import type { Arrival, MutationCounts, SandboxStats, StatsRecorder } from './stats.ts';

/**
 * What a test (in process) or the admin HTTP routes (out of process) can do to the sandbox,
 * over the state the API routes serve from.
 */

export interface FaultSpec {
  /** The next N API requests (after admission) fail with `status`. */
  readonly failNext?: number;
  /** Every API request fails with this probability (0..1). */
  readonly errorRate?: number;
  /** Status of injected failures; 503 unless set. */
  readonly status?: number;
  /** Extra delay before every API response. */
  readonly latencyMs?: number;
  /**
   * Each API request (after admission) is held `slowMs` before it is handled, with this
   * probability (0..1): longer than the caller's timeout, the call times out on its side
   * while the change is still applied, as when Amazon answers too late.
   */
  readonly slowRate?: number;
  /** How long a request picked by `slowRate` is held; 15 s unless set. */
  readonly slowMs?: number;
}

/** Everything the routes and the admin share; `faults` is replaced whole on injection. */
export interface SandboxState {
  readonly data: SeededAdsData;
  readonly capacity: CapacityModel;
  readonly tokens: AccessTokens;
  readonly stats: StatsRecorder;
  readonly maxPageSize: number;
  faults: FaultSpec & { remaining: number };
}

export interface SandboxAdmin {
  stats(): SandboxStats;
  mutations(): MutationCounts;
  /**
   * Of those, the ones applied by a request `slowRate` held until its caller had given up
   * (timed out or gone): the caller never saw them, so it sends them again.
   */
  unansweredMutations(): MutationCounts;
  /** Starts (afresh) or stops recording every request's arrival and outcome per profile. */
  recordArrivals(on: boolean): void;
  /** A profile's recorded arrivals, oldest first. */
  arrivals(profileId: number): readonly Arrival[];
  profileIds(): number[];
  /** Without `profileId`: the default for every profile, existing buckets included. */
  setProfileCapacity(spec: BucketSpec, profileId?: number): void;
  profileCapacity(profileId: number): BucketSpec;
  setClientCapacity(spec: BucketSpec): void;
  injectFaults(spec: FaultSpec): void;
  expireTokens(): void;
  /**
   * While on, the LWA grant answers 400 `invalid_grant` and API calls with any token answer
   * 401, as when an advertiser revokes the app. Off again, unexpired tokens work again.
   */
  refuseCredentials(refuse: boolean): void;
  /** The entity as the API would return it now; undefined if unknown or removed. */
  entity<K extends EntityKind>(kind: K, id: number): EntityView[K] | undefined;
  /** As if deleted at Amazon: lists skip them, updates answer ENTITY_NOT_FOUND. Unknown ids throw. */
  removeEntities(kind: EntityKind, ids: readonly number[]): void;
  /** Undoes `removeEntities`. */
  restoreEntities(kind: EntityKind, ids: readonly number[]): void;
  /** Edits made outside the fleet (not counted as mutations); all or none are applied. */
  updateEntities(kind: EntityKind, changes: readonly EntityChange[]): void;
  /** A new profile of the given shape (entities generated on first use); returns its id. */
  addProfile(sizes: ProfileSizes & { readonly countryCode?: string }): number;
  /** Counters, faults and credential refusal back to normal; data and capacity stay as they are. */
  reset(): void;
}

export function createAdmin(state: SandboxState): SandboxAdmin {
  const { data, capacity, tokens, stats } = state;
  return {
    stats: () => stats.snapshot(),
    mutations: () => stats.mutations(),
    unansweredMutations: () => stats.unansweredMutations(),
    recordArrivals: (on) => stats.recordArrivals(on),
    arrivals: (profileId) => stats.arrivals(profileId),
    profileIds: () => data.profiles.map((profile) => profile.profileId),
    setProfileCapacity: (spec, profileId) => capacity.setProfileCapacity(spec, profileId, Date.now()),
    profileCapacity: (profileId) => capacity.profileCapacity(profileId),
    setClientCapacity: (spec) => capacity.setClientCapacity(spec, Date.now()),
    injectFaults: (spec) => {
      state.faults = { ...spec, remaining: spec.failNext ?? 0 };
    },
    expireTokens: () => tokens.expireAll(Date.now()),
    refuseCredentials: (refuse) => tokens.refuse(refuse),
    entity: (kind, id) => entityView(data, kind, id),
    removeEntities: (kind, ids) => setRemoved(data, kind, ids, true),
    restoreEntities: (kind, ids) => setRemoved(data, kind, ids, false),
    updateEntities: (kind, changes) => applyChanges(data, kind, changes),
    addProfile: (sizes) => data.addProfile(sizes).profileId,
    reset: () => {
      stats.reset();
      state.faults = { remaining: 0 };
      tokens.refuse(false);
    },
  };
}
