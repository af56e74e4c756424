import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { resourceNames } from '../../../contract/topology.ts';
import type { NodeProcess } from '../../support/processes.ts';
import { drainMessages } from '../../support/queues.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  expectCountsMatchItems,
  itemsOf,
  runCli,
  sandboxEntities,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from './support.ts';

/**
 * The main case, through real processes: `adfleet bulk submit` of 1,000 items over
 * 20 profiles, 10 % of them refused by the sandbox's validation, with 429s (a per-profile
 * capacity below what the fleet starts at) and injected 503s, applied by two bulk-item
 * worker processes.
 */
describe('bulk job end to end', { timeout: 120_000 }, () => {
  let world: BulkWorld;
  let workers: NodeProcess[] = [];

  beforeAll(async () => {
    world = await createBulkWorld('bulk-apply');
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await world.close();
  });

  it('ends every item SUCCEEDED with the sandbox holding the change, or FAILED with Amazon’s reason', async () => {
    const profileIds = world.sandbox.admin.profileIds();
    expect(profileIds).toHaveLength(20);
    const rows = await buildRows(world, profileIds, 50, 5);
    expect(rows).toHaveLength(1_000);
    const file = await writeCsv(rows, 'bulk-apply');

    world.sandbox.admin.reset();
    world.sandbox.admin.setProfileCapacity({ ratePerSecond: 2, burst: 1 });
    world.sandbox.admin.injectFaults({ errorRate: 0.1, status: 503 });
    const settings = {
      ADFLEET_BULK_BATCH_SIZE: '10',
      ADFLEET_BULK_PROFILE_IN_FLIGHT: '4',
      ADFLEET_ADS_INITIAL_PROFILE_RATE: '8',
    };
    workers = [startBulkWorker(world, settings, 'bulk-a'), startBulkWorker(world, settings, 'bulk-b')];
    await waitForWorkers(workers);

    const started = Date.now();
    const submit = runCli(world, ['bulk', 'submit', file, '--json']);
    const { code } = await cliOutput(submit);
    expect(code, submit.output.join('')).toBe(0);
    const submitted = submit.logs.find((line) => typeof line.jobId === 'string');
    expect(submitted).toMatchObject({ ok: true, rows: 1_000, profiles: 20 });
    const jobId = String(submitted?.jobId);

    const job = await waitForJob(world.db.pool, jobId, undefined, 'final', 90_000);
    const seconds = (Date.now() - started) / 1000;
    world.sandbox.admin.injectFaults({});
    world.sandbox.admin.setProfileCapacity({ ratePerSecond: 1_000, burst: 1_000 });

    expect(job.status).toBe('COMPLETED_WITH_ERRORS');
    expect(job.counts).toMatchObject({
      total: 1_000,
      succeeded: 900,
      failed: 100,
      pending: 0,
      running: 0,
      retry: 0,
    });
    await expectCountsMatchItems(world.db.pool, jobId);

    process.stdout.write(
      `job final after ${seconds.toFixed(1)} s: ${JSON.stringify(world.sandbox.admin.stats().totals)}\n`,
    );
    // The faults were really there and really retried: a 503 is the Ads API's outage, not
    // the items' failure, so its items were given back and applied later without an
    // attempt — by releasing the message (a handler's own batch) or, in a profile's chain,
    // by handing them to a delayed message.
    const stats = world.sandbox.admin.stats();
    expect(stats.totals.throttled).toBeGreaterThan(0);
    expect(stats.totals.failed).toBeGreaterThan(0);
    expect(
      workers.some((worker) =>
        worker.logs.some(
          (line) =>
            (line.msg === 'dependency unavailable: releasing the message' && line.dependency === 'ads-api') ||
            (line.msg === 'bulk chained batch handed to a delayed message' &&
              /failed with 5\d\d/.test(String(line.reason))),
        ),
      ),
    ).toBe(true);
    const items = await itemsOf(world.db.pool, jobId);
    expect(items.filter((item) => item.attempts !== 1).map((item) => item.line)).toEqual([]);

    // What Amazon holds now is what each succeeded item asked for, applied exactly once.
    const { keywords, campaigns } = await sandboxEntities(world.ads, profileIds);
    const mutations = world.sandbox.admin.mutations();
    const byLine = new Map(items.map((item) => [item.line, item]));
    rows.forEach((row, index) => {
      const item = byLine.get(index + 2); // the header is line 1
      expect(item?.entity_id).toBe(row.entity_id);
      if (row.expect === 'applied') {
        expect(item?.status, `line ${index + 2}`).toBe('SUCCEEDED');
        if (row.entity_type === 'keyword') {
          const keyword = keywords.get(row.entity_id);
          expect(keyword?.bid).toBe(row.bid);
          if (row.state !== undefined) expect(keyword?.state).toBe(row.state);
          expect(mutations.keywords[row.entity_id]).toBe(1);
        } else {
          expect(campaigns.get(row.entity_id)?.budget.budget).toBe(row.budget);
          expect(mutations.campaigns[row.entity_id]).toBe(1);
        }
      } else {
        expect(item?.status, `line ${index + 2}`).toBe('FAILED');
        expect(['entityNotFoundError', 'entityStateError']).toContain(item?.error_code);
        expect(item?.error_message).toMatch(/not found|archived/);
        expect(mutations.keywords[row.entity_id]).toBeUndefined();
      }
    });

    // BulkJobCompleted went to the bus once, with the real counts and touched profiles.
    const names = resourceNames(world.topology.prefix);
    const queueUrl = world.topology.state.queues['profile-sync'].url;
    const received = await drainMessages(world.topology.clients.sqs, queueUrl, 1, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const more = await drainMessages(world.topology.clients.sqs, queueUrl, 0, 3_000);
    const events = [...received, ...more].map((message) => JSON.parse(message.Body ?? '{}'));
    const completed = events.filter((event) => event['detail-type'] === 'BulkJobCompleted');
    expect(completed, names.bus).toHaveLength(1);
    expect(completed[0]?.detail).toMatchObject({
      jobId,
      status: 'COMPLETED_WITH_ERRORS',
      succeeded: 900,
      failed: 100,
      cancelled: 0,
    });
    expect([...completed[0].detail.profileIds].sort()).toEqual([...profileIds].sort());
    process.stdout.write(`1,000 items over 20 profiles with faults: ${seconds.toFixed(1)} s\n`);

    // The report streams every item with Amazon's answer; --failed only the failures.
    const report = runCli(world, ['bulk', 'report', jobId, '--failed']);
    expect((await cliOutput(report)).code).toBe(0);
    const lines = report.output.filter((line) => line.trim() !== '');
    expect(lines[0]).toMatch(/^item_id,line,/);
    expect(lines).toHaveLength(101);
    await vi.waitFor(
      async () => {
        const status = runCli(world, ['bulk', 'status', jobId.slice(0, 8)]);
        const out = await cliOutput(status);
        expect(out.code, 'bulk status exit code').toBe(0);
        expect(status.output.join('\n')).toMatch(/COMPLETED_WITH_ERRORS/);
      },
      { timeout: 30_000, interval: 200 },
    );
  });
});
