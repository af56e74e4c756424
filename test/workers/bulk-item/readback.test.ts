import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeProcess } from '../../support/processes.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  type FileRow,
  itemsOf,
  runCli,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from './support.ts';

/** Longer than nothing, shorter than the lease: Amazon applies the batch after its caller died. */
const CALL_MS = 2_000;
const LEASE_MS = 5_000;

/**
 * Read before re-send (domain/bulk/verify.ts): a worker killed while Amazon applies its batch
 * never records the answer; when its items' lease runs out they are taken back, and before
 * they are sent again their keywords are read back. Amazon already holds the changes, so
 * the items end SUCCEEDED with what was read and no change reaches Amazon twice.
 */
describe('bulk items whose call went unanswered are read back before they are sent again', {
  timeout: 120_000,
}, () => {
  let world: BulkWorld;
  const workers: NodeProcess[] = [];
  const settings = {
    ADFLEET_BULK_BATCH_SIZE: '5',
    ADFLEET_BULK_LEASE_MS: String(LEASE_MS),
    ADFLEET_BULK_SWEEP_INTERVAL_MS: '1000',
  };

  beforeAll(async () => {
    world = await createBulkWorld('bulk-readback', { profiles: 1 });
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await world.close();
  });

  /**
   * Submits `rows` with a worker that Amazon answers CALL_MS late, kills it once the batch's
   * update has reached Amazon, lets Amazon apply it, then starts a steady worker and waits
   * for the job to end: the items come back from their expired lease, unanswered.
   */
  async function killMidCall(rows: readonly FileRow[], name: string, profileId: number) {
    const file = await writeCsv(rows, name);
    const victim = startBulkWorker(world, settings, `${name}-victim`);
    workers.push(victim);
    await waitForWorkers([victim]);
    world.sandbox.admin.reset();
    world.sandbox.admin.injectFaults({ latencyMs: CALL_MS });

    const submit = runCli(world, ['bulk', 'submit', file, '--json']);
    const { code } = await cliOutput(submit);
    expect(code, submit.output.join('')).toBe(0);
    const jobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);

    // The batch's update has reached Amazon, which holds it CALL_MS before applying it.
    const deadline = Date.now() + 30_000;
    const updates = () => (world.sandbox.admin.stats().profiles[String(profileId)]?.requests ?? 0) > 0;
    while (!updates() && Date.now() < deadline) await sleep(20);
    expect(updates(), 'the batch reached Amazon').toBe(true);
    victim.child.kill('SIGKILL');
    await victim.exited;
    world.sandbox.admin.injectFaults({});
    // Amazon has applied what the dead worker sent, and nobody heard the answer.
    await sleep(CALL_MS + 200);
    const before = await itemsOf(world.db.pool, jobId);
    expect(before.map((item) => item.status)).toEqual(rows.map(() => 'RUNNING'));
    const appliedBefore = { ...world.sandbox.admin.mutations().keywords };

    const steady = startBulkWorker(world, settings, `${name}-steady`);
    workers.push(steady);
    const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 60_000);
    await steady.stop('SIGTERM');
    const { rows: items } = await world.db.pool.query<{
      entity_id: string;
      status: string;
      attempts: number;
      error_message: string | null;
      response: { readBack?: { keywordId: string; bid: number } } | null;
    }>(
      'SELECT entity_id::text AS entity_id, status, attempts, error_message, response FROM bulk_items WHERE job_id = $1 ORDER BY id',
      [jobId],
    );
    return { job, items, appliedBefore };
  }

  it('a batch Amazon applied for a worker that died ends SUCCEEDED, applied once', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 5, 0);
    const { job, items, appliedBefore } = await killMidCall(rows, 'bulk-readback', profileId as number);
    expect(rows.map((row) => appliedBefore[row.entity_id])).toEqual(rows.map(() => 1));
    expect(job.status).toBe('COMPLETED');
    // The lost attempt is counted; the read found each change in place.
    expect(items.map((item) => [item.status, item.attempts])).toEqual(rows.map(() => ['SUCCEEDED', 1]));
    expect(items.map((item) => item.response?.readBack?.bid)).toEqual(rows.map((row) => row.bid));
    // Applied once each: nothing was sent again.
    const mutations = world.sandbox.admin.mutations().keywords;
    expect(rows.map((row) => mutations[row.entity_id])).toEqual(rows.map(() => 1));
  });

  it('an archived keyword that already holds the requested bid is sent again and ends FAILED with Amazon’s refusal', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 5, 0, 1);
    // Archived at Amazon, with the very bid the file asks for: Amazon refuses the change,
    // and the read-back must not take the equal value for a change in place.
    const [archived, ...live] = rows as [FileRow, ...FileRow[]];
    world.sandbox.admin.updateEntities('keyword', [
      { id: Number(archived.entity_id), state: 'ARCHIVED', bid: archived.bid as number },
    ]);
    const { job, items } = await killMidCall(rows, 'bulk-readback-archived', profileId as number);
    expect(job.status).toBe('COMPLETED_WITH_ERRORS');
    const [first, ...rest] = items;
    expect(first?.entity_id).toBe(archived.entity_id);
    expect(first?.status).toBe('FAILED');
    expect(first?.error_message).toMatch(/archived/i);
    // Sent again after the read-back: the dead worker's attempt and the refused one.
    expect(first?.attempts).toBe(2);
    expect(rest.map((item) => item.status)).toEqual(live.map(() => 'SUCCEEDED'));
    const mutations = world.sandbox.admin.mutations().keywords;
    expect(mutations[archived.entity_id] ?? 0).toBe(0);
    expect(live.map((row) => mutations[row.entity_id])).toEqual(live.map(() => 1));
  });
});
