import type { ListRequest } from '../../shared/ads/types.ts';
import type { ProfileData } from './data.ts';

/**
 * The v3 list endpoints: filter by state and ids, then one page of `maxResults` from the
 * offset inside `nextToken`. The token is opaque to clients (base64 of the offset) and
 * stable because the seeded entity order never changes.
 */

export type PageRequest = ListRequest;

const DEFAULT_PAGE_SIZE = 100;

function decodeToken(token: string | undefined): number {
  if (token === undefined) return 0;
  try {
    const { offset } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { offset?: unknown };
    if (typeof offset === 'number' && Number.isInteger(offset) && offset >= 0) return offset;
  } catch {
    // fall through: a malformed token is the client's error
  }
  throw new RangeError('nextToken is invalid');
}

function encodeToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString('base64url');
}

/**
 * A filter's test, made once per request: a filtered page scans every entity of the profile
 * (100,000 keywords for the largest), so the filter's ids are a set, not searched per entity.
 */
function includer<T>(filter: { include: readonly T[] } | undefined): (value: T) => boolean {
  if (filter === undefined) return () => true;
  const ids = new Set(filter.include);
  return (value) => ids.has(value);
}

/**
 * Positions of each campaign's entities in a profile's list, built once per list (entities are
 * only ever appended, when a profile is generated, and never change campaign): a page filtered
 * by campaign looks at those campaigns' entities, not at all of the profile's. The largest
 * profile's keywords are listed in parts by campaign, each page of which scanned all 100,000.
 */
const campaignIndexes = new WeakMap<
  readonly unknown[],
  { length: number; byCampaign: Map<string, number[]> }
>();

function campaignIndex<T extends { readonly campaignId: string }>(all: readonly T[]): Map<string, number[]> {
  const cached = campaignIndexes.get(all);
  if (cached !== undefined && cached.length === all.length) return cached.byCampaign;
  const byCampaign = new Map<string, number[]>();
  all.forEach((entity, position) => {
    const positions = byCampaign.get(entity.campaignId);
    if (positions === undefined) byCampaign.set(entity.campaignId, [position]);
    else positions.push(position);
  });
  campaignIndexes.set(all, { length: all.length, byCampaign });
  return byCampaign;
}

/** The entities a campaign filter can match, in the list's order (every entity without one). */
function candidates<T extends { readonly campaignId: string }>(
  all: readonly T[],
  request: PageRequest,
): readonly T[] {
  const filter = request.campaignIdFilter;
  if (filter === undefined) return all;
  const index = campaignIndex(all);
  const positions = filter.include.flatMap((campaignId) => index.get(campaignId) ?? []);
  positions.sort((a, b) => a - b);
  return positions.map((position) => all[position] as T);
}

function page<T extends { readonly campaignId: string }>(
  all: readonly T[],
  removed: ReadonlySet<string>,
  idOf: (entity: T) => string,
  request: PageRequest,
  keep: (entity: T) => boolean,
): { items: T[]; nextToken?: string; totalResults: number } {
  const filtered =
    removed.size > 0 ||
    request.stateFilter !== undefined ||
    request.campaignIdFilter !== undefined ||
    request.adGroupIdFilter !== undefined ||
    request.keywordIdFilter !== undefined;
  // Unfiltered pages are slices, so paging a 100,000-keyword profile does not scan it per page.
  // Removed entities are gone as at Amazon: later pages shift, as they would there.
  const from = filtered ? candidates(all, request) : all;
  const matching = !filtered
    ? all
    : removed.size === 0
      ? from.filter(keep)
      : from.filter((entity) => !removed.has(idOf(entity)) && keep(entity));
  const offset = decodeToken(request.nextToken);
  const size = request.maxResults ?? DEFAULT_PAGE_SIZE;
  const items = matching.slice(offset, offset + size);
  const next = offset + size < matching.length ? encodeToken(offset + size) : undefined;
  return { items, totalResults: matching.length, ...(next === undefined ? {} : { nextToken: next }) };
}

export function listCampaigns(data: ProfileData, request: PageRequest) {
  const campaignId = includer<string>(request.campaignIdFilter);
  const state = includer<string>(request.stateFilter);
  const { items, ...rest } = page(
    data.campaigns,
    data.removed.campaign,
    (campaign) => campaign.campaignId,
    request,
    (campaign) => state(campaign.state) && campaignId(campaign.campaignId),
  );
  return { campaigns: items, ...rest };
}

export function listAdGroups(data: ProfileData, request: PageRequest) {
  const adGroupId = includer<string>(request.adGroupIdFilter);
  const campaignId = includer<string>(request.campaignIdFilter);
  const state = includer<string>(request.stateFilter);
  const { items, ...rest } = page(
    data.adGroups,
    data.removed.adGroup,
    (adGroup) => adGroup.adGroupId,
    request,
    (adGroup) => state(adGroup.state) && campaignId(adGroup.campaignId) && adGroupId(adGroup.adGroupId),
  );
  return { adGroups: items, ...rest };
}

export function listKeywords(data: ProfileData, request: PageRequest) {
  const adGroupId = includer<string>(request.adGroupIdFilter);
  const campaignId = includer<string>(request.campaignIdFilter);
  const keywordId = includer<string>(request.keywordIdFilter);
  const state = includer<string>(request.stateFilter);
  const { items, ...rest } = page(
    data.keywords,
    data.removed.keyword,
    (keyword) => keyword.keywordId,
    request,
    (keyword) =>
      state(keyword.state) &&
      campaignId(keyword.campaignId) &&
      adGroupId(keyword.adGroupId) &&
      keywordId(keyword.keywordId),
  );
  return { keywords: items, ...rest };
}
