import type pg from 'pg';
import { expect } from 'vitest';
import { loadJob } from '../../domain/backfill/jobs.ts';
import { type Started, type StartRequest, startBackfill } from '../../domain/backfill/lifecycle.ts';
import type { BackfillJob } from '../../domain/backfill/records.ts';
import { BACKFILLS } from '../../domain/backfill/registry.ts';
import { seedCampaigns } from '../../scripts/fixtures/seed-campaigns.ts';
import { createAwsClients } from '../../shared/aws.ts';
import { createLogger, type Logger } from '../../shared/logging.ts';
import { createMessenger, type Messenger } from '../../shared/messaging/messenger.ts';
import { type RunningWorker, startWorker } from '../../shared/runtime/start-worker.ts';
import {
  type BackfillWorkerOptions,
  createBackfillChunkWorker,
} from '../../workers/backfill-chunk/worker.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { stackEnv, testConfig } from './env.ts';
import { createTestTopology, type TestTopology } from './topology.ts';
import { waitForRecord } from './wait.ts';

/**
 * One test file's world: its own queues and bus, its own seeded database, a messenger to
 * send with, and at most one in-process backfill-chunk worker at a time.
 */
export interface BackfillWorld {
  readonly topology: TestTopology;
  readonly db: TestDatabase;
  readonly messenger: Messenger;
  readonly logger: Logger;
  readonly config: ReturnType<typeof testConfig>;
  /** (Re)starts the world's worker in this process: the running one, if any, is stopped first. */
  startWorker(options?: BackfillWorkerOptions): Promise<RunningWorker>;
  /** Stops the world's worker, if one runs. */
  stopWorker(): Promise<void>;
  /** Starts a campaign-currency job (throttle relaxed unless `request` says otherwise). */
  startCurrencyBackfill(request?: Omit<StartRequest, 'name'>): Promise<Started>;
  close(): Promise<void>;
}

export async function createBackfillWorld(
  label: string,
  seed: { profiles: number; campaigns: number },
): Promise<BackfillWorld> {
  const [topology, db] = await Promise.all([
    createTestTopology(label),
    createTestDatabase(stackEnv().DATABASE_URL as string),
  ]);
  await seedCampaigns(db.pool, seed);
  await installWriteCounter(db.pool);
  const config = testConfig({ ADFLEET_RESOURCE_PREFIX: topology.prefix, DATABASE_URL: db.url });
  const clients = createAwsClients(config);
  const { messenger } = createMessenger(clients, config);
  const logger = createLogger({ level: 'warn', name: `test-${label}`, pretty: false });
  let worker: RunningWorker | undefined;
  const stopWorker = async () => {
    const running = worker;
    worker = undefined;
    await running?.stop();
  };
  return {
    topology,
    db,
    messenger,
    config,
    logger,
    async startWorker(options = {}) {
      await stopWorker();
      worker = await startWorker(createBackfillChunkWorker(options), { config, logger, waitTimeSeconds: 1 });
      return worker;
    },
    stopWorker,
    startCurrencyBackfill(request = {}) {
      return startBackfill(db.pool, messenger, BACKFILLS, {
        name: 'campaign-currency',
        throttle: RELAXED_THROTTLE,
        ...request,
      });
    },
    async close() {
      await stopWorker();
      clients.destroy();
      await Promise.allSettled([topology.destroy(), db.drop()]);
    },
  };
}

export { checkResult, installWriteCounter, type ResultCheck } from './backfill-result.ts';

import { checkResult, installWriteCounter } from './backfill-result.ts';

/**
 * The exact result of a completed campaign-currency job over `campaigns` rows: every row
 * filled with the expected currency, each written once, every row counted by the job.
 */
export async function expectExactResult(pool: pg.Pool, jobId: string, campaigns: number) {
  const result = await checkResult(pool);
  expect(result).toMatchObject({
    campaigns,
    filled: campaigns,
    wrong: 0,
    writtenRows: campaigns,
    maxWrites: 1,
  });
  expect(await rowsProcessed(pool, jobId)).toBe(campaigns);
  return result;
}

/** Back to before any backfill: currency NULL, no write counted, no jobs. */
export async function resetBackfill(pool: pg.Pool): Promise<void> {
  await pool.query('ALTER TABLE campaigns DISABLE TRIGGER campaign_currency_writes');
  await pool.query('UPDATE campaigns SET currency_code = NULL WHERE currency_code IS NOT NULL');
  await pool.query('ALTER TABLE campaigns ENABLE TRIGGER campaign_currency_writes');
  await pool.query('TRUNCATE campaign_currency_writes');
  await pool.query('DELETE FROM backfill_jobs');
}

/** Polls the job until `predicate` holds; fails with the job's last state after the deadline. */
export async function waitForJob(
  pool: pg.Pool,
  jobId: string,
  predicate: (job: BackfillJob) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<BackfillJob> {
  return waitForRecord(() => loadJob(pool, jobId), predicate, {
    timeoutMs,
    intervalMs: 100,
    failure: (job) =>
      new Error(
        `backfill job ${jobId}: ${what} not within ${timeoutMs} ms; last state: ${JSON.stringify(job, null, 1)}`,
      ),
  });
}

export async function rowsProcessed(pool: pg.Pool, jobId: string): Promise<number> {
  const { rows } = await pool.query<{ rows: number }>(
    'SELECT coalesce(sum(rows_processed), 0)::bigint AS rows FROM backfill_partitions WHERE job_id = $1',
    [jobId],
  );
  return rows[0]?.rows ?? 0;
}

/**
 * For tests about something other than throttling: the suite shares one Postgres with
 * other test files (and a 2-core machine), whose load must not slow these backfills to a
 * crawl. The throttle itself is tested in test/workers/backfill-chunk/*-throttle.test.ts.
 */
export const RELAXED_THROTTLE = {
  probeLatencyMs: { slow: 5_000, pause: 60_000 },
  activeConnections: { slow: 1_000, pause: 2_000 },
} as const;
