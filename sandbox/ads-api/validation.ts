import type { AmazonItemError } from '../../shared/ads/types.ts';
import { liveEntity, type MutableCampaign, type MutableKeyword, type ProfileData } from './data.ts';

/**
 * The rules Amazon applies to each item of a v3 bulk update, producing the per-item errors
 * of a 207 response. Each check returns `{ ok: true, … }` with the entity and the validated
 * changes, or `{ ok: false, error }` with Amazon's error shape (`errorType` plus an
 * `errorValue` keyed by that type).
 */

function itemError(errorType: string, reason: string, message: string): AmazonItemError {
  return { errorType, errorValue: { [errorType]: { reason, message } } };
}

const EDITABLE_STATES = new Set(['ENABLED', 'PAUSED']);

type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: AmazonItemError };

/** What differs between the editable entity kinds: names, where to look them up, their own change. */
interface EditableKind<TEntity, TChange> {
  /** Used in messages: `keyword`, `campaign`. */
  readonly noun: string;
  /** The item's id field: `keywordId`, `campaignId`. */
  readonly idField: string;
  /** The item's kind-specific change field: `bid`, `budget`. */
  readonly changeField: string;
  /** The entity the API can see (not removed), or undefined. */
  readonly find: (id: string) => TEntity | undefined;
  /** Validates the change field when present (after the shared steps, before the state). */
  readonly checkChange: (change: unknown) => Checked<TChange>;
}

type Editable<TEntity, TChange> =
  | { readonly ok: true; readonly entity: TEntity; readonly change?: TChange; readonly state?: string }
  | { readonly ok: false; readonly error: AmazonItemError };

/**
 * The steps every update item goes through, in Amazon's order: an object, with an id, not
 * repeated within the request, of an existing entity that is not archived, changing something;
 * then the kind's own change and finally the state.
 */
function lookupEditable<TEntity extends { readonly state: string }, TChange>(
  item: unknown,
  seen: Set<string>,
  kind: EditableKind<TEntity, TChange>,
): Editable<TEntity, TChange> {
  if (typeof item !== 'object' || item === null) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'MALFORMED_VALUE', 'item must be an object'),
    };
  }
  const fields = item as Readonly<Record<string, unknown>>;
  const id = fields[kind.idField];
  const change = fields[kind.changeField];
  const { state } = fields;
  if (typeof id !== 'string' || id === '') {
    return {
      ok: false,
      error: itemError('malformedValueError', 'MISSING_VALUE', `${kind.idField} is required`),
    };
  }
  if (seen.has(id)) {
    return {
      ok: false,
      error: itemError('duplicateValueError', 'DUPLICATE_VALUE', `${kind.idField} ${id} appears twice`),
    };
  }
  seen.add(id);
  const entity = kind.find(id);
  if (entity === undefined) {
    return {
      ok: false,
      error: itemError('entityNotFoundError', 'ENTITY_NOT_FOUND', `${kind.noun} ${id} not found`),
    };
  }
  if (entity.state === 'ARCHIVED') {
    return {
      ok: false,
      error: itemError('entityStateError', 'ENTITY_IS_ARCHIVED', `${kind.noun} ${id} is archived`),
    };
  }
  if (change === undefined && state === undefined) {
    return { ok: false, error: itemError('malformedValueError', 'MISSING_VALUE', 'nothing to update') };
  }
  let value: TChange | undefined;
  if (change !== undefined) {
    const checked = kind.checkChange(change);
    if (!checked.ok) return checked;
    value = checked.value;
  }
  if (state !== undefined && (typeof state !== 'string' || !EDITABLE_STATES.has(state))) {
    return {
      ok: false,
      error: itemError('malformedValueError', 'INVALID_STATE', 'state must be ENABLED or PAUSED'),
    };
  }
  return { ok: true, entity, change: value, state: state as string | undefined };
}

export type KeywordCheck =
  | { readonly ok: true; readonly keyword: MutableKeyword; readonly bid?: number; readonly state?: string }
  | { readonly ok: false; readonly error: AmazonItemError };

export function checkKeywordUpdate(data: ProfileData, item: unknown, seen: Set<string>): KeywordCheck {
  const result = lookupEditable(item, seen, {
    noun: 'keyword',
    idField: 'keywordId',
    changeField: 'bid',
    find: (id) => liveEntity(data, 'keyword', id),
    checkChange: (bid): Checked<number> => {
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
      return { ok: true, value: bid };
    },
  });
  if (!result.ok) return result;
  return { ok: true, keyword: result.entity, bid: result.change, state: result.state };
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
  const result = lookupEditable(item, seen, {
    noun: 'campaign',
    idField: 'campaignId',
    changeField: 'budget',
    find: (id) => liveEntity(data, 'campaign', id),
    checkChange: (budget): Checked<number> => {
      const amount = (budget as { budget?: unknown } | null)?.budget;
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
      return { ok: true, value: amount };
    },
  });
  if (!result.ok) return result;
  return { ok: true, campaign: result.entity, budget: result.change, state: result.state };
}
