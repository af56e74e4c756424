import { z } from 'zod';
import type { QueueName } from './queues.ts';

/**
 * THE catalog of what travels between the fleet's parts: every event on the bus and every
 * message one part sends straight to a queue, each declared once with its schema and its
 * producer. Producers are typed from it (`Messenger.publish` / `send` take exactly the
 * payload the schema describes and validate it before anything leaves the process);
 * consumers are typed from it (`defineWorker` wants one handler for each type that reaches
 * its queue, and no other); the topology's rules name its events.
 *
 * An event's consumers are decided by the rules in `topology.ts`, a message's by its
 * `queue` here: `test/contract/catalog.test.ts` checks that every type that reaches a queue
 * has a handler there and that every handler's type reaches it.
 */

/** Who puts a type on the wire: a worker, the operator CLI, or the nightly schedule. */
export type Producer = QueueName | 'cli' | 'scheduler';

export interface EventSpec {
  readonly producers: readonly Producer[];
  readonly schema: z.ZodType;
}

export interface MessageSpec extends EventSpec {
  /** The one queue this message type is sent to. */
  readonly queue: QueueName;
}

const profileId = z.number().int().positive();
const uuid = z.uuid();
const count = z.number().int().nonnegative();

/** What one sync did to one entity kind (domain/sync/model.ts). */
const entityCounts = z.object({
  seen: count,
  inserted: count,
  changed: count,
  restored: count,
  removed: count,
});

/** Why a profile is synced: the nightly schedule, a finished bulk job, or an operator. */
const directTrigger = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('schedule'), reason: z.string().optional() }),
  z.object({ kind: z.literal('bulk'), jobId: uuid }),
  z.object({ kind: z.literal('operator'), reason: z.string().optional() }),
]);
/** ...or the requests that arrived while a sync ran, served by one sync after it. */
export const syncTriggerSchema = z.union([
  directTrigger,
  z.object({ kind: z.literal('follow-up'), folded: z.array(directTrigger).min(1) }),
]);

/** Bus events (EventBridge). Their detail carries the trace context in `_trace` (messaging/trace-context.ts). */
export const events = {
  SyncAllProfilesRequested: {
    producers: ['scheduler', 'cli'],
    schema: z.object({ reason: z.string().optional() }),
  },
  BulkJobSubmitted: {
    producers: ['cli'],
    // Ids only: the job's items are in Postgres, so the event stays small for any job size.
    schema: z.object({ jobId: uuid }),
  },
  BulkJobCompleted: {
    producers: ['bulk-item'],
    schema: z.object({
      jobId: uuid,
      status: z.enum(['COMPLETED', 'COMPLETED_WITH_ERRORS', 'CANCELLED']),
      /** Profiles with at least one item applied at Amazon: the ones to re-sync. */
      profileIds: z.array(profileId),
      succeeded: z.number().int().nonnegative(),
      failed: z.number().int().nonnegative(),
      cancelled: z.number().int().nonnegative(),
    }),
  },
  ProfileSynced: {
    producers: ['profile-sync'],
    schema: z.looseObject({
      profileId,
      /** The sync run's row (`sync_runs.id`). */
      runId: z.number().int().positive(),
      reason: z.string(),
      campaigns: entityCounts,
      adGroups: entityCounts,
      keywords: entityCounts,
      pages: z.number().int().nonnegative(),
      durationMs: z.number().nonnegative(),
      throttledMs: z.number().nonnegative(),
    }),
  },
  BackfillRequested: {
    producers: ['cli'],
    schema: z.looseObject({ jobId: uuid, name: z.string().min(1).optional() }),
  },
} as const satisfies Record<string, EventSpec>;

/** Queue messages (SQS), sent by one part of the fleet to a queue. */
export const messages = {
  SyncProfile: {
    queue: 'profile-sync',
    // profile-sync sends the nightly fan-out, bulk re-syncs and follow-ups; the CLI an
    // operator's. Every sender goes through domain/sync/requests.ts, which refuses pile-ups.
    producers: ['profile-sync', 'cli'],
    schema: z.object({
      profileId,
      /** One per request: a redelivery of this message resumes the run it started. */
      requestId: uuid,
      /** Database time of the request: a run that started after it already serves it. */
      requestedAt: z.iso.datetime({ offset: true }),
      trigger: syncTriggerSchema,
    }),
  },
  BulkItemBatch: {
    queue: 'bulk-item',
    producers: ['bulk-item'],
    // One profile's share of a job, sized for one Ads API call: the items' ids, never the items.
    schema: z.object({
      jobId: uuid,
      profileId,
      itemIds: z.array(z.number().int().positive()).min(1).max(1_000),
    }),
  },
  BackfillChunk: {
    queue: 'backfill-chunk',
    producers: ['backfill-chunk', 'cli'],
    schema: z.object({
      jobId: uuid,
      partition: z.number().int().min(0),
      /** Last id the partition had processed when this chunk was sent: the compare-and-set guard. */
      cursor: z.number().int(),
      /** Sequence number of this chunk in its partition's chain (logs and spans). */
      chunk: z.number().int().min(1),
      /** Chunks already in the current trace; past the budget the next one starts a new trace. */
      traceChunks: z.number().int().min(0).default(0),
    }),
  },
} as const satisfies Record<string, MessageSpec>;

export type EventType = keyof typeof events;
export type MessageType = keyof typeof messages;
export type CatalogType = EventType | MessageType;

export const catalog: Readonly<Record<CatalogType, EventSpec>> = { ...events, ...messages };

type SpecOf<T extends CatalogType> = T extends EventType
  ? (typeof events)[T]
  : T extends MessageType
    ? (typeof messages)[T]
    : never;

/** What a producer passes (defaults may be left out). */
export type PayloadIn<T extends CatalogType> = z.input<SpecOf<T>['schema']>;
/** What a handler receives (validated, defaults filled in). */
export type Payload<T extends CatalogType> = z.output<SpecOf<T>['schema']>;

export function isCatalogType(type: string): type is CatalogType {
  return Object.hasOwn(catalog, type);
}
