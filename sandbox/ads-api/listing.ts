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

function page<T>(
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
  const matching = !filtered
    ? all
    : removed.size === 0
      ? all.filter(keep)
      : all.filter((entity) => !removed.has(idOf(entity)) && keep(entity));
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
