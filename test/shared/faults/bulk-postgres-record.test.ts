import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NodeProcess } from '../../support/processes.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  itemsOf,
  runCli,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from '../../workers/bulk-item/support.ts';
import { proxyFor } from './support.ts';

/**
 * Postgres goes away while a batch's Ads call is in flight: Amazon applies the changes,
 * and the worker cannot record that. It records again until Postgres answers (within the
 * lease), so the items end SUCCEEDED once, applied once. A worker that gave up on the first
 * failed record would leave them RUNNING until the lease ran out, and the sweeper would
 * then send them to Amazon a second time.
 */
describe('Postgres down between Amazon’s answer and its record', { timeout: 180_000 }, () => {
  let world: BulkWorld;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    world = await createBulkWorld('bulk-pg-record', { profiles: 2 });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await world.close();
  });

  it('records the answer once Postgres is back and applies nothing twice', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 5, 0);
    const file = await writeCsv(rows, 'bulk-pg-record');
    const { proxy, url } = await proxyFor(world.db.url);
    try {
      worker = startBulkWorker(world, {
        DATABASE_URL: url,
        ADFLEET_BULK_BATCH_SIZE: '5',
        ADFLEET_BULK_LEASE_MS: '20000',
      });
      await waitForWorkers([worker]);
      world.sandbox.admin.reset();
      world.sandbox.admin.injectFaults({ latencyMs: 4_000 });

      const submit = runCli(world, ['bulk', 'submit', file, '--json']);
      const { code } = await cliOutput(submit);
      expect(code, submit.output.join('')).toBe(0);
      const jobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);
      await vi.waitFor(
        async () => {
          const running = (await itemsOf(world.db.pool, jobId)).filter((item) => item.status === 'RUNNING');
          expect(running, 'the batch claimed, its call on its way').toHaveLength(rows.length);
        },
        { timeout: 60_000, interval: 100 },
      );
      await sleep(1_000);
      await proxy.cut();
      // The call answers about 3 s later, with Postgres still away.
      await sleep(6_000);
      expect(Object.keys(world.sandbox.admin.mutations().keywords), 'Amazon applied it').toHaveLength(
        rows.filter((row) => row.entity_type === 'keyword').length,
      );
      await proxy.restore();

      const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 60_000);
      expect(job.status).toBe('COMPLETED');
      const items = await itemsOf(world.db.pool, jobId);
      expect(items.map((item) => [item.status, item.attempts])).toEqual(rows.map(() => ['SUCCEEDED', 1]));
      // Longer than the lease: a sweeper that found them RUNNING would have sent them again by now.
      await sleep(22_000);
      const mutations = world.sandbox.admin.mutations();
      for (const row of rows) {
        const counts = row.entity_type === 'keyword' ? mutations.keywords : mutations.campaigns;
        expect(counts[row.entity_id], row.entity_id).toBe(1);
      }
      expect(
        worker.logs.some((line) => line.msg === 'Postgres unavailable: recording Amazon’s answer again'),
      ).toBe(true);
    } finally {
      world.sandbox.admin.injectFaults({});
      await proxy.close();
    }
  });
});
