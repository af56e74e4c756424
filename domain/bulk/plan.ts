import type { EntityType } from './status.ts';

/**
 * How a job's items become item batches: one batch is one Ads API call, so it holds items
 * of one profile (the call's scope) and one entity type (the endpoint), at most `batchSize`
 * of them. Batches are interleaved across profiles, so the queue does not hold one large
 * profile's whole share ahead of everyone else's. The first round takes LEADING_BATCHES of
 * each profile: a large profile's second in-flight slot (ADFLEET_BULK_PROFILE_IN_FLIGHT)
 * then starts at once, not after every other profile's first batch. The largest
 * profile sets the job's wall time, and while the fleet is busiest, at the start, one chain
 * of it alone cannot keep up with its rate (worker.ts).
 *
 * A profile's full batches come before its partial ones (the last batch of each entity
 * type): its first batches are the ones sent at once (scheduleBatches), and a full batch
 * is what tells the handler that the profile has more to apply and should keep its slot
 * chaining (worker.ts). A large profile with one campaign change led with that one-item
 * batch, whose handler ended without a chain, and ran on three of its four slots until
 * its overflow batches arrived 30 s later (a bench run: 23 calls in the first 28 s of a
 * 1 request/s profile).
 */

export const LEADING_BATCHES = 2;

export interface PlannedItem {
  readonly id: number;
  readonly profileId: number;
  readonly entityType: EntityType;
}

export interface PlannedBatch {
  readonly profileId: number;
  readonly itemIds: number[];
}

export function planBatches(items: readonly PlannedItem[], batchSize: number): PlannedBatch[] {
  const groups = new Map<string, PlannedBatch[]>();
  for (const item of items) {
    const key = `${item.profileId}:${item.entityType}`;
    let batches = groups.get(key);
    if (batches === undefined) {
      batches = [];
      groups.set(key, batches);
    }
    let last = batches.at(-1);
    if (last === undefined || last.itemIds.length >= batchSize) {
      last = { profileId: item.profileId, itemIds: [] };
      batches.push(last);
    }
    last.itemIds.push(item.id);
  }
  const byProfile = new Map<number, PlannedBatch[]>();
  for (const list of groups.values()) {
    const profileId = (list[0] as PlannedBatch).profileId;
    byProfile.set(profileId, [...(byProfile.get(profileId) ?? []), ...list]);
  }
  // Stable: full batches first, each entity type's in its items' order.
  const lists = [...byProfile.values()].map((list) =>
    list.toSorted((a, b) => b.itemIds.length - a.itemIds.length),
  );
  const interleaved: PlannedBatch[] = [];
  for (const list of lists) interleaved.push(...list.slice(0, LEADING_BATCHES));
  for (let round = LEADING_BATCHES; ; round += 1) {
    const before = interleaved.length;
    for (const list of lists) {
      const batch = list[round];
      if (batch !== undefined) interleaved.push(batch);
    }
    if (interleaved.length === before) return interleaved;
  }
}

/**
 * A profile's batches past its in-flight cap are not needed in the queue at once: the
 * first `inFlight` of them start chains (workers/bulk-item/worker.ts) that claim the
 * profile's next due items straight from the ledger, so the rest are a fallback for when no
 * chain runs (its worker died, it ended early). Sent at once, they sat in the queue ahead of
 * every later job's batches and were each received and deferred (the profile was at its
 * cap) before a small job's turn came. They go out delayed instead: the first overflow
 * batches after OVERFLOW_DELAY_SECONDS, then OVERFLOW_STEP_SECONDS later for every
 * OVERFLOW_PER_STEP more (a profile at 1 request/s applies about that many in that time),
 * at most SQS's 900 s. Their items are due at once all the same, so chains take them; a
 * message that arrives after its items were applied finds nothing to claim and is dropped.
 */
export const OVERFLOW_DELAY_SECONDS = 30;
export const OVERFLOW_STEP_SECONDS = 10;
export const OVERFLOW_PER_STEP = 10;

export interface ScheduledBatches {
  /** Each profile's first `inFlight` batches, in planned order. */
  readonly now: PlannedBatch[];
  /** The rest, by delay in seconds (ascending). */
  readonly later: ReadonlyMap<number, PlannedBatch[]>;
}

export function scheduleBatches(batches: readonly PlannedBatch[], inFlight: number): ScheduledBatches {
  const seen = new Map<number, number>();
  const now: PlannedBatch[] = [];
  const later = new Map<number, PlannedBatch[]>();
  for (const batch of batches) {
    const position = seen.get(batch.profileId) ?? 0;
    seen.set(batch.profileId, position + 1);
    if (position < inFlight) {
      now.push(batch);
      continue;
    }
    const step = Math.floor((position - inFlight) / OVERFLOW_PER_STEP);
    const delaySeconds = Math.min(900, OVERFLOW_DELAY_SECONDS + step * OVERFLOW_STEP_SECONDS);
    const list = later.get(delaySeconds) ?? [];
    list.push(batch);
    later.set(delaySeconds, list);
  }
  return { now, later: new Map([...later].sort(([a], [b]) => a - b)) };
}
