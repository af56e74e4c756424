import { describe, expect, it } from 'vitest';
import { MISSING_RESULT, mapMultiStatus } from '../../../shared/ads/multi-status.ts';
import type { AmazonItemError, KeywordUpdate, MultiStatusPart } from '../../../shared/ads/types.ts';

function update(keywordId: string, bid = 1): KeywordUpdate {
  return { keywordId, bid };
}

function amazonError(errorType: string, message: string): AmazonItemError {
  return { errorType, errorValue: { [errorType]: { reason: 'X', message } } };
}

describe('207 multi-status mapping', () => {
  it('gives every item exactly one result, at its own index, with Amazon error for failures', () => {
    const items = [update('k0'), update('k1'), update('k2'), update('k3')];
    const part: MultiStatusPart = {
      // Amazon does not promise any order inside the lists.
      success: [
        { index: 3, keywordId: 'k3' },
        { index: 0, keywordId: 'k0' },
      ],
      error: [
        { index: 2, errors: [amazonError('bidError', 'bid must be between 0.02 and 1000 USD')] },
        { index: 1, errors: [amazonError('entityNotFoundError', 'keyword k1 not found')] },
      ],
    };
    const results = mapMultiStatus(items, part, 'keywordId');
    expect(results.map((result) => result.index)).toEqual([0, 1, 2, 3]);
    expect(results.map((result) => result.item)).toEqual(items);
    expect(results[0]).toMatchObject({ ok: true, entityId: 'k0' });
    expect(results[3]).toMatchObject({ ok: true, entityId: 'k3' });
    expect(results[1]).toMatchObject({
      ok: false,
      retryable: false,
      code: 'entityNotFoundError',
      message: 'keyword k1 not found',
    });
    expect(results[2]).toMatchObject({ ok: false, retryable: false, code: 'bidError' });
  });

  it('reports an item Amazon did not mention as a retryable failure, and ignores indexes never sent', () => {
    const items = [update('k0'), update('k1')];
    const results = mapMultiStatus(
      items,
      {
        success: [
          { index: 0, keywordId: 'k0' },
          { index: 7, keywordId: 'k7' },
        ],
        error: [],
      },
      'keywordId',
    );
    expect(results).toHaveLength(2);
    expect(results[1]).toMatchObject({ ok: false, retryable: true, code: MISSING_RESULT });
  });

  it("treats Amazon's own transient item errors as retryable", () => {
    const results = mapMultiStatus(
      [update('k0')],
      { success: [], error: [{ index: 0, errors: [amazonError('internalServerError', 'try later')] }] },
      'keywordId',
    );
    expect(results[0]).toMatchObject({ ok: false, retryable: true, code: 'internalServerError' });
  });
});
