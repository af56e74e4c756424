import type pg from 'pg';
import type { AdsApiClient } from '../../shared/ads/client.ts';
import type { Keyword } from '../../shared/ads/types.ts';
import { FatalError } from '../../shared/errors.ts';
import {
  markSynced,
  profileExists,
  upsertAdGroups,
  upsertCampaigns,
  upsertKeywords,
  upsertProfiles,
} from './store.ts';

/** Entities per list call: the v3 list endpoints' page size. */
const PAGE_SIZE = 100;

export interface SyncCounts {
  readonly campaigns: number;
  readonly adGroups: number;
  readonly keywords: number;
}

/** Batches an async iterator into arrays of `size`, for one upsert per page. */
async function* pages<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let page: T[] = [];
  for await (const item of items) {
    page.push(item);
    if (page.length === size) {
      yield page;
      page = [];
    }
  }
  if (page.length > 0) yield page;
}

/** Every profile the credentials can see, upserted; returns their ids. */
export async function refreshProfiles(
  ads: AdsApiClient,
  db: pg.Pool,
  signal: AbortSignal,
): Promise<number[]> {
  const profiles = await ads.listProfiles({ signal });
  await upsertProfiles(db, profiles);
  return profiles.map((profile) => profile.profileId);
}

/**
 * Pulls one profile's campaigns, ad groups and keywords page by page (parents first, so
 * every foreign key exists) and upserts each page. The client waits inside the profile's
 * shared rate limit, or throws a ThrottledError the chassis turns into a deferral. A sync
 * interrupted half way is simply repeated: every write is an upsert.
 */
export async function syncProfile(
  ads: AdsApiClient,
  db: pg.Pool,
  profileId: number,
  signal: AbortSignal,
): Promise<SyncCounts> {
  if (!(await profileExists(db, profileId))) {
    const known = await refreshProfiles(ads, db, signal);
    if (!known.includes(profileId))
      throw new FatalError(`profile ${profileId} is not accessible with these credentials`);
  }
  let campaigns = 0;
  let adGroups = 0;
  let keywords = 0;
  for await (const page of pages(ads.campaigns(profileId, { maxResults: PAGE_SIZE, signal }), PAGE_SIZE)) {
    await upsertCampaigns(db, profileId, page);
    campaigns += page.length;
  }
  for await (const page of pages(ads.adGroups(profileId, { maxResults: PAGE_SIZE, signal }), PAGE_SIZE)) {
    await upsertAdGroups(db, profileId, page);
    adGroups += page.length;
  }
  for await (const page of pages<Keyword>(
    ads.keywords(profileId, { maxResults: PAGE_SIZE, signal }),
    PAGE_SIZE,
  )) {
    await upsertKeywords(db, profileId, page);
    keywords += page.length;
  }
  await markSynced(db, profileId);
  return { campaigns, adGroups, keywords };
}
