import { describe, expect, it } from 'vitest';
import { longestFirst } from '../../../domain/sync/requests.ts';

/** The fan-out's send order: the night cannot end before its longest sync does. */
describe('longestFirst', () => {
  it('sends never-synced profiles first, then by the last good sync’s duration, longest first', () => {
    const order = longestFirst([
      { profileId: 5, lastGoodMs: 1_200 },
      { profileId: 9, lastGoodMs: null },
      { profileId: 2, lastGoodMs: 48_000 },
      { profileId: 7, lastGoodMs: 900 },
      { profileId: 3, lastGoodMs: null },
      { profileId: 4, lastGoodMs: 48_000 },
    ]);
    expect(order.map((entry) => entry.profileId)).toEqual([3, 9, 2, 4, 5, 7]);
  });

  it('keeps every entry and leaves its input as it was', () => {
    const input = [
      { profileId: 1, lastGoodMs: 10 },
      { profileId: 2, lastGoodMs: 20 },
    ];
    expect(longestFirst(input)).toHaveLength(2);
    expect(input.map((entry) => entry.profileId)).toEqual([1, 2]);
  });
});
