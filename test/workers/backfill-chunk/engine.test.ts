import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BackfillChunk } from '../../../domain/backfill/messages.ts';
import { loadPartitions } from '../../../domain/backfill/partitions.ts';
import { JobStatus } from '../../../domain/backfill/status.ts';
import {
  type BackfillWorld,
  createBackfillWorld,
  expectExactResult,
  resetBackfill,
  rowsProcessed,
  waitForJob,
} from '../../support/backfill.ts';
import { queueDepth } from '../../support/queues.ts';

const CAMPAIGNS = 100_000;

describe('backfill engine: campaign-currency over 100,000 rows', { timeout: 120_000 }, () => {
  let world: BackfillWorld;
  let failNextSend = 0;

  beforeAll(async () => {
    world = await createBackfillWorld('backfill-engine', { profiles: 500, campaigns: CAMPAIGNS });
  });
  afterAll(async () => {
    await world.close();
  });
  beforeEach(async () => {
    await world.stopWorker();
    failNextSend = 0;
    await resetBackfill(world.db.pool);
  });

  async function start(options: { watchdog?: boolean } = {}) {
    await world.startWorker({
      watchdog: options.watchdog ?? false,
      beforeSendNext: () => {
        if (failNextSend > 0) {
          failNextSend -= 1;
          throw new Error('simulated crash between the commit and sending the next chunk');
        }
      },
    });
  }

  it('fills every row exactly once, with the right currency, and completes', async () => {
    await start();
    const { job } = await world.startCurrencyBackfill({
      batchSize: 2_000,
      batchesPerChunk: 5,
    });
    expect(job.highWaterId - job.lowId).toBe(CAMPAIGNS);
    const done = await waitForJob(
      world.db.pool,
      job.id,
      (j) => j.status === JobStatus.Completed,
      'completion',
    );
    const result = await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
    // The seed makes the transform matter: about one campaign in ten is billed in a
    // currency other than its marketplace's, and one marketplace in twelve falls back.
    expect(result.notProfileCurrency).toBeGreaterThan(CAMPAIGNS / 20);
    expect(result.fallback).toBeGreaterThan(CAMPAIGNS / 20);
    expect(done.rowsProcessed).toBe(CAMPAIGNS);
    expect(done.finishedAt).not.toBeNull();
    expect(done.lastThrottle?.state).toBe('healthy');
  });

  it('splits the id range into partitions with one chain each (--parallel 4)', async () => {
    await start();
    const { job, partitions } = await world.startCurrencyBackfill({
      batchSize: 2_000,
      batchesPerChunk: 5,
      parallel: 4,
    });
    expect(partitions).toHaveLength(4);
    expect(partitions[0]?.rangeStart).toBe(job.lowId);
    expect(partitions.at(-1)?.rangeEnd).toBe(job.highWaterId);
    for (let index = 1; index < partitions.length; index += 1) {
      expect(partitions[index]?.rangeStart).toBe(partitions[index - 1]?.rangeEnd);
    }
    await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Completed, 'completion');
    const done = await loadPartitions(world.db.pool, job.id);
    expect(done.map((partition) => partition.status)).toEqual(Array(4).fill('completed'));
    expect(done.reduce((sum, partition) => sum + partition.rowsProcessed, 0)).toBe(CAMPAIGNS);
    await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
  });

  it('carries on when the worker fails between a commit and sending the next chunk (redelivery adopts the checkpoint)', async () => {
    failNextSend = 2;
    await start();
    const { job } = await world.startCurrencyBackfill({
      batchSize: 5_000,
      batchesPerChunk: 4,
    });
    await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Completed, 'completion', 90_000);
    expect(failNextSend).toBe(0);
    await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
  });

  it('ignores duplicate and stale chunk messages: no double work, no second chain', async () => {
    await start();
    const { job } = await world.startCurrencyBackfill({
      batchSize: 1_000,
      batchesPerChunk: 2,
    });
    // Once the chain is under way, flood it with copies of its first message (stale) and
    // of its current position (duplicates racing the real chain for the same cursor).
    await waitForJob(world.db.pool, job.id, (j) => j.rowsProcessed >= 10_000, 'progress');
    const [partition] = await loadPartitions(world.db.pool, job.id);
    if (partition === undefined) throw new Error('no partition');
    const copies: BackfillChunk[] = [];
    for (let copy = 0; copy < 5; copy += 1) {
      copies.push({ jobId: job.id, partition: 0, cursor: job.lowId, chunk: 1, traceChunks: 0 });
      copies.push({ jobId: job.id, partition: 0, cursor: partition.cursor, chunk: 99, traceChunks: 0 });
    }
    await world.messenger.sendBatch('BackfillChunk', copies);
    await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Completed, 'completion', 90_000);
    // After completion, more copies change nothing either (measured before they are sent).
    const processedBefore = await rowsProcessed(world.db.pool, job.id);
    const batchesBefore = (await loadPartitions(world.db.pool, job.id))[0]?.batches;
    await world.messenger.send('BackfillChunk', {
      jobId: job.id,
      partition: 0,
      cursor: partition.cursor,
      chunk: 7,
      traceChunks: 0,
    } satisfies BackfillChunk);
    await world.messenger.publish('BackfillRequested', { jobId: job.id });
    await waitUntilQueueDrained(world);
    expect(await rowsProcessed(world.db.pool, job.id)).toBe(CAMPAIGNS);
    expect(processedBefore).toBe(CAMPAIGNS);
    expect((await loadPartitions(world.db.pool, job.id))[0]?.batches).toBe(batchesBefore);
    // One chain: one batch per 1,000 ids plus the empty one that finds the range exhausted.
    expect(batchesBefore).toBe(CAMPAIGNS / 1_000 + 1);
    await expectExactResult(world.db.pool, job.id, CAMPAIGNS);
  });
});

/** Waits until the worker handled everything on its queue (nothing visible, in flight or delayed) for 1.5 s. */
async function waitUntilQueueDrained(world: BackfillWorld) {
  const url = world.topology.state.queues['backfill-chunk'].url;
  let quietSince: number | undefined;
  await vi.waitFor(
    async () => {
      if ((await queueDepth(world.topology.clients.sqs, url)) > 0) quietSince = undefined;
      else quietSince ??= Date.now();
      expect(
        Date.now() - (quietSince ?? Date.now()),
        'ms the backfill-chunk queue has been empty',
      ).toBeGreaterThan(1_500);
    },
    { timeout: 30_000, interval: 200 },
  );
}
