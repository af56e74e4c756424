import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
} from './support.ts';

const LEASE_MS = 5_000;
/** Longer than the lease, shorter than the client's 10 s timeout. */
const CALL_MS = 8_000;

/**
 * A call slower than the lease: its worker renews the lease while the call is in flight,
 * so the items stay its own, end SUCCEEDED at their first attempt and are applied once.
 * Without renewal the call is abandoned before the lease ends (and the sweeper would take
 * the items back at its end): every item would spend a second attempt.
 */
describe('bulk leases are renewed while the call runs', { timeout: 120_000 }, () => {
  let world: BulkWorld;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    world = await createBulkWorld('bulk-lease', { profiles: 2 });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await world.close();
  });

  it('keeps the items of a call slower than the lease, and applies each once', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 5, 0);
    const file = await writeCsv(rows, 'bulk-lease');
    worker = startBulkWorker(world, {
      ADFLEET_BULK_BATCH_SIZE: '5',
      ADFLEET_BULK_LEASE_MS: String(LEASE_MS),
    });
    await waitForWorkers([worker]);
    world.sandbox.admin.reset();
    world.sandbox.admin.injectFaults({ latencyMs: CALL_MS });
    try {
      const started = Date.now();
      const submit = runCli(world, ['bulk', 'submit', file, '--json']);
      const { code } = await cliOutput(submit);
      expect(code, submit.output.join('')).toBe(0);
      const jobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);
      const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 60_000);
      expect(job.status).toBe('COMPLETED');
      expect(Date.now() - started, 'the call outlived the lease').toBeGreaterThan(CALL_MS);
      const items = await itemsOf(world.db.pool, jobId);
      expect(items.map((item) => [item.status, item.attempts])).toEqual(rows.map(() => ['SUCCEEDED', 1]));
      const mutations = world.sandbox.admin.mutations();
      for (const row of rows) {
        const counts = row.entity_type === 'keyword' ? mutations.keywords : mutations.campaigns;
        expect(counts[row.entity_id], row.entity_id).toBe(1);
      }
      expect(worker.logs.filter((line) => line.msg === 'bulk sweep' && Number(line.recovered) > 0)).toEqual(
        [],
      );
    } finally {
      world.sandbox.admin.injectFaults({});
    }
  });
});
