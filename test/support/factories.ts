import { randomUUID } from 'node:crypto';
import type { Message } from '@aws-sdk/client-sqs';
import type pg from 'pg';
import { type CatalogType, catalog, type PayloadIn } from '../../contract/events.ts';
import { marketplaceOf } from '../../shared/ads/marketplaces.ts';
import { type HandledEvent, Outcome } from '../../shared/messaging/queue-worker.ts';

/**
 * Record factories: a valid message, event or row with the fields a test cares about
 * overridden, instead of literals copied from test to test. Catalog payloads go through the
 * catalog's own schema, so a factory cannot hand a test something no producer may send.
 */

/** Two of the Ads API sandbox's seeded profiles (US and DE marketplaces). */
export const SANDBOX_PROFILE_IDS = [1_000_000_000_000, 1_000_000_000_001] as const;

const defaults: { [T in CatalogType]: () => PayloadIn<T> } = {
  SyncAllProfilesRequested: () => ({ reason: 'test' }),
  BulkJobSubmitted: () => ({ jobId: randomUUID() }),
  BulkJobCompleted: () => ({
    jobId: randomUUID(),
    status: 'COMPLETED',
    profileIds: [...SANDBOX_PROFILE_IDS],
    succeeded: SANDBOX_PROFILE_IDS.length,
    failed: 0,
    cancelled: 0,
  }),
  ProfileSynced: () => ({
    profileId: SANDBOX_PROFILE_IDS[0],
    runId: 1,
    reason: 'test',
    campaigns: { seen: 1, inserted: 1, changed: 0, restored: 0, removed: 0 },
    adGroups: { seen: 1, inserted: 1, changed: 0, restored: 0, removed: 0 },
    keywords: { seen: 1, inserted: 1, changed: 0, restored: 0, removed: 0 },
    pages: 3,
    durationMs: 100,
    throttledMs: 0,
  }),
  BackfillRequested: () => ({ jobId: randomUUID(), name: 'campaign-currency' }),
  SyncProfile: () => ({
    profileId: SANDBOX_PROFILE_IDS[0],
    requestId: randomUUID(),
    requestedAt: new Date().toISOString(),
    trigger: { kind: 'operator', reason: 'test' },
  }),
  BulkItemBatch: () => ({ jobId: randomUUID(), profileId: SANDBOX_PROFILE_IDS[0], itemIds: [1] }),
  BackfillChunk: () => ({ jobId: randomUUID(), partition: 0, cursor: 0, chunk: 1 }),
};

/** A valid payload of a catalog type: its defaults under `overrides`, checked by the catalog's schema. */
export function payloadOf<T extends CatalogType>(
  type: T,
  overrides: Partial<PayloadIn<T>> = {},
): PayloadIn<T> {
  const payload = { ...defaults[type](), ...overrides } as PayloadIn<T>;
  catalog[type].schema.parse(payload);
  return payload;
}

/** The SQS body the messenger sends for a queue message: `{ type, payload }`. */
export function fleetMessageBody<T extends CatalogType>(
  type: T,
  overrides: Partial<PayloadIn<T>> = {},
): string {
  return JSON.stringify({ type, payload: payloadOf(type, overrides) });
}

/** The SQS body an EventBridge rule delivers for a bus event, trace context in `detail._trace`. */
export function eventBridgeBody<T extends CatalogType>(
  detailType: T,
  overrides: Partial<PayloadIn<T>> = {},
  trace?: Record<string, string>,
): string {
  return JSON.stringify({
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source: 'adfleet',
    account: '000000000000',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail: { ...payloadOf(detailType, overrides), ...(trace === undefined ? {} : { _trace: trace }) },
  });
}

/** An SQS message as a receive returns it, around `body`. */
export function sqsMessage(body: string, attributes: Record<string, string> = {}): Message {
  return {
    MessageId: randomUUID(),
    ReceiptHandle: randomUUID(),
    Body: body,
    Attributes: { ApproximateReceiveCount: '1' },
    MessageAttributes: Object.fromEntries(
      Object.entries(attributes).map(([name, value]) => [name, { DataType: 'String', StringValue: value }]),
    ),
  };
}

/** What the queue worker reports for one handled message (what the metrics count). */
export function handledEvent(overrides: Partial<HandledEvent> = {}): HandledEvent {
  return { outcome: Outcome.Succeeded, type: 'SyncProfile', durationMs: 10, ...overrides };
}

// ---------------------------------------------------------------- rows

export interface ProfileRow {
  id: number;
  countryCode: string;
  accountName: string;
  /** null: never synced. */
  lastSyncedAt: Date | null;
}

let nextProfileId = 9_000_000_000;

/** A profiles row: a fresh id, a US account synced just now, unless told otherwise. */
export function profileRow(overrides: Partial<ProfileRow> = {}): ProfileRow {
  nextProfileId += 1;
  return {
    id: nextProfileId,
    countryCode: 'US',
    accountName: `Test Account ${nextProfileId}`,
    lastSyncedAt: new Date(),
    ...overrides,
  };
}

/** Inserts profiles rows, the marketplace and currency following each row's country. */
export async function insertProfiles(pool: pg.Pool, rows: readonly ProfileRow[]): Promise<void> {
  for (const row of rows) {
    const marketplace = marketplaceOf(row.countryCode);
    await pool.query(
      `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name, last_synced_at)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        row.id,
        row.countryCode,
        marketplace.currencyCode,
        marketplace.marketplaceStringId,
        row.accountName,
        row.lastSyncedAt,
      ],
    );
  }
}
