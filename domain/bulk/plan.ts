import type { EntityType } from './status.ts';

/**
 * How a job's items become item batches: one batch is one Ads API call, so it holds items
 * of one profile (the call's scope) and one entity type (the endpoint), at most `batchSize`
 * of them. Batches are interleaved across profiles, so the queue does not hold one large
 * profile's whole share ahead of everyone else's. The first round takes LEADING_BATCHES of
 * each group: a large profile's second in-flight slot (ADFLEET_BULK_PROFILE_IN_FLIGHT)
 * then starts at once, not after every other profile's first batch. The largest
 * profile sets the job's wall time, and while the fleet is busiest, at the start, one chain
 * of it alone cannot keep up with its rate (worker.ts).
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
  const interleaved: PlannedBatch[] = [];
  const lists = [...groups.values()];
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
