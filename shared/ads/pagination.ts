/**
 * v3 list endpoints page with `nextToken`: send the token from the previous page until a page
 * comes back without one. As an async iterator, a caller can `for await` over every entity
 * and stop early (`break`) without fetching pages it does not need.
 */

export interface Page<TItem> {
  readonly items: readonly TItem[];
  readonly nextToken: string | undefined;
}

export async function* paginate<TItem>(
  fetchPage: (nextToken: string | undefined) => Promise<Page<TItem>>,
): AsyncGenerator<TItem, void, undefined> {
  let nextToken: string | undefined;
  const seen = new Set<string>();
  do {
    const page = await fetchPage(nextToken);
    yield* page.items;
    nextToken = page.nextToken;
    // A server that hands back a token it already gave would loop us forever.
    if (nextToken !== undefined) {
      if (seen.has(nextToken)) throw new Error('Ads API returned the same nextToken twice');
      seen.add(nextToken);
    }
  } while (nextToken !== undefined);
}
