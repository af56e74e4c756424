import { type Campaign, EntityState, type Keyword } from '../../shared/ads/types.ts';
import type { CampaignChange, KeywordChange } from './rows.ts';
import { FleetErrorCode } from './status.ts';

/**
 * Read before re-send: an item whose last attempt ended without Amazon's answer may have been
 * applied all the same — the call timed out while Amazon worked on it, or the worker died
 * between Amazon's answer and its record (its lease ran out). Sending it again would apply it
 * twice. So before such an item is sent again, its entity is read back, and an entity already
 * holding the requested change ends the item SUCCEEDED with what was read as its response.
 * Only the entity's value is compared: a value equal to the request is the outcome the user
 * asked for, whichever call put it there. An archived entity never holds a change: Amazon
 * refuses every change to it (ENTITY_IS_ARCHIVED), so none of the attempts applied one, and
 * one whose value happened to equal the request ended SUCCEEDED after a read-back but FAILED
 * without one. It is sent again, and Amazon's refusal is its answer.
 */

/** The code outcomes.ts gives a call sent and never answered (timed out, connection lost). */
export const NO_ANSWER = 'NETWORK_OR_TIMEOUT';

/** Error codes of an attempt that ended without Amazon's answer (outcomes.ts, sweep.ts). */
export const UNANSWERED_ERROR_CODES: ReadonlySet<string> = new Set([
  FleetErrorCode.LeaseExpired,
  NO_ANSWER,
  'TIMEOUT',
]);

export function needsReadBack(item: { readonly lastErrorCode: string | null }): boolean {
  return item.lastErrorCode !== null && UNANSWERED_ERROR_CODES.has(item.lastErrorCode);
}

/** True when the keyword read back already holds every field of the change, and is not archived. */
export function keywordHolds(keyword: Keyword, change: KeywordChange): boolean {
  return (
    keyword.state !== EntityState.Archived &&
    (change.bid === undefined || keyword.bid === change.bid) &&
    (change.state === undefined || keyword.state === change.state)
  );
}

/** True when the campaign read back already holds every field of the change, and is not archived. */
export function campaignHolds(campaign: Campaign, change: CampaignChange): boolean {
  return (
    campaign.state !== EntityState.Archived &&
    (change.budget === undefined || campaign.budget.budget === change.budget) &&
    (change.state === undefined || campaign.state === change.state)
  );
}
