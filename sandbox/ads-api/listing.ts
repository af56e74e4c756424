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

function included<T>(filter: { include: readonly T[] } | undefined, value: T): boolean {
  return filter === undefined || filter.include.includes(value);
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
  const matching = filtered ? all.filter((entity) => !removed.has(idOf(entity)) && keep(entity)) : all;
  const offset = decodeToken(request.nextToken);
  const size = request.maxResults ?? DEFAULT_PAGE_SIZE;
  const items = matching.slice(offset, offset + size);
  const next = offset + size < matching.length ? encodeToken(offset + size) : undefined;
  return { items, totalResults: matching.length, ...(next === undefined ? {} : { nextToken: next }) };
}

export function listCampaigns(data: ProfileData, request: PageRequest) {
  const { items, ...rest } = page(
    data.campaigns,
    data.removed.campaign,
    (campaign) => campaign.campaignId,
    request,
    (campaign) =>
      included(request.stateFilter, campaign.state) &&
      included(request.campaignIdFilter, campaign.campaignId),
  );
  return { campaigns: items, ...rest };
}

export function listAdGroups(data: ProfileData, request: PageRequest) {
  const { items, ...rest } = page(
    data.adGroups,
    data.removed.adGroup,
    (adGroup) => adGroup.adGroupId,
    request,
    (adGroup) =>
      included(request.stateFilter, adGroup.state) &&
      included(request.campaignIdFilter, adGroup.campaignId) &&
      included(request.adGroupIdFilter, adGroup.adGroupId),
  );
  return { adGroups: items, ...rest };
}

export function listKeywords(data: ProfileData, request: PageRequest) {
  const { items, ...rest } = page(
    data.keywords,
    data.removed.keyword,
    (keyword) => keyword.keywordId,
    request,
    (keyword) =>
      included(request.stateFilter, keyword.state) &&
      included(request.campaignIdFilter, keyword.campaignId) &&
      included(request.adGroupIdFilter, keyword.adGroupId) &&
      included(request.keywordIdFilter, keyword.keywordId),
  );
  return { keywords: items, ...rest };
}
