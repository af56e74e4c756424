import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Payload } from '../../../contract/events.ts';
import { dispatchJob } from '../../../domain/bulk/dispatch.ts';
import { submitBulkFile } from '../../../domain/bulk/submit.ts';
import { createLogger } from '../../../shared/logging.ts';
import { type RunningWorker, startWorker } from '../../../shared/runtime/start-worker.ts';
import { createBulkItemWorker } from '../../../workers/bulk-item/worker.ts';
import { testConfig } from '../../support/env.ts';
import type { NodeProcess } from '../../support/processes.ts';
import { drainMessages } from '../../support/queues.ts';
import {
  type BulkWorld,
  buildRows,
  createBulkWorld,
  expectCountsMatchItems,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from './support.ts';

/** At-least-once delivery: duplicates of every message, and workers racing on a job's last items. */
describe('bulk delivery', { timeout: 150_000 }, () => {
  let world: BulkWorld;
  let worker: RunningWorker | undefined;
  let processes: NodeProcess[] = [];

  beforeAll(async () => {
    world = await createBulkWorld('bulk-delivery', { profiles: 6 });
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    await world.close();
  });

  const bulkQueue = () => world.topology.state.queues['bulk-item'].url;
  const syncQueue = () => world.topology.state.queues['profile-sync'].url;

  async function submitted(rows: Awaited<ReturnType<typeof buildRows>>, name: string): Promise<string> {
    const result = await submitBulkFile(world.db.pool, {
      path: await writeCsv(rows, name),
      submittedBy: 'test',
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    return result.jobId as string;
  }

  async function completedEvents(jobId: string, atLeast: number) {
    const messages = await drainMessages(world.topology.clients.sqs, syncQueue(), atLeast, 20_000);
    await sleep(3_000); // a second event would have arrived by now
    messages.push(...(await drainMessages(world.topology.clients.sqs, syncQueue(), 0, 2_000)));
    return messages
      .map((message) => JSON.parse(message.Body ?? '{}'))
      .filter((event) => event['detail-type'] === 'BulkJobCompleted' && event.detail.jobId === jobId);
  }

  async function outboxRows(jobId: string): Promise<number> {
    const { rows } = await world.db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM bulk_outbox WHERE job_id = $1',
      [jobId],
    );
    return rows[0]?.n ?? 0;
  }

  it('a duplicated dispatch enqueues nothing twice; duplicated batches apply nothing twice', async () => {
    const profileIds = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, profileIds, 30, 3);
    const jobId = await submitted(rows, 'bulk-dup');
    const batchSize = 10;

    // Two dispatches at once and one after: each item is sent in exactly one batch.
    await Promise.all([
      dispatchJob(world.db.pool, world.messenger, jobId, batchSize),
      dispatchJob(world.db.pool, world.messenger, jobId, batchSize),
    ]);
    expect((await dispatchJob(world.db.pool, world.messenger, jobId, batchSize)).batches).toBe(0);
    const groups = new Map<string, number>();
    for (const row of rows)
      groups.set(
        `${row.profile_id}:${row.entity_type}`,
        (groups.get(`${row.profile_id}:${row.entity_type}`) ?? 0) + 1,
      );
    // One batch per profile and entity type per 10 items.
    const expectedBatches = [...groups.values()].reduce((sum, n) => sum + Math.ceil(n / batchSize), 0);
    const sent = await drainMessages(world.topology.clients.sqs, bulkQueue(), expectedBatches, 20_000);
    await sleep(1_000);
    sent.push(...(await drainMessages(world.topology.clients.sqs, bulkQueue(), 0, 2_000)));
    const batches = sent.map(
      (message) => JSON.parse(message.Body ?? '{}').payload as Payload<'BulkItemBatch'>,
    );
    expect(batches).toHaveLength(expectedBatches);
    const ids = batches.flatMap((batch) => batch.itemIds);
    expect(new Set(ids).size).toBe(rows.length);
    expect(ids).toHaveLength(rows.length);

    // Every batch delivered twice, to a running worker.
    world.sandbox.admin.reset();
    const config = testConfig({
      ADFLEET_RESOURCE_PREFIX: world.topology.prefix,
      DATABASE_URL: world.db.url,
      ADFLEET_ADS_API_URL: world.sandbox.url,
      ADFLEET_CONCURRENCY: '8',
      ADFLEET_BULK_SWEEP_INTERVAL_MS: '1000',
    });
    worker = await startWorker(createBulkItemWorker(), {
      config,
      logger: createLogger({ level: 'silent', name: 'bulk-item' }),
      waitTimeSeconds: 1,
    });
    await world.messenger.sendBatch('BulkItemBatch', [...batches, ...batches]);
    const job = await waitForJob(world.db.pool, jobId);
    expect(job.counts).toMatchObject({ total: rows.length, succeeded: rows.length - 18, failed: 18 });
    // …and once more after the job finished.
    await world.messenger.sendBatch('BulkItemBatch', batches);
    await world.messenger.publish('BulkJobSubmitted', { jobId });
    const events = await completedEvents(jobId, 1);
    expect(events).toHaveLength(1);
    expect(await outboxRows(jobId)).toBe(1);
    const mutations = world.sandbox.admin.mutations();
    const counts = [...Object.values(mutations.keywords), ...Object.values(mutations.campaigns)];
    expect(counts).toHaveLength(rows.length - 18);
    expect(counts.every((n) => n === 1)).toBe(true);
    await expectCountsMatchItems(world.db.pool, jobId);
    await worker.stop();
    worker = undefined;
  });

  it('three worker processes racing on the last items complete the job once', async () => {
    const profileIds = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, profileIds, 20, 2, 5);
    const settings = { ADFLEET_BULK_BATCH_SIZE: '1', ADFLEET_BULK_PROFILE_IN_FLIGHT: '20' };
    processes = [1, 2, 3].map((n) => startBulkWorker(world, settings, `bulk-${n}`));
    await waitForWorkers(processes);
    const jobId = await submitted(rows, 'bulk-race');
    // One item per batch, each batch three times: many handlers finish the job's last items at once.
    const { rows: items } = await world.db.pool.query<{ id: number; profile_id: number }>(
      'SELECT id, profile_id FROM bulk_items WHERE job_id = $1',
      [jobId],
    );
    await world.db.pool.query(
      "UPDATE bulk_jobs SET status = 'RUNNING', dispatched_at = now() WHERE id = $1",
      [jobId],
    );
    await world.db.pool.query('UPDATE bulk_items SET due_at = now() WHERE job_id = $1', [jobId]);
    const batches = items.map((item) => ({ jobId, profileId: item.profile_id, itemIds: [item.id] }));
    await world.messenger.sendBatch('BulkItemBatch', [...batches, ...batches, ...batches]);
    const job = await waitForJob(world.db.pool, jobId);
    expect(job.status).toBe('COMPLETED_WITH_ERRORS');
    expect(job.counts).toMatchObject({ succeeded: rows.length - 12, failed: 12 });
    const events = await completedEvents(jobId, 1);
    expect(events).toHaveLength(1);
    expect(events[0].detail).toMatchObject({ succeeded: rows.length - 12, failed: 12, cancelled: 0 });
    expect(await outboxRows(jobId)).toBe(1);
    // More than one process did apply items of this job.
    const appliedBy = processes.filter((p) =>
      p.logs.some((line) => line.msg === 'bulk batch applied' && line.jobId === jobId),
    );
    expect(appliedBy.length).toBeGreaterThan(1);
  });
});
