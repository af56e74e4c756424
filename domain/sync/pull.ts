import type pg from 'pg';
import type { AdsApiClient, ListPage } from '../../shared/ads/client.ts';
import { AdsApiError } from '../../shared/ads/errors.ts';
import { entityIds, upsertProfiles } from './entities.ts';
import { ENTITY_KINDS, type EntityKind, type RunCounts } from './model.ts';
import { type ClaimedRun, type PageProgress, recordPage, restartKind } from './runs.ts';

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
}

/**
 * Pulls one profile's campaigns, ad groups and keywords page by page from the run's
 * checkpoint on (parents first, so every foreign key exists), recording each page — its
 * rows, its ids, the token after it — before asking for the next. Memory holds one page
 * whatever the profile's size. The client waits inside the profile's shared rate limit
 * (the waits and 429s are added to the run), or throws a ThrottledError that defers the
 * message; the run then resumes where it stopped.
 *
 * A resumed listing whose token the API refuses (expired, or the data moved under it)
 * starts that kind again from the first page, and the run says so.
 */
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

export async function pullProfile(
  ads: AdsApiClient,
  db: pg.Pool,
  run: ClaimedRun,
  progress: RunProgress,
  options: PullOptions,
): Promise<void> {
  const { observer } = progress;
  for (const kind of ENTITY_KINDS) {
    const position = run.checkpoint[kind];
    if (position.done) continue;
    let pageNumber = position.pages;
    let token = position.nextToken;
    for (;;) {
      try {
        for await (const page of prefetched(ads, kind, run.profileId, token, options.signal, observer)) {
          pageNumber += 1;
          const recorded = await recordPage(
            db,
            run,
            kind,
            {
              number: pageNumber,
              items: page.items,
              ids: entityIds(kind, page.items),
              nextToken: page.nextToken,
            },
            (written) => {
              const next = progress.snapshot();
              next.counts[kind].seen += page.items.length;
              next.counts[kind].inserted += written.inserted;
              next.counts[kind].changed += written.changed;
              next.counts[kind].restored += written.restored;
              return { ...next, pages: next.pages + 1 };
            },
          );
          progress.counts = recorded.counts;
          progress.pages = recorded.pages;
          options.onPage?.(kind, recorded);
        }
        break;
      } catch (error) {
        const refusedToken =
          token !== undefined &&
          pageNumber === position.pages &&
          error instanceof AdsApiError &&
          error.status === 400;
        if (!refusedToken) throw error;
        await restartKind(
          db,
          run,
          kind,
          `the API refused the checkpoint's ${kind} nextToken (${error.message}): listing ${kind} from the first page`,
        );
        progress.counts[kind].seen = 0;
        pageNumber = 0;
        token = undefined;
      }
    }
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
  signal: AbortSignal,
  observer: RunProgress['observer'],
): AsyncGenerator<ListPage<unknown>, void, undefined> {
  // Our own abort as well as the caller's: leaving early (a failed write) cancels the call
  // in flight instead of letting it wait out the rate limit for a page nobody records.
  const stop = new AbortController();
  const pages = ads.pages(kind, profileId, {
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
