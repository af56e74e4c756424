import type pg from 'pg';
import type { AdsApiClient, ListPage } from '../../shared/ads/client.ts';
import { AdsApiError } from '../../shared/ads/errors.ts';
import type { ListFilter } from '../../shared/ads/types.ts';
import { entityIds, upsertProfiles } from './entities.ts';
import { ENTITY_KINDS, type EntityKind, type RunCounts } from './model.ts';
import {
  type ClaimedRun,
  type ListPosition,
  lastGoodSeen,
  type PageProgress,
  recordPage,
  restartKind,
} from './runs.ts';

/** Entities per list call. Each page is one upsert and one checkpoint step. */
export const PAGE_SIZE = 100;

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

export interface PullOptions {
  readonly signal: AbortSignal;
  /** After each recorded page (progress logs, tests that interrupt a sync half way). */
  readonly onPage?: (kind: EntityKind, progress: PageProgress) => void;
  /** Pages each keyword part should list at least (see plannedParts). @defaultValue PAGES_PER_KEYWORD_PART */
  readonly keywordPartPages?: number;
}

/** A run's running totals, readable whatever becomes of the pull (recorded on failure or release). */
export class RunProgress {
  counts: RunCounts;
  pages: number;
  throttledMs: number;
  throttledRequests: number;
  readonly observer = {
    waited: (ms: number) => {
      this.throttledMs += ms;
    },
    throttled: () => {
      this.throttledRequests += 1;
    },
  };

  constructor(run: ClaimedRun) {
    this.counts = structuredClone(run.counts);
    this.pages = run.pages;
    this.throttledMs = run.throttledMs;
    this.throttledRequests = run.throttledRequests;
  }

  snapshot(): PageProgress {
    return {
      counts: structuredClone(this.counts),
      pages: this.pages,
      throttledMs: this.throttledMs,
      throttledRequests: this.throttledRequests,
    };
  }
}

/**
 * Pulls one profile's campaigns, ad groups and keywords page by page from the run's
 * checkpoint on (parents first, so every foreign key exists), recording each page — its
 * rows, its ids, the token after it — in one transaction. A large profile's keywords are
 * listed in parts side by side (see plannedParts); every listing keeps one page ahead of
 * its writes, so memory holds two pages per listing whatever the profile's size. The client waits inside the profile's shared rate limit
 * (the waits and 429s are added to the run), or throws a ThrottledError that defers the
 * message; the run then resumes where it stopped.
 *
 * A resumed listing whose token the API refuses (expired, or the data moved under it)
 * starts that kind (every part of it) again from the first page, and the run says so.
 */
export async function pullProfile(
  ads: AdsApiClient,
  db: pg.Pool,
  run: ClaimedRun,
  progress: RunProgress,
  options: PullOptions,
): Promise<void> {
  for (const kind of ENTITY_KINDS) {
    const checkpoint = run.checkpoint[kind];
    if (checkpoint.done) continue;
    const pagesPerPart = options.keywordPartPages ?? PAGES_PER_KEYWORD_PART;
    let positions: readonly ListPosition[] =
      checkpoint.parts ??
      (checkpoint.pages > 0 ? [checkpoint] : await plannedParts(db, run.profileId, kind, pagesPerPart));
    if (positions === UNSIZED)
      positions = await sizedByFirstPage(ads, db, run, progress, kind, pagesPerPart, options);
    for (;;) {
      const filters = positions.length === 1 ? [{}] : await partFilters(db, run.profileId, positions.length);
      const stop = new AbortController();
      const signal = AbortSignal.any([options.signal, stop.signal]);
      let firstFailure: { error: unknown } | undefined;
      await Promise.all(
        positions.map((position, index) =>
          listPart(ads, db, run, progress, {
            kind,
            part: { index, of: positions.length },
            filter: filters[index] ?? {},
            position,
            signal,
            onPage: options.onPage,
          }).catch((error: unknown) => {
            // One part failing stops its siblings; every part has settled (no write in
            // flight) before the failure goes up. The first failure is the cause, the
            // others are its siblings' aborts.
            firstFailure ??= { error };
            stop.abort();
          }),
        ),
      );
      if (firstFailure === undefined) break;
      const cause = firstFailure.error;
      if (!(cause instanceof RefusedTokenError)) throw cause;
      await restartKind(
        db,
        run,
        kind,
        `the API refused the checkpoint's ${kind} nextToken (${cause.message}): listing ${kind} from the first page`,
      );
      progress.counts[kind].seen = 0;
      positions = positions.map(() => START);
    }
  }
}

const START: ListPosition = { done: false, pages: 0, nextToken: undefined };

/**
 * Keywords of a profile the last sync found large are listed in parts side by side, each
 * part a disjoint set of campaigns (`campaignIdFilter`), instead of one nextToken chain.
 * One chain has one request in flight, so the profile's rate is capped by the latency of a
 * request and its write, and on a busy worker (the first seconds of a nightly run, when
 * every profile starts at once) it gets one turn in the event loop among all the handlers'
 * chains: the largest profile, whose time is the night's floor, listed at a fraction of its
 * limit until the small ones were done. With parts the rate limiter, not the chain, paces it.
 * Parts cost one short last page each, so a profile is split only when each part still
 * lists many pages; the campaigns are parted round-robin over their ids, which the
 * campaigns listed first have put in our tables (every keyword's campaign is there, or its
 * row could not be written), and a part's filter stays under what the API accepts.
 */
export const KEYWORD_PARTS_MAX = 8;
/** A part should list at least this many pages, judged by the last good sync (ADFLEET_SYNC_KEYWORD_PART_PAGES). */
export const PAGES_PER_KEYWORD_PART = 25;
/** Campaign ids in one part's filter at most (the list endpoints' filter limit). */
export const CAMPAIGN_FILTER_MAX = 100;

/** A kind with no last good sync to judge its size by: its first page says (sizedByFirstPage). */
const UNSIZED: readonly ListPosition[] = [START];

async function plannedParts(
  db: pg.Pool,
  profileId: number,
  kind: EntityKind,
  pagesPerPart: number,
): Promise<readonly ListPosition[]> {
  if (kind !== 'keywords') return [START];
  const seen = await lastGoodSeen(db, profileId, kind);
  if (seen === undefined) return UNSIZED;
  return partsFor(db, profileId, seen, pagesPerPart);
}

async function partsFor(
  db: pg.Pool,
  profileId: number,
  keywords: number,
  pagesPerPart: number,
): Promise<readonly ListPosition[]> {
  const { rows } = await db.query<{ campaigns: number }>(
    'SELECT count(*)::int AS campaigns FROM campaigns WHERE profile_id = $1',
    [profileId],
  );
  const campaigns = rows[0]?.campaigns ?? 0;
  const parts = Math.min(KEYWORD_PARTS_MAX, campaigns, Math.floor(keywords / PAGE_SIZE / pagesPerPart));
  if (parts < 2 || campaigns > parts * CAMPAIGN_FILTER_MAX) return [START];
  return Array.from({ length: parts }, () => START);
}

/**
 * A profile never synced (the first night, a new account) has no last sync to size it by;
 * its keywords' first page does (`totalResults`). A small profile goes on from that page as
 * one listing; a large one leaves the page unrecorded and lists in parts from their first
 * pages, which costs that one request and saves the first night's largest profile from
 * listing a page at a time. Without a total (an API that does not say) it is one listing.
 */
async function sizedByFirstPage(
  ads: AdsApiClient,
  db: pg.Pool,
  run: ClaimedRun,
  progress: RunProgress,
  kind: EntityKind,
  pagesPerPart: number,
  options: PullOptions,
): Promise<readonly ListPosition[]> {
  const pages = ads.pages(kind, run.profileId, {
    maxResults: PAGE_SIZE,
    signal: options.signal,
    observer: progress.observer,
  });
  let first: ListPage<unknown> | undefined;
  try {
    const result = await pages.next();
    first = result.done ? undefined : result.value;
  } finally {
    await pages.return(undefined).catch(() => {});
  }
  if (first === undefined) return [START];
  if (first.totalResults !== undefined) {
    const parts = await partsFor(db, run.profileId, first.totalResults, pagesPerPart);
    if (parts.length > 1) return parts;
  }
  const recorded = await recordPage(
    db,
    run,
    kind,
    {
      part: { index: 0, of: 1 },
      number: 1,
      items: first.items,
      ids: entityIds(kind, first.items),
      nextToken: first.nextToken,
    },
    progress,
  );
  progress.counts = recorded.counts;
  progress.pages = recorded.pages;
  options.onPage?.(kind, recorded);
  return [{ done: first.nextToken === undefined, pages: 1, nextToken: first.nextToken }];
}

/** The campaign filter of each part: the same on every attempt of the run (see above). */
async function partFilters(db: pg.Pool, profileId: number, parts: number): Promise<ListFilter[]> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id::text FROM campaigns WHERE profile_id = $1 ORDER BY id',
    [profileId],
  );
  const groups = Array.from({ length: parts }, (): string[] => []);
  for (const [index, row] of rows.entries()) groups[index % parts]?.push(row.id);
  if (groups.some((ids) => ids.length > CAMPAIGN_FILTER_MAX))
    throw new Error(`${rows.length} campaigns do not fit ${parts} keyword parts of ${CAMPAIGN_FILTER_MAX}`);
  return groups.map((include) => ({ campaignIdFilter: { include } }));
}

/** The API refused a resumed part's nextToken: the kind lists again from its first pages. */
class RefusedTokenError extends Error {
  override readonly name = 'RefusedTokenError';
}

interface PartListing {
  readonly kind: EntityKind;
  readonly part: { readonly index: number; readonly of: number };
  readonly filter: ListFilter;
  readonly position: ListPosition;
  readonly signal: AbortSignal;
  readonly onPage: PullOptions['onPage'];
}

/** One listing (a kind, or one part of it) from its position on, each page recorded in turn. */
async function listPart(
  ads: AdsApiClient,
  db: pg.Pool,
  run: ClaimedRun,
  progress: RunProgress,
  listing: PartListing,
): Promise<void> {
  const { kind, part, position, signal } = listing;
  if (position.done) return;
  let pageNumber = position.pages;
  try {
    for await (const page of prefetched(
      ads,
      kind,
      run.profileId,
      position.nextToken,
      listing.filter,
      signal,
      progress.observer,
    )) {
      pageNumber += 1;
      const number = pageNumber;
      const recorded = await recordPage(
        db,
        run,
        kind,
        { part, number, items: page.items, ids: entityIds(kind, page.items), nextToken: page.nextToken },
        progress,
      );
      // Parts commit side by side and their answers may come back in any order: the totals
      // with the most pages are the latest.
      if (recorded.pages > progress.pages) {
        progress.counts = recorded.counts;
        progress.pages = recorded.pages;
      }
      listing.onPage?.(kind, recorded);
    }
  } catch (error) {
    const refusedToken =
      position.nextToken !== undefined &&
      pageNumber === position.pages &&
      error instanceof AdsApiError &&
      error.status === 400;
    if (refusedToken) throw new RefusedTokenError(error.message);
    throw error;
  }
}

/**
 * A kind's pages with the next one already asked for while the caller records this one:
 * a profile's requests are sequential (each needs the token of the page before), so
 * without the overlap every page waits for the previous page's database write as well as
 * its own call, and a large profile on a busy worker runs well below its rate limit. Memory
 * holds two pages. The checkpoint is unchanged: a page counts only once recorded, and a
 * page fetched ahead of a stop is fetched again by the resume (as the page in flight always was).
 */
async function* prefetched<K extends EntityKind>(
  ads: AdsApiClient,
  kind: K,
  profileId: number,
  nextToken: string | undefined,
  filter: ListFilter,
  signal: AbortSignal,
  observer: RunProgress['observer'],
): AsyncGenerator<ListPage<unknown>, void, undefined> {
  // Our own abort as well as the caller's: leaving early (a failed write) cancels the call
  // in flight instead of letting it wait out the rate limit for a page nobody records.
  const stop = new AbortController();
  const pages = ads.pages(kind, profileId, {
    ...filter,
    maxResults: PAGE_SIZE,
    nextToken,
    signal: AbortSignal.any([signal, stop.signal]),
    observer,
  });
  // Marked handled at once: the call ahead may fail (an abort at a stop) while the caller is
  // still recording the page before it; the failure is thrown where the page is awaited.
  const ask = () => {
    const next = pages.next();
    next.catch(() => {});
    return next;
  };
  let ahead = ask();
  try {
    for (;;) {
      const result = await ahead;
      if (result.done) return;
      // The last page (no token after it) needs no call ahead: the generator ends by itself.
      ahead =
        result.value.nextToken === undefined ? Promise.resolve({ done: true, value: undefined }) : ask();
      yield result.value;
    }
  } finally {
    stop.abort();
    // The call ahead ends with the abort; its outcome belongs to nobody now.
    await ahead.catch(() => {});
    await pages.return(undefined).catch(() => {});
  }
}
