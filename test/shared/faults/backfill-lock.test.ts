import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobStatus } from '../../../domain/backfill/status.ts';
import {
  type BackfillWorld,
  createBackfillWorld,
  expectExactResult,
  rowsProcessed,
  waitForJob,
} from '../../support/backfill.ts';
import { workerEnv } from '../../support/env.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';

const CAMPAIGNS = 20_000;

/**
 * A production transaction holding the rows of the backfill's next batch: the batch gives up
 * its lock wait after lock_timeout and the chain backs off (instead of queueing behind the
 * lock with its own locks held), SIGTERM still drains in time, and the backfill finishes
 * exactly once the lock is released.
 */
describe('backfill and a held row lock', { timeout: 240_000 }, () => {
  let world: BackfillWorld;
  let worker: NodeProcess | undefined;
  let holder: pg.Client | undefined;

  beforeAll(async () => {
    world = await createBackfillWorld('backfill-lock', { profiles: 50, campaigns: CAMPAIGNS });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await holder?.end().catch(() => {});
    await world.close();
  });

  function spawnWorker() {
    return spawnNode(
      'workers/backfill-chunk/main.ts',
      workerEnv(world.topology.prefix, {
        DATABASE_URL: world.db.url,
        LOG_LEVEL: 'info',
        ADFLEET_DRAIN_TIMEOUT_MS: '8000',
        ADFLEET_POLL_WAIT_SECONDS: '1',
      }),
    );
  }

  it('backs off while the rows are locked, stops in time, and carries on when the lock is released', async () => {
    const { job } = await world.startCurrencyBackfill({
      batchSize: 1_000,
      batchesPerChunk: 4,
      parallel: 1,
      maxRate: 4_000,
    });
    worker = spawnWorker();
    const deadline = Date.now() + 60_000;
    while ((await rowsProcessed(world.db.pool, job.id)) === 0) {
      if (Date.now() > deadline) throw new Error('no progress');
      await sleep(100);
    }
    holder = new pg.Client({ connectionString: world.db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM campaigns WHERE currency_code IS NULL FOR UPDATE');

    await worker.waitForLog(
      (line) => line.msg === 'backfill batch could not get its row locks: backing off',
      60_000,
    );
    const stuckAt = await rowsProcessed(world.db.pool, job.id);
    expect(stuckAt).toBeLessThan(CAMPAIGNS);

    const stopAt = Date.now();
    expect((await worker.stop('SIGTERM')).code).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(8_000 + 2_000 + 5_000); // drain + one short poll + slack
    expect(await rowsProcessed(world.db.pool, job.id)).toBe(stuckAt);

    worker = spawnWorker();
    await sleep(3_000);
    await holder.query('ROLLBACK');
    await waitForJob(
      world.db.pool,
      job.id,
      (j) => j.status === JobStatus.Completed,
      'completion',
      120_000,
    ).catch((error: unknown) => {
      throw new Error(
        `${String(error)}\nworker log:\n${worker?.logs.map((line) => JSON.stringify(line)).join('\n')}`,
      );
    });
    await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
  });
});
