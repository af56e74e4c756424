import { describe, expect, it } from 'vitest';
import {
  LEADING_BATCHES,
  OVERFLOW_DELAY_SECONDS,
  OVERFLOW_PER_STEP,
  OVERFLOW_STEP_SECONDS,
  type PlannedItem,
  planBatches,
  scheduleBatches,
} from '../../../domain/bulk/plan.ts';
import { EntityType } from '../../../domain/bulk/status.ts';

/**
 * How a job's items become item batches: one profile and entity type per batch, at most the
 * batch size, every item once; each profile's first LEADING_BATCHES batches lead the queue,
 * the rest interleaved round by round.
 */
describe('bulk batch planning', () => {
  const items: PlannedItem[] = [];
  let id = 1;
  // A large profile (25 keywords and 3 campaigns), two small ones.
  for (let i = 0; i < 25; i += 1) items.push({ id: id++, profileId: 1, entityType: EntityType.Keyword });
  for (let i = 0; i < 3; i += 1) items.push({ id: id++, profileId: 1, entityType: EntityType.Campaign });
  for (let i = 0; i < 4; i += 1) items.push({ id: id++, profileId: 2, entityType: EntityType.Keyword });
  for (let i = 0; i < 12; i += 1) items.push({ id: id++, profileId: 3, entityType: EntityType.Keyword });
  const batches = planBatches(items, 5);
  const byId = new Map(items.map((item) => [item.id, item]));

  it('puts every item in exactly one batch of one profile and entity type, at most the batch size', () => {
    expect(batches.flatMap((batch) => batch.itemIds).sort((a, b) => a - b)).toEqual(items.map((i) => i.id));
    for (const batch of batches) {
      expect(batch.itemIds.length).toBeLessThanOrEqual(5);
      const kinds = new Set(
        batch.itemIds.map((itemId) => `${byId.get(itemId)?.profileId}:${byId.get(itemId)?.entityType}`),
      );
      expect(kinds.size).toBe(1);
      expect(byId.get(batch.itemIds[0] as number)?.profileId).toBe(batch.profileId);
    }
  });

  it("leads with each profile's first batches, then interleaves the rest, full batches first", () => {
    const group = (batch: { itemIds: number[] }) => {
      const item = byId.get(batch.itemIds[0] as number);
      return `${item?.profileId}:${item?.entityType}`;
    };
    expect(LEADING_BATCHES).toBe(2);
    // Profile 1: 5 full keyword batches, then its partial campaign batch (3 items);
    // profile 2: one partial keyword batch; profile 3: two full keyword batches and a partial one.
    expect(batches.map(group)).toEqual([
      '1:keyword',
      '1:keyword',
      '2:keyword',
      '3:keyword',
      '3:keyword',
      '1:keyword',
      '3:keyword',
      '1:keyword',
      '1:keyword',
      '1:campaign',
    ]);
  });

  it("sends no profile's partial batch before one of its full batches", () => {
    for (const profileId of [1, 2, 3]) {
      const sizes = batches.filter((b) => b.profileId === profileId).map((b) => b.itemIds.length);
      expect(sizes).toEqual(sizes.toSorted((a, b) => b - a));
    }
    // So a profile's batches sent at once (its in-flight cap) are its full ones.
    const { now } = scheduleBatches(batches, 4);
    expect(now.filter((b) => b.profileId === 1).map((b) => b.itemIds.length)).toEqual([5, 5, 5, 5]);
  });
});

/**
 * Each profile's first `inFlight` batches go out at once, the rest delayed in steps: a
 * large profile's overflow does not sit in the queue ahead of other profiles' batches.
 */
describe('bulk batch scheduling', () => {
  const batch = (profileId: number, id: number) => ({ profileId, itemIds: [id] });

  it("sends each profile's first batches now and delays the rest in steps, at most 900 s", () => {
    const planned = [
      ...Array.from({ length: 4 + OVERFLOW_PER_STEP + 1 }, (_, i) => batch(1, i)),
      batch(2, 100),
      batch(2, 101),
    ];
    const { now, later } = scheduleBatches(planned, 4);
    expect(now.map((b) => b.itemIds[0])).toEqual([0, 1, 2, 3, 100, 101]);
    expect([...later.keys()]).toEqual([
      OVERFLOW_DELAY_SECONDS,
      OVERFLOW_DELAY_SECONDS + OVERFLOW_STEP_SECONDS,
    ]);
    expect(later.get(OVERFLOW_DELAY_SECONDS)).toHaveLength(OVERFLOW_PER_STEP);
    expect(later.get(OVERFLOW_DELAY_SECONDS + OVERFLOW_STEP_SECONDS)?.map((b) => b.itemIds[0])).toEqual([
      4 + OVERFLOW_PER_STEP,
    ]);
    const many = scheduleBatches(
      Array.from({ length: 2_000 }, (_, i) => batch(1, i)),
      1,
    );
    expect(Math.max(...many.later.keys())).toBe(900);
    expect([...many.later.values()].flat().length + many.now.length).toBe(2_000);
  });

  it('sends everything now without a cap', () => {
    const planned = Array.from({ length: 50 }, (_, i) => batch(1, i));
    const { now, later } = scheduleBatches(planned, Number.POSITIVE_INFINITY);
    expect(now).toHaveLength(50);
    expect(later.size).toBe(0);
  });
});
