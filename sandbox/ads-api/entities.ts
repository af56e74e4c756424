import type { AdGroup, Campaign, EntityState, Keyword } from '../../shared/ads/types.ts';
import type { EntityKind, EntityOf, ProfileData, SeededAdsData } from './data.ts';

/**
 * Changes made at "Amazon" behind the fleet's back, for tests of sync change detection: an
 * entity deleted or restored, a bid, budget or state edited in the console. None of them is
 * counted as a mutation (the fleet did not make them) and none is checked against
 * marketplace bounds (Amazon's console enforces those, and a test may want odd values).
 */

/** What a test reads back: a copy of the entity as the API would return it. */
export interface EntityView {
  campaign: Campaign;
  adGroup: AdGroup;
  keyword: Keyword;
}

export interface EntityChange {
  readonly id: number;
  /** Keyword bid, or an ad group's default bid. */
  readonly bid?: number;
  /** A campaign's daily budget. */
  readonly budget?: number;
  readonly state?: EntityState;
}

/** An id the sandbox never generated: the admin route answers 404. */
export class UnknownEntityError extends Error {}

/** A change that does not fit the kind (a budget on a keyword): the admin route answers 400. */
export class InapplicableChangeError extends Error {}

const CHANGE_FIELDS: Record<EntityKind, readonly ('bid' | 'budget' | 'state')[]> = {
  campaign: ['budget', 'state'],
  adGroup: ['bid', 'state'],
  keyword: ['bid', 'state'],
};

function located<K extends EntityKind>(
  data: SeededAdsData,
  kind: K,
  id: number,
): { readonly data: ProfileData; readonly entity: EntityOf[K] } {
  const found = data.locate(kind, String(id));
  if (found === undefined) throw new UnknownEntityError(`no ${kind} ${id}`);
  return found;
}

export function entityView<K extends EntityKind>(
  data: SeededAdsData,
  kind: K,
  id: number,
): EntityView[K] | undefined {
  const found = data.locate(kind, String(id));
  if (found === undefined || found.data.removed[kind].has(String(id))) return undefined;
  return structuredClone(found.entity) as EntityView[K];
}

/** Marks entities removed (`removed: true`) or back (`false`); every id is checked first. */
export function setRemoved(
  data: SeededAdsData,
  kind: EntityKind,
  ids: readonly number[],
  removed: boolean,
): void {
  const targets = ids.map((id) => located(data, kind, id).data);
  ids.forEach((id, index) => {
    const set = (targets[index] as ProfileData).removed[kind];
    if (removed) set.add(String(id));
    else set.delete(String(id));
  });
}

/** Applies every change or none: all are checked before the first is applied. */
export function applyChanges(data: SeededAdsData, kind: EntityKind, changes: readonly EntityChange[]): void {
  const allowed = CHANGE_FIELDS[kind];
  const targets = changes.map((change) => {
    for (const field of ['bid', 'budget', 'state'] as const) {
      if (change[field] !== undefined && !allowed.includes(field)) {
        throw new InapplicableChangeError(`a ${kind} has no ${field} (it takes ${allowed.join(', ')})`);
      }
    }
    return located(data, kind, change.id).entity;
  });
  changes.forEach((change, index) => {
    const entity = targets[index] as EntityOf[EntityKind];
    if (change.state !== undefined) entity.state = change.state;
    if (change.bid !== undefined) {
      if ('keywordId' in entity) entity.bid = change.bid;
      else if ('adGroupId' in entity) entity.defaultBid = change.bid;
    }
    if (change.budget !== undefined && 'budget' in entity) {
      entity.budget = { budget: change.budget, budgetType: 'DAILY' };
    }
  });
}
