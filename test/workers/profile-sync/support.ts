import { createHash } from 'node:crypto';
import type pg from 'pg';
import { expect, vi } from 'vitest';
import type { Config } from '../../../contract/config.ts';
import { lwaTokenUrl } from '../../../contract/config.ts';
import type { DirectTrigger, Queryable } from '../../../domain/sync/model.ts';
import { type RequestResult, requestSyncs } from '../../../domain/sync/requests.ts';
import { syncSettings } from '../../../domain/sync/settings.ts';
import { type AdsSandbox, type SandboxOptions, startAdsSandbox } from '../../../sandbox/ads-api/server.ts';
import { AdsApiClient } from '../../../shared/ads/client.ts';
import { LwaTokenProvider } from '../../../shared/ads/lwa.ts';
import { createLogger } from '../../../shared/logging.ts';
import { type RunningWorker, startWorker } from '../../../shared/runtime/start-worker.ts';
import { profileSyncWorker } from '../../../workers/profile-sync/worker.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, testConfig } from '../../support/env.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';

/**
 * What the sync tests share: their own topology, database and Ads sandbox, optionally an
 * in-process profile-sync worker, a raw Ads client (no limiter) that reads the sandbox's
 * truth through its API, and checksums over both sides.
 */
export interface SyncHarness {
  readonly topology: TestTopology;
  readonly database: TestDatabase;
  readonly sandbox: AdsSandbox;
  readonly config: Config;
  readonly worker: RunningWorker | undefined;
  /** The sandbox's view, read page by page with no rate limiter. */
  readonly truth: AdsApiClient;
  request(profileIds: readonly number[], trigger: DirectTrigger): Promise<RequestResult[]>;
  close(): Promise<void>;
}

export async function startSyncHarness(options: {
  label: string;
  sandbox?: Partial<SandboxOptions>;
  config?: Record<string, string>;
  inProcessWorker?: boolean;
}): Promise<SyncHarness> {
  const topology = await createTestTopology(options.label);
  const database = await createTestDatabase(stackEnv().DATABASE_URL as string);
  const sandbox = await startAdsSandbox(options.sandbox);
  const config = testConfig({
    ADFLEET_RESOURCE_PREFIX: topology.prefix,
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
    ADFLEET_CONCURRENCY: '4',
    ...options.config,
  });
  const worker =
    options.inProcessWorker === false
      ? undefined
      : await startWorker(profileSyncWorker, {
          config,
          logger: createLogger({ level: 'silent', name: 'profile-sync' }),
          waitTimeSeconds: 1,
        });
  const truth = new AdsApiClient({
    baseUrl: sandbox.url,
    clientId: config.ADFLEET_ADS_CLIENT_ID,
    tokens: new LwaTokenProvider({
      tokenUrl: lwaTokenUrl(config),
      clientId: config.ADFLEET_ADS_CLIENT_ID,
      clientSecret: config.ADFLEET_ADS_CLIENT_SECRET,
      refreshToken: config.ADFLEET_ADS_REFRESH_TOKEN,
    }),
  });
  const { createMessenger } = await import('../../../shared/messaging/messenger.ts');
  const { messenger } = createMessenger(topology.clients, config);
  return {
    topology,
    database,
    sandbox,
    config,
    worker,
    truth,
    request: (profileIds, trigger) =>
      requestSyncs(database.pool, messenger, profileIds, trigger, syncSettings(config)),
    async close() {
      await worker?.stop();
      await sandbox.close();
      await topology.destroy();
      await database.drop();
    },
  };
}

const money = (value: unknown) => Number(value).toFixed(2);

/** One line per live entity, in id order, with every synced field: the same shape from both sides. */
export async function sandboxLines(truth: AdsApiClient, profileIds: readonly number[]) {
  const lines = { campaigns: [] as string[], adGroups: [] as string[], keywords: [] as string[] };
  for (const profileId of profileIds) {
    for await (const page of truth.pages('campaigns', profileId, { maxResults: 1000 }))
      for (const c of page.items)
        lines.campaigns.push(
          [c.campaignId, profileId, c.name, c.state, c.targetingType, money(c.budget.budget)].join('|'),
        );
    for await (const page of truth.pages('adGroups', profileId, { maxResults: 1000 }))
      for (const g of page.items)
        lines.adGroups.push(
          [g.adGroupId, g.campaignId, profileId, g.name, g.state, money(g.defaultBid)].join('|'),
        );
    for await (const page of truth.pages('keywords', profileId, { maxResults: 1000 }))
      for (const k of page.items)
        lines.keywords.push(
          [
            k.keywordId,
            k.adGroupId,
            k.campaignId,
            profileId,
            k.keywordText,
            k.matchType,
            k.state,
            money(k.bid),
          ].join('|'),
        );
  }
  for (const list of Object.values(lines)) list.sort();
  return lines;
}

export async function databaseLines(db: Queryable, profileIds: readonly number[]) {
  const query = async (sql: string) =>
    (await db.query<{ line: string }>(sql, [profileIds])).rows.map((row) => row.line).sort();
  return {
    campaigns: await query(
      `SELECT concat_ws('|', id, profile_id, name, state, targeting_type, daily_budget) AS line
         FROM campaigns WHERE profile_id = ANY($1::bigint[]) AND removed_at IS NULL`,
    ),
    adGroups: await query(
      `SELECT concat_ws('|', id, campaign_id, profile_id, name, state, default_bid) AS line
         FROM ad_groups WHERE profile_id = ANY($1::bigint[]) AND removed_at IS NULL`,
    ),
    keywords: await query(
      `SELECT concat_ws('|', id, ad_group_id, campaign_id, profile_id, keyword_text, match_type, state, bid) AS line
         FROM keywords WHERE profile_id = ANY($1::bigint[]) AND removed_at IS NULL`,
    ),
  };
}

export function checksum(lines: Record<string, readonly string[]>): string {
  const hash = createHash('sha256');
  for (const [kind, list] of Object.entries(lines).sort()) hash.update(kind).update(list.join('\n'));
  return hash.digest('hex');
}

export interface RunRow {
  id: number;
  profile_id: number;
  status: string;
  trigger: string;
  trigger_detail: Record<string, unknown>;
  started_at: Date;
  finished_at: Date | null;
  counts: Record<string, Record<string, number>>;
  pages: number;
  throttled_ms: number;
  throttled_requests: number;
  attempts: number;
  resumed_from: number | null;
  superseded_by: number | null;
  resume_note: string | null;
  error: string | null;
  trace_id: string | null;
}

export async function runs(db: pg.Pool, profileId?: number): Promise<RunRow[]> {
  const { rows } = await db.query<RunRow>(
    'SELECT * FROM sync_runs WHERE $1::bigint IS NULL OR profile_id = $1 ORDER BY id',
    [profileId ?? null],
  );
  return rows;
}

/** Waits until `count` runs (of a profile, or all) have ended in `status`, and returns every run. */
export function runsEnded(
  db: pg.Pool,
  count: number,
  options: { profileId?: number; status?: string; timeoutMs?: number } = {},
) {
  const status = options.status ?? 'succeeded';
  return vi.waitFor(
    async () => {
      const all = await runs(db, options.profileId);
      expect(all.filter((run) => run.status === status).length, `${status} sync runs`).toBeGreaterThanOrEqual(
        count,
      );
      return all;
    },
    { timeout: options.timeoutMs ?? 60_000, interval: 200 },
  );
}
