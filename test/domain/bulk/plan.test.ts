import { describe, expect, it } from 'vitest';
import { LEADING_BATCHES, type PlannedItem, planBatches } from '../../../domain/bulk/plan.ts';
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

  it("leads with each group's first batches, then interleaves the rest", () => {
    const group = (batch: { itemIds: number[] }) => {
      const item = byId.get(batch.itemIds[0] as number);
      return `${item?.profileId}:${item?.entityType}`;
    };
    expect(LEADING_BATCHES).toBe(2);
    // Groups: 1:keyword (5 batches), 1:campaign (1), 2:keyword (1), 3:keyword (3).
    expect(batches.map(group)).toEqual([
      '1:keyword',
      '1:keyword',
      '1:campaign',
      '2:keyword',
      '3:keyword',
      '3:keyword',
      '1:keyword',
      '3:keyword',
      '1:keyword',
      '1:keyword',
    ]);
  });
});
