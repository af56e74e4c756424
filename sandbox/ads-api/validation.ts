import type { AmazonItemError } from '../../shared/ads/types.ts';
import type { MutableCampaign, MutableKeyword, ProfileData } from './data.ts';

/**
 * The rules Amazon applies to each item of a v3 bulk update, producing the per-item errors
 * of a 207 response. Each check returns Amazon's error shape (`errorType` plus an
 * `errorValue` keyed by that type) or undefined when the item is valid.
 */

function itemError(errorType: string, reason: string, message: string): AmazonItemError {
  return { errorType, errorValue: { [errorType]: { reason, message } } };
}

const EDITABLE_STATES = new Set(['ENABLED', 'PAUSED']);

export type KeywordCheck =
  | { readonly ok: true; readonly keyword: MutableKeyword; readonly bid?: number; readonly state?: string }
  | { readonly ok: false; readonly error: AmazonItemError };

export function checkKeywordUpdate(data: ProfileData, item: unknown, seen: Set<string>): KeywordCheck {
  if (typeof item !== 'object' || item === null) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'MALFORMED_VALUE', 'item must be an object'),
    };
  }
  const { keywordId, bid, state } = item as { keywordId?: unknown; bid?: unknown; state?: unknown };
  if (typeof keywordId !== 'string' || keywordId === '') {
    return { ok: false, error: itemError('malformedValueError', 'MISSING_VALUE', 'keywordId is required') };
  }
  if (seen.has(keywordId)) {
    return {
      ok: false,
      error: itemError('duplicateValueError', 'DUPLICATE_VALUE', `keywordId ${keywordId} appears twice`),
    };
  }
  seen.add(keywordId);
  const keyword = data.keywordsById.get(keywordId);
  if (keyword === undefined) {
    return {
      ok: false,
      error: itemError('entityNotFoundError', 'ENTITY_NOT_FOUND', `keyword ${keywordId} not found`),
    };
  }
  if (keyword.state === 'ARCHIVED') {
    return {
      ok: false,
      error: itemError('entityStateError', 'ENTITY_IS_ARCHIVED', `keyword ${keywordId} is archived`),
    };
  }
  if (bid === undefined && state === undefined) {
    return { ok: false, error: itemError('malformedValueError', 'MISSING_VALUE', 'nothing to update') };
  }
  if (bid !== undefined) {
    const { min, max } = data.marketplace.bid;
    if (typeof bid !== 'number' || !Number.isFinite(bid)) {
      return {
        ok: false,
        error: itemError('malformedValueError', 'MALFORMED_VALUE', 'bid must be a number'),
      };
    }
    if (bid < min || bid > max) {
      return {
        ok: false,
        error: itemError(
          'bidError',
          bid < min ? 'BID_BELOW_MINIMUM' : 'BID_ABOVE_MAXIMUM',
          `bid must be between ${min} and ${max} ${data.marketplace.currencyCode}`,
        ),
      };
    }
  }
  if (state !== undefined && (typeof state !== 'string' || !EDITABLE_STATES.has(state))) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'INVALID_STATE', 'state must be ENABLED or PAUSED'),
    };
  }
  return { ok: true, keyword, bid: bid as number | undefined, state: state as string | undefined };
}

export type CampaignCheck =
  | {
      readonly ok: true;
      readonly campaign: MutableCampaign;
      readonly budget?: number;
      readonly state?: string;
    }
  | { readonly ok: false; readonly error: AmazonItemError };

export function checkCampaignUpdate(data: ProfileData, item: unknown, seen: Set<string>): CampaignCheck {
  if (typeof item !== 'object' || item === null) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'MALFORMED_VALUE', 'item must be an object'),
    };
  }
  const { campaignId, budget, state } = item as { campaignId?: unknown; budget?: unknown; state?: unknown };
  if (typeof campaignId !== 'string' || campaignId === '') {
    return { ok: false, error: itemError('malformedValueError', 'MISSING_VALUE', 'campaignId is required') };
  }
  if (seen.has(campaignId)) {
    return {
      ok: false,
      error: itemError('duplicateValueError', 'DUPLICATE_VALUE', `campaignId ${campaignId} appears twice`),
    };
  }
  seen.add(campaignId);
  const campaign = data.campaignsById.get(campaignId);
  if (campaign === undefined) {
    return {
      ok: false,
      error: itemError('entityNotFoundError', 'ENTITY_NOT_FOUND', `campaign ${campaignId} not found`),
    };
  }
  if (campaign.state === 'ARCHIVED') {
    return {
      ok: false,
      error: itemError('entityStateError', 'ENTITY_IS_ARCHIVED', `campaign ${campaignId} is archived`),
    };
  }
  if (budget === undefined && state === undefined) {
    return { ok: false, error: itemError('malformedValueError', 'MISSING_VALUE', 'nothing to update') };
  }
  let amount: number | undefined;
  if (budget !== undefined) {
    amount = (budget as { budget?: unknown } | null)?.budget as number | undefined;
    const { min, max } = data.marketplace.dailyBudget;
    if (typeof amount !== 'number' || !Number.isFinite(amount)) {
      return {
        ok: false,
        error: itemError('malformedValueError', 'MALFORMED_VALUE', 'budget.budget must be a number'),
      };
    }
    if (amount < min || amount > max) {
      return {
        ok: false,
        error: itemError(
          'budgetError',
          amount < min ? 'BUDGET_BELOW_MINIMUM' : 'BUDGET_ABOVE_MAXIMUM',
          `daily budget must be between ${min} and ${max} ${data.marketplace.currencyCode}`,
        ),
      };
    }
  }
  if (state !== undefined && (typeof state !== 'string' || !EDITABLE_STATES.has(state))) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'INVALID_STATE', 'state must be ENABLED or PAUSED'),
    };
  }
  return { ok: true, campaign, budget: amount, state: state as string | undefined };
}
