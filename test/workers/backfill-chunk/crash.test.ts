import { setTimeout as sleep } from 'node:timers/promises';
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

const CAMPAIGNS = 100_000;
const KILLS = 3;

describe('backfill survives SIGKILL', { timeout: 180_000 }, () => {
  let world: BackfillWorld;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    world = await createBackfillWorld('backfill-kill', { profiles: 300, campaigns: CAMPAIGNS });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await world.close();
  });

  function spawnWorker() {
    return spawnNode(
      'workers/backfill-chunk/main.ts',
      workerEnv(world.topology.prefix, { DATABASE_URL: world.db.url, LOG_LEVEL: 'warn' }),
    );
  }

  it(`finishes with the exact result after ${KILLS} kill -9s at random points`, async () => {
    const { job } = await world.startCurrencyBackfill({
      batchSize: 1_000,
      batchesPerChunk: 4,
      parallel: 2,
      // Slow enough that every kill lands mid-way, however fast this machine is today.
      maxRate: 8_000,
      // Kills leave messages invisible for the queue's visibility timeout; the watchdog
      // restarts a chain that has shown no progress for this long.
      stallAfterMs: 2_000,
    });
    const killedAt: number[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      worker = spawnWorker();
      const before = await rowsProcessed(world.db.pool, job.id);
      // Progress first, so each kill lands in the middle of live batches and sends.
      await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Running, 'running');
      const deadline = Date.now() + 45_000;
      while ((await rowsProcessed(world.db.pool, job.id)) <= before) {
        if (Date.now() > deadline) throw new Error(`no progress after restart ${kill}`);
        await sleep(50);
      }
      await sleep(100 + Math.floor(Math.random() * 900));
      const result = await worker.stop('SIGKILL');
      expect(result.signal).toBe('SIGKILL');
      killedAt.push(await rowsProcessed(world.db.pool, job.id));
    }
    // Every kill happened before the end, so each one cut into a running backfill.
    expect(killedAt.every((rows) => rows < CAMPAIGNS)).toBe(true);
    expect((await waitForJob(world.db.pool, job.id, () => true, 'load')).status).toBe(JobStatus.Running);

    worker = spawnWorker();
    await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Completed, 'completion', 120_000);
    await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
  });
});
