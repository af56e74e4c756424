import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { dispatchJob } from '../../../domain/bulk/dispatch.ts';
import { FLEET_ATTRIBUTES } from '../../../shared/messaging/trace-context.ts';
import { BULK_OUTAGE_RELEASES_PER_ATTEMPT } from '../../../workers/bulk-item/worker.ts';
import type { NodeProcess } from '../../support/processes.ts';
import { drainMessages, fleetMessage } from '../../support/queues.ts';
import { freePort } from '../../support/tcp-proxy.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  itemsOf,
  runCli,
  sandboxEntities,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from '../../workers/bulk-item/support.ts';
import { deadLettered, health } from './support.ts';

const MAX_ATTEMPTS = 3;
const STORM_MS = 25_000;

/**
 * An Ads API 5xx storm across every profile is an outage, not the items' failure: the
 * bulk-item worker opens its Ads API breaker, reports not-ready, gives the items back
 * without an attempt, and applies every one once the API answers again. The storm outlasts
 * the items' whole retry budget (3 attempts, 1 s base backoff: a few seconds), so a worker
 * that counted each 503 as an attempt would end them FAILED.
 */
describe('an Ads API 5xx storm during a bulk job', { timeout: 240_000 }, () => {
  let world: BulkWorld;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    world = await createBulkWorld('bulk-storm', { profiles: 6 });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await world.close();
  });

  it('spends no item attempt, dead-letters nothing, and applies every item once after it', async () => {
    const profileIds = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, profileIds, 20, 0);
    const file = await writeCsv(rows, 'bulk-storm');
    const healthPort = await freePort();
    worker = startBulkWorker(world, {
      ADFLEET_HEALTH_PORT: String(healthPort),
      ADFLEET_POLL_WAIT_SECONDS: '1',
      ADFLEET_CONCURRENCY: '4',
      ADFLEET_BULK_BATCH_SIZE: '5',
      ADFLEET_BULK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      ADFLEET_BULK_RETRY_BASE_MS: '1000',
    });
    await waitForWorkers([worker]);

    world.sandbox.admin.reset();
    world.sandbox.admin.injectFaults({ errorRate: 1, status: 503 });
    const stormStarted = Date.now();
    const submit = runCli(world, ['bulk', 'submit', file, '--json']);
    const { code } = await cliOutput(submit);
    expect(code, submit.output.join('')).toBe(0);
    const jobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);

    await vi.waitFor(
      async () => {
        const state = await health(healthPort);
        expect(state.status, 'GET /readyz during the storm').toBe(503);
        expect(JSON.stringify(state.body)).toContain('ads-api unavailable');
      },
      { timeout: 20_000, interval: 200 },
    );
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, STORM_MS - (Date.now() - stormStarted))));
    const during = await itemsOf(world.db.pool, jobId);
    expect(world.sandbox.admin.stats().totals.failed, 'the storm reached the sandbox').toBeGreaterThan(0);
    expect(during.filter((item) => item.attempts > 0).map((item) => item.id)).toEqual([]);
    expect(during.filter((item) => item.status === 'FAILED')).toEqual([]);
    world.sandbox.admin.injectFaults({});

    const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 120_000);
    expect(job.status).toBe('COMPLETED');
    expect(job.counts).toMatchObject({ total: rows.length, succeeded: rows.length, failed: 0 });
    const items = await itemsOf(world.db.pool, jobId);
    expect(items.filter((item) => item.attempts !== 1)).toEqual([]);
    const { keywords, campaigns } = await sandboxEntities(world.ads, profileIds);
    const mutations = world.sandbox.admin.mutations();
    for (const row of rows) {
      if (row.entity_type === 'keyword') {
        expect(keywords.get(row.entity_id)?.bid, row.entity_id).toBe(row.bid);
        expect(mutations.keywords[row.entity_id], row.entity_id).toBe(1);
      } else {
        expect(campaigns.get(row.entity_id)?.budget.budget, row.entity_id).toBe(row.budget);
        expect(mutations.campaigns[row.entity_id], row.entity_id).toBe(1);
      }
    }
    expect(await deadLettered(world.topology, 'bulk-item')).toBe(0);
    expect(
      worker.logs.some(
        (line) => line.msg === 'dependency unavailable: circuit open' && line.dependency === 'ads-api',
      ),
    ).toBe(true);
    await vi.waitFor(
      async () => expect((await health(healthPort)).status, 'GET /readyz after the storm').toBe(200),
      { timeout: 30_000, interval: 200 },
    );
    expect((await worker.stop('SIGTERM')).code).toBe(0);
  });

  it('counts the 5xx of a batch already released BULK_OUTAGE_RELEASES_PER_ATTEMPT times as an attempt', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 3, 0, 11);
    const submit = runCli(world, ['bulk', 'submit', await writeCsv(rows, 'bulk-released'), '--json']);
    const { code } = await cliOutput(submit);
    expect(code, submit.output.join('')).toBe(0);
    const jobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);
    // No worker runs yet: dispatch here, and take the job's messages off the queue, so the
    // one batch the worker sees is a copy that has been released that many times already.
    const { sqs } = world.topology.clients;
    const queueUrl = world.topology.state.queues['bulk-item'].url;
    await dispatchJob(world.db.pool, world.messenger, jobId, 1_000);
    // Until both of this job's messages are gone (the bus delivers BulkJobSubmitted when it
    // does, and messages the first case left may come first): a batch message left behind
    // would meet the 503 with no release behind it.
    const gone = { submitted: false, batch: false };
    const deadline = Date.now() + 30_000;
    while (!(gone.submitted && gone.batch) && Date.now() < deadline) {
      for (const { Body = '' } of await drainMessages(sqs, queueUrl, 1)) {
        if (!Body.includes(jobId)) continue;
        if (Body.includes('BulkJobSubmitted')) gone.submitted = true;
        if (Body.includes('BulkItemBatch')) gone.batch = true;
      }
    }
    expect(gone, "the job's own messages were taken off the queue").toEqual({ submitted: true, batch: true });
    const itemIds = (await itemsOf(world.db.pool, jobId)).map((item) => item.id);
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: fleetMessage('BulkItemBatch', { jobId, profileId, itemIds }),
        MessageAttributes: {
          [FLEET_ATTRIBUTES.releases]: {
            DataType: 'Number',
            StringValue: String(BULK_OUTAGE_RELEASES_PER_ATTEMPT),
          },
        },
      }),
    );
    world.sandbox.admin.reset();
    world.sandbox.admin.injectFaults({ failNext: 1, status: 503 });
    worker = startBulkWorker(world, { ADFLEET_POLL_WAIT_SECONDS: '1', ADFLEET_BULK_RETRY_BASE_MS: '1000' });
    await waitForWorkers([worker]);

    const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 60_000);
    expect(job.status).toBe('COMPLETED');
    expect(world.sandbox.admin.stats().totals.failed, 'the one 503').toBe(1);
    // The 503 spent one attempt; the retry applied the items.
    const items = await itemsOf(world.db.pool, jobId);
    expect(items.map((item) => [item.status, item.attempts])).toEqual(rows.map(() => ['SUCCEEDED', 2]));
    const mutations = world.sandbox.admin.mutations();
    for (const row of rows) expect(mutations.keywords[row.entity_id], row.entity_id).toBe(1);
    expect((await worker.stop('SIGTERM')).code).toBe(0);
  });
});
