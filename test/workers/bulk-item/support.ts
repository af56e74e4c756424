import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { expect } from 'vitest';
import { type BulkJob, loadJob } from '../../../domain/bulk/jobs.ts';
import { TERMINAL_JOB_STATUSES } from '../../../domain/bulk/status.ts';
import { type AdsSandbox, SANDBOX_DEFAULTS, startAdsSandbox } from '../../../sandbox/ads-api/server.ts';
import { AdsApiClient } from '../../../shared/ads/client.ts';
import { LwaTokenProvider } from '../../../shared/ads/lwa.ts';
import { marketplaceOf } from '../../../shared/ads/marketplaces.ts';
import type { Campaign, Keyword } from '../../../shared/ads/types.ts';
import { createAwsClients } from '../../../shared/aws.ts';
import { createMessenger, type Messenger } from '../../../shared/messaging/messenger.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, testConfig, workerEnv } from '../../support/env.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { waitForRecord } from '../../support/wait.ts';

/** One bulk test file's world: its own queues and bus, database and in-process Ads sandbox. */
export interface BulkWorld {
  readonly topology: TestTopology;
  readonly db: TestDatabase;
  readonly sandbox: AdsSandbox;
  readonly messenger: Messenger;
  /** A client of the sandbox without the fleet's rate limiter: the test's own view. */
  readonly ads: AdsApiClient;
  readonly config: ReturnType<typeof testConfig>;
  /** Environment of a bulk-item worker process in this world. */
  workerEnv(overrides?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export async function createBulkWorld(
  label: string,
  sizes: Partial<typeof SANDBOX_DEFAULTS.sizes> = {},
): Promise<BulkWorld> {
  const [topology, db, sandbox] = await Promise.all([
    createTestTopology(label),
    createTestDatabase(stackEnv().DATABASE_URL as string),
    startAdsSandbox({ sizes: { ...SANDBOX_DEFAULTS.sizes, ...sizes } }),
  ]);
  const config = testConfig({
    ADFLEET_RESOURCE_PREFIX: topology.prefix,
    DATABASE_URL: db.url,
    ADFLEET_ADS_API_URL: sandbox.url,
  });
  const clients = createAwsClients(config);
  const { messenger } = createMessenger(clients, config);
  const { credentials } = SANDBOX_DEFAULTS;
  const ads = new AdsApiClient({
    baseUrl: sandbox.url,
    clientId: credentials.clientId,
    tokens: new LwaTokenProvider({
      tokenUrl: `${sandbox.url}/auth/o2/token`,
      clientId: credentials.clientId,
      clientSecret: credentials.clientSecret,
      refreshToken: credentials.refreshToken,
    }),
  });
  return {
    topology,
    db,
    sandbox,
    messenger,
    ads,
    config,
    workerEnv: (overrides = {}) =>
      workerEnv(topology.prefix, {
        DATABASE_URL: db.url,
        ADFLEET_ADS_API_URL: sandbox.url,
        ADFLEET_CONCURRENCY: '10',
        ADFLEET_BULK_SWEEP_INTERVAL_MS: '1000',
        ADFLEET_BULK_RETRY_BASE_MS: '1000',
        ...overrides,
      }),
    async close() {
      clients.destroy();
      await Promise.allSettled([topology.destroy(), db.drop(), sandbox.close()]);
    },
  };
}

export function startBulkWorker(
  world: BulkWorld,
  overrides: Record<string, string> = {},
  name = 'bulk-item',
) {
  return spawnNode('workers/bulk-item/main.ts', { ...world.workerEnv(overrides), OTEL_SERVICE_NAME: name });
}

export async function waitForWorkers(workers: readonly NodeProcess[]) {
  await Promise.all(
    workers.map((worker) => worker.waitForLog((line) => line.msg === 'worker started', 90_000)),
  );
}

/** Every keyword and campaign of the given profiles, as the sandbox holds them now. */
export async function sandboxEntities(ads: AdsApiClient, profileIds: readonly number[]) {
  const keywords = new Map<string, Keyword & { profileId: number }>();
  const campaigns = new Map<string, Campaign & { profileId: number }>();
  for (const profileId of profileIds) {
    for await (const keyword of ads.keywords(profileId))
      keywords.set(keyword.keywordId, { ...keyword, profileId });
    for await (const campaign of ads.campaigns(profileId)) {
      campaigns.set(campaign.campaignId, { ...campaign, profileId });
    }
  }
  return { keywords, campaigns };
}

export interface FileRow {
  readonly profile_id: number;
  readonly entity_type: 'keyword' | 'campaign';
  readonly entity_id: string;
  readonly bid?: number;
  readonly budget?: number;
  readonly state?: 'ENABLED' | 'PAUSED';
  /** What the test expects: applied, or refused by Amazon. */
  readonly expect: 'applied' | 'rejected';
}

/** A bid inside the profile's marketplace bounds, different from `current`. */
export function newBid(countryCode: string, current: number, salt: number): number {
  const { min } = marketplaceOf(countryCode).bid;
  const bid = Number((min * (2 + (salt % 50))).toFixed(2));
  return bid === current ? Number((bid + min).toFixed(2)) : bid;
}

/**
 * Rows over the sandbox's profiles: `perProfile` each, of which `invalidPerProfile` Amazon
 * refuses (archived keywords, ids that do not exist), the rest valid bid, state and budget
 * changes.
 */
export async function buildRows(
  world: BulkWorld,
  profileIds: readonly number[],
  perProfile: number,
  invalidPerProfile: number,
  salt = 0,
): Promise<FileRow[]> {
  const { keywords, campaigns } = await sandboxEntities(world.ads, profileIds);
  const profiles = new Map((await world.ads.listProfiles()).map((p) => [p.profileId, p]));
  const rows: FileRow[] = [];
  for (const profileId of profileIds) {
    const country = profiles.get(profileId)?.countryCode ?? 'US';
    const own = [...keywords.values()].filter((k) => k.profileId === profileId);
    const live = own.filter((k) => k.state !== 'ARCHIVED');
    const archived = own.filter((k) => k.state === 'ARCHIVED');
    const liveCampaigns = [...campaigns.values()].filter(
      (c) => c.profileId === profileId && c.state !== 'ARCHIVED',
    );
    const valid = perProfile - invalidPerProfile;
    let made = 0;
    for (const campaign of liveCampaigns.slice(0, Math.min(3, Math.floor(valid / 10)))) {
      const min = marketplaceOf(country).dailyBudget.min;
      rows.push({
        profile_id: profileId,
        entity_type: 'campaign',
        entity_id: campaign.campaignId,
        budget: Number((min * (20 + ((made + salt) % 30))).toFixed(2)),
        expect: 'applied',
      });
      made += 1;
    }
    for (const keyword of live.slice(0, valid - made)) {
      const pause = (made + salt) % 7 === 0;
      rows.push({
        profile_id: profileId,
        entity_type: 'keyword',
        entity_id: keyword.keywordId,
        bid: newBid(country, keyword.bid, made + salt),
        ...(pause ? { state: keyword.state === 'PAUSED' ? 'ENABLED' : 'PAUSED' } : {}),
        expect: 'applied',
      });
      made += 1;
    }
    expect(made).toBe(valid);
    for (let i = 0; i < invalidPerProfile; i += 1) {
      const archivedKeyword = archived[i];
      rows.push(
        i % 2 === 0 && archivedKeyword !== undefined
          ? {
              profile_id: profileId,
              entity_type: 'keyword',
              entity_id: archivedKeyword.keywordId,
              bid: newBid(country, archivedKeyword.bid, i),
              expect: 'rejected',
            }
          : {
              profile_id: profileId,
              entity_type: 'keyword',
              entity_id: String(9_000_000_000_000 + (profileId % 1_000_000) * 100 + i),
              bid: newBid(country, 0, i),
              expect: 'rejected',
            },
      );
    }
  }
  return rows;
}

export async function writeCsv(rows: readonly FileRow[], name: string): Promise<string> {
  const path = join(tmpdir(), `${name}-${process.pid}-${Date.now()}.csv`);
  const lines = ['profile_id,entity_type,entity_id,bid,budget,state'];
  for (const row of rows) {
    lines.push(
      [row.profile_id, row.entity_type, row.entity_id, row.bid ?? '', row.budget ?? '', row.state ?? ''].join(
        ',',
      ),
    );
  }
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

export async function waitForJob(
  pool: pg.Pool,
  jobId: string,
  predicate: (job: BulkJob) => boolean = (job) => TERMINAL_JOB_STATUSES.includes(job.status),
  what = 'final',
  timeoutMs = 60_000,
): Promise<BulkJob> {
  return waitForRecord(() => loadJob(pool, jobId), predicate, {
    timeoutMs,
    intervalMs: 200,
    failure: async (job) => {
      const { rows } = await pool.query(
        `SELECT status, error_code, count(*)::int AS n, min(due_at) AS due, max(attempts) AS attempts
           FROM bulk_items WHERE job_id = $1 GROUP BY 1, 2`,
        [jobId],
      );
      return new Error(
        `bulk job ${jobId}: not ${what} within ${timeoutMs} ms; last: ${JSON.stringify(job)}; items: ${JSON.stringify(rows)}`,
      );
    },
  });
}

export interface ItemRecord {
  id: number;
  line: number;
  entity_type: string;
  entity_id: string;
  change: { bid?: number; budget?: number; state?: string };
  status: string;
  attempts: number;
  error_code: string | null;
  error_message: string | null;
}

export async function itemsOf(pool: pg.Pool, jobId: string): Promise<ItemRecord[]> {
  const { rows } = await pool.query<ItemRecord>(
    `SELECT id, line, entity_type, entity_id::text AS entity_id, change, status, attempts, error_code,
            error_message
       FROM bulk_items WHERE job_id = $1 ORDER BY id`,
    [jobId],
  );
  return rows;
}

/** The job's counters against a count of its items' statuses. */
export async function expectCountsMatchItems(pool: pg.Pool, jobId: string) {
  const { rows } = await pool.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM bulk_items WHERE job_id = $1 GROUP BY status',
    [jobId],
  );
  const actual = Object.fromEntries(rows.map((row) => [row.status.toLowerCase(), row.n]));
  const job = (await loadJob(pool, jobId)) as BulkJob;
  const { total, ...perStatus } = job.counts;
  for (const [status, count] of Object.entries(perStatus)) expect(count, status).toBe(actual[status] ?? 0);
  expect(total).toBe(rows.reduce((sum, row) => sum + row.n, 0));
}

/** Runs the CLI as an operator would. */
export function runCli(world: BulkWorld, args: readonly string[], env: Record<string, string> = {}) {
  return spawnNode('cli/main.ts', { ...world.workerEnv(), LOG_LEVEL: 'warn', ...env }, args);
}

export async function cliOutput(process: NodeProcess): Promise<{ code: number | null; stdout: string }> {
  const { code } = await process.exited;
  const stdout = [...process.logs.map((line) => JSON.stringify(line)), ...process.output].join('\n');
  return { code, stdout };
}
