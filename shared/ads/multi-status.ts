import type { AmazonItemError, MultiStatusPart } from './types.ts';

/**
 * Maps a v3 207 Multi-Status body back onto the request's items. Amazon answers with two
 * lists, `success[]` and `error[]`, each entry naming the `index` of the request item it is
 * about; the caller wants the opposite view: for item i, what happened. Every item gets
 * exactly one result. An item Amazon did not mention at all has an unknown outcome, so it
 * is reported as a retryable failure (re-applying an absolute bid or state is idempotent).
 */

export type ItemResult<TItem> =
  | {
      readonly index: number;
      readonly item: TItem;
      readonly ok: true;
      readonly entityId: string | undefined;
      /** Amazon's success entry for the item, as sent. */
      readonly response: Readonly<Record<string, unknown>>;
    }
  | {
      readonly index: number;
      readonly item: TItem;
      readonly ok: false;
      /** Worth sending again later (Amazon's own transient errors, or no answer for the item). */
      readonly retryable: boolean;
      /** Amazon's first `errorType`, e.g. `entityNotFoundError`. */
      readonly code: string;
      /** Amazon's first message, for the item's FAILED record. */
      readonly message: string;
      readonly errors: readonly AmazonItemError[];
    };

/** Item error types Amazon uses for trouble on its side rather than with the item. */
const RETRYABLE_ITEM_ERRORS = new Set(['internalServerError', 'otherError', 'throttlingError']);

export const MISSING_RESULT = 'missingResultError';

function firstMessage(errors: readonly AmazonItemError[]): { code: string; message: string } {
  const first = errors[0];
  if (first === undefined)
    return { code: 'unknownError', message: 'Amazon reported an error without details' };
  const detail = first.errorValue[first.errorType] ?? Object.values(first.errorValue)[0];
  return { code: first.errorType, message: detail?.message ?? first.errorType };
}

export function mapMultiStatus<TItem>(
  items: readonly TItem[],
  part: MultiStatusPart | undefined,
  idField: string,
): ItemResult<TItem>[] {
  const results = new Array<ItemResult<TItem> | undefined>(items.length);
  for (const entry of part?.success ?? []) {
    const item = items[entry.index];
    if (item === undefined) continue; // an index we never sent: ignore rather than invent an item
    const id = entry[idField];
    results[entry.index] = {
      index: entry.index,
      item,
      ok: true,
      entityId: typeof id === 'string' ? id : undefined,
      response: entry,
    };
  }
  for (const entry of part?.error ?? []) {
    const item = items[entry.index];
    if (item === undefined) continue;
    const { code, message } = firstMessage(entry.errors);
    results[entry.index] = {
      index: entry.index,
      item,
      ok: false,
      retryable:
        entry.errors.length > 0 && entry.errors.every((error) => RETRYABLE_ITEM_ERRORS.has(error.errorType)),
      code,
      message,
      errors: entry.errors,
    };
  }
  return items.map(
    (item, index) =>
      results[index] ?? {
        index,
        item,
        ok: false,
        retryable: true,
        code: MISSING_RESULT,
        message: 'Amazon returned no result for this item',
        errors: [],
      },
  );
}
