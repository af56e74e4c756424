import type { CatalogType } from './events.ts';

/**
 * How long one message's handler may run, per catalog type. Past it the handler's signal
 * aborts and the message counts as a retryable failure (shared/messaging/queue-worker.ts):
 * a hung call spends the message's retry budget and reaches the DLQ with the reason,
 * instead of being heartbeated forever. The drain deadline is the longest of these plus a
 * margin (contract/config.ts), and the ECS stop timeout the drain plus a flush margin
 * (infra/workers.ts): a stop lets any handler finish. test/foundation/deadlines.test.ts
 * holds the three together.
 */
export const HANDLER_DEADLINE_SECONDS: Partial<Readonly<Record<CatalogType, number>>> = {
  // Three paginated list endpoints inside the profile's rate limit (typically 30 s).
  SyncProfile: 90,
  // One profile-list refresh and a batched send per 10 profiles.
  SyncAllProfilesRequested: 90,
  BulkJobCompleted: 30,
  // Dispatch starts no chunk after 12 s and continues in the message's next delivery; an
  // item batch is one claim (its profile's chain runs apart from the message), at most a 5 s
  // rate-limit wait and a 10 s call. Both fit under the bulk-item queue's short visibility
  // timeout (topology.ts).
  BulkJobSubmitted: 25,
  BulkItemBatch: 25,
  BackfillRequested: 30,
  BackfillChunk: 60,
};

/** For a type without its own entry. */
export const DEFAULT_HANDLER_DEADLINE_SECONDS = 60;

export function handlerDeadlineSeconds(type: CatalogType): number {
  return HANDLER_DEADLINE_SECONDS[type] ?? DEFAULT_HANDLER_DEADLINE_SECONDS;
}

export const LONGEST_HANDLER_DEADLINE_SECONDS = Math.max(
  DEFAULT_HANDLER_DEADLINE_SECONDS,
  ...Object.values(HANDLER_DEADLINE_SECONDS),
);
