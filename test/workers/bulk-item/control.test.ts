import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { NodeProcess } from '../../support/processes.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  expectCountsMatchItems,
  itemsOf,
  runCli,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from './support.ts';

/**
 * The operator's controls through the real CLI, against a real bulk-item worker process,
 * the emulator, Postgres and the in-process sandbox: `bulk cancel` of a running job,
 * `bulk retry-failed` after Amazon's refusals were fixed at Amazon's side, and what
 * `bulk status --json` and `bulk report --failed --format csv` say about the items.
 */

/** Receives and deletes what profile-sync's queue holds within one long poll. */
async function receiveOnce(world: BulkWorld) {
  const { sqs } = world.topology.clients;
  const queueUrl = world.topology.state.queues['profile-sync'].url;
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
  );
  for (const message of Messages) {
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
  }
  return Messages.map(
    (message) =>
      JSON.parse(message.Body ?? '{}') as { 'detail-type': string; detail: Record<string, unknown> },
  );
}

/** Every BulkJobCompleted of `jobId` the bus delivered to profile-sync, once `least` have come. */
async function completionEvents(world: BulkWorld, jobId: string, least: number) {
  const events: Awaited<ReturnType<typeof receiveOnce>> = [];
  const ofJob = () =>
    events.filter((event) => event['detail-type'] === 'BulkJobCompleted' && event.detail.jobId === jobId);
  const deadline = Date.now() + 20_000;
  while (ofJob().length < least && Date.now() < deadline) events.push(...(await receiveOnce(world)));
  // A duplicate would arrive right behind.
  for (let poll = 0; poll < 2; poll += 1) events.push(...(await receiveOnce(world)));
  return ofJob().map((event) => event.detail);
}

async function outboxRows(world: BulkWorld, jobId: string) {
  const { rows } = await world.db.pool.query<{ detail: Record<string, unknown>; published: boolean }>(
    `SELECT detail, published_at IS NOT NULL AS published FROM bulk_outbox
      WHERE job_id = $1 AND detail_type = 'BulkJobCompleted' ORDER BY id`,
    [jobId],
  );
  return rows;
}

async function submit(world: BulkWorld, file: string): Promise<string> {
  const run = runCli(world, ['bulk', 'submit', file, '--json']);
  const { code } = await cliOutput(run);
  expect(code, run.output.join('')).toBe(0);
  const submitted = run.logs.find((line) => typeof line.jobId === 'string');
  return String(submitted?.jobId);
}

async function cli(world: BulkWorld, args: readonly string[]): Promise<string> {
  const run = runCli(world, args);
  const { code } = await cliOutput(run);
  const text = run.output.join('\n');
  expect(code, `${args.join(' ')}: ${text}`).toBe(0);
  return text;
}

describe('bulk cancel and retry-failed', { timeout: 180_000 }, () => {
  let world: BulkWorld;
  let worker: NodeProcess;

  beforeAll(async () => {
    world = await createBulkWorld('bulk-control');
    // Small batches, two in flight per profile: a job of a few dozen items on one profile
    // takes several rounds of Ads calls, so it still has items pending when cancelled.
    worker = startBulkWorker(world, {
      ADFLEET_BULK_BATCH_SIZE: '5',
      ADFLEET_BULK_PROFILE_IN_FLIGHT: '2',
      // Above the slow calls of the cancel case: they answer, they do not time out.
      ADFLEET_ADS_TIMEOUT_MS: '45000',
    });
    await waitForWorkers([worker]);
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await world?.close();
  });

  it('cancel: applied items stay SUCCEEDED, in-flight ones finish, the rest end CANCELLED and never reach Amazon', async () => {
    const [profileId] = world.sandbox.admin.profileIds();
    const rows = await buildRows(world, [profileId as number], 40, 0, 1);
    const file = await writeCsv(rows, 'bulk-cancel');
    world.sandbox.admin.reset();
    // Half a second per call from the start: the profile's chains apply its batches back to
    // back, and without it the job could finish before the calls turn slow below.
    world.sandbox.admin.injectFaults({ latencyMs: 500 });
    try {
      const jobId = await submit(world, file);
      const { pool } = world.db;
      await waitForJob(pool, jobId, (job) => job.counts.succeeded > 0, 'started');
      // From now on every Ads call takes 25 s: a batch claimed after this is still in
      // flight when `bulk cancel` lands, however slow the CLI starts on a busy machine
      // (6–10 s at load 20 on 2 cores; 10 s of latency was not always enough).
      world.sandbox.admin.injectFaults({ latencyMs: 25_000 });
      const slowSince = (await pool.query<{ now: Date }>('SELECT now()')).rows[0]?.now;
      // Only a batch claimed after the calls turned slow is sure to be in flight when the
      // cancel lands: one claimed before may be answered at any moment. Both of the profile's
      // slots may hold such a batch whose call reached Amazon after the switch, held 25 s:
      // the next claim comes when they answer, so the wait outlasts them.
      const inFlight = await vi.waitFor(
        async () => {
          const { rows } = await pool.query<{ id: number }>(
            "SELECT id FROM bulk_items WHERE job_id = $1 AND status = 'RUNNING' AND updated_at > $2",
            [jobId, slowSince],
          );
          if (rows.length === 0) throw new Error('no batch in flight yet');
          return rows;
        },
        { timeout: 45_000, interval: 100 },
      );
      const before = await itemsOf(pool, jobId);
      const applied = before.filter((item) => item.status === 'SUCCEEDED');
      expect(before.some((item) => item.status === 'PENDING')).toBe(true);

      const said = await cli(world, ['bulk', 'cancel', jobId]);
      expect(said).toMatch(/item\(s\) cancelled \(now CANCELLING\)/);
      // The batch in flight was left alone; nothing else is live.
      const cancelling = await itemsOf(pool, jobId);
      const stillInFlight = cancelling.filter((item) => item.status === 'RUNNING').map((item) => item.id);
      expect(stillInFlight).toEqual(expect.arrayContaining(inFlight.map((item) => item.id)));
      expect(cancelling.filter((item) => ['PENDING', 'RETRY'].includes(item.status))).toEqual([]);

      const job = await waitForJob(pool, jobId);
      expect(job.status).toBe('CANCELLED');
      await expectCountsMatchItems(pool, jobId);
      const items = await itemsOf(pool, jobId);
      expect(items.filter((item) => !['SUCCEEDED', 'CANCELLED'].includes(item.status))).toEqual([]);
      const byId = new Map(items.map((item) => [item.id, item]));
      // Applied before the cancel, or in flight when it came: Amazon's answer is kept.
      for (const id of [...applied.map((item) => item.id), ...stillInFlight]) {
        expect(byId.get(id)?.status, `item ${id}`).toBe('SUCCEEDED');
      }
      const cancelled = items.filter((item) => item.status === 'CANCELLED');
      expect(cancelled.length).toBeGreaterThan(0);
      expect(job.counts).toMatchObject({
        total: 40,
        succeeded: items.length - cancelled.length,
        cancelled: cancelled.length,
        failed: 0,
      });

      // Amazon holds each succeeded change once and none of the cancelled ones.
      const mutations = world.sandbox.admin.mutations();
      for (const item of items) {
        const counts = item.entity_type === 'keyword' ? mutations.keywords : mutations.campaigns;
        if (item.status === 'SUCCEEDED') {
          expect(counts[item.entity_id], `item ${item.id}`).toBe(1);
          if (item.entity_type === 'keyword') {
            expect(world.sandbox.admin.entity('keyword', Number(item.entity_id))?.bid).toBe(item.change.bid);
          }
        } else {
          expect(item.error_code).toBe('CANCELLED_BY_OPERATOR');
          expect(counts[item.entity_id], `cancelled item ${item.id}`).toBeUndefined();
        }
      }

      // Completed once, announced once, with the real counts.
      const outbox = await outboxRows(world, jobId);
      expect(outbox).toHaveLength(1);
      const events = await completionEvents(world, jobId, 1);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        status: 'CANCELLED',
        succeeded: job.counts.succeeded,
        failed: 0,
        cancelled: cancelled.length,
        profileIds: [profileId],
      });
      // The event reaches the queue before the publisher has marked its row published.
      await vi.waitFor(
        async () => expect((await outboxRows(world, jobId)).map((row) => row.published)).toEqual([true]),
        { timeout: 10_000, interval: 100 },
      );

      // A final job takes neither control again.
      const [cancelAgain, retryCancelled] = await Promise.all([
        cli(world, ['bulk', 'cancel', jobId]),
        cli(world, ['bulk', 'retry-failed', jobId]),
      ]);
      expect(cancelAgain).toMatch(/is CANCELLED: nothing to cancel/);
      expect(retryCancelled).toMatch(/nothing to retry/);
      expect((await waitForJob(pool, jobId)).counts).toEqual(job.counts);
      expect(await outboxRows(world, jobId)).toHaveLength(1);
    } finally {
      world.sandbox.admin.injectFaults({});
    }
  });

  it('retry-failed: the fixed refusals apply, the rest fail again with Amazon’s reason; status and report say so', async () => {
    const profileIds = world.sandbox.admin.profileIds().slice(1, 3);
    // Per profile 20 rows, 4 of them refused for good (archived keywords, unknown ids).
    const rows = await buildRows(world, profileIds, 20, 4, 2);
    // Three valid keywords deleted at Amazon before the job runs, restored before the retry.
    const removed = rows
      .filter((row) => row.expect === 'applied' && row.entity_type === 'keyword')
      .slice(0, 3)
      .map((row) => row.entity_id);
    world.sandbox.admin.removeEntities('keyword', removed.map(Number));
    const file = await writeCsv(rows, 'bulk-retry');
    world.sandbox.admin.reset();
    const { pool } = world.db;

    const jobId = await submit(world, file);
    const first = await waitForJob(pool, jobId);
    expect(first.status).toBe('COMPLETED_WITH_ERRORS');
    expect(first.counts).toMatchObject({ total: 40, succeeded: 29, failed: 11, cancelled: 0 });
    const failedFirst = (await itemsOf(pool, jobId)).filter((item) => item.status === 'FAILED');
    for (const id of removed) {
      expect(failedFirst.find((item) => item.entity_id === id)?.error_code).toBe('entityNotFoundError');
    }

    world.sandbox.admin.restoreEntities('keyword', removed.map(Number));
    const said = await cli(world, ['bulk', 'retry-failed', jobId.slice(0, 8)]);
    expect(said).toMatch(new RegExp(`bulk job ${jobId}: 11 failed item\\(s\\) sent again \\(now RUNNING\\)`));

    const second = await waitForJob(pool, jobId);
    expect(second.status).toBe('COMPLETED_WITH_ERRORS');
    expect(second.counts).toMatchObject({ total: 40, succeeded: 32, failed: 8, cancelled: 0, pending: 0 });
    await expectCountsMatchItems(pool, jobId);
    const items = await itemsOf(pool, jobId);
    const mutations = world.sandbox.admin.mutations();
    for (const item of items) {
      const wasFailed = failedFirst.some((failed) => failed.id === item.id);
      const counts = item.entity_type === 'keyword' ? mutations.keywords : mutations.campaigns;
      if (removed.includes(item.entity_id)) {
        // Sent again, applied this time: attempts started over.
        expect(item).toMatchObject({ status: 'SUCCEEDED', attempts: 1, error_code: null });
        expect(world.sandbox.admin.entity('keyword', Number(item.entity_id))?.bid).toBe(item.change.bid);
      } else if (wasFailed) {
        expect(item).toMatchObject({ status: 'FAILED', attempts: 1 });
        expect(['entityNotFoundError', 'entityStateError']).toContain(item.error_code);
      }
      // Nothing succeeded was sent again.
      if (item.status === 'SUCCEEDED') expect(counts[item.entity_id], `item ${item.id}`).toBe(1);
      else expect(counts[item.entity_id], `item ${item.id}`).toBeUndefined();
    }

    // The second completion is a second event with the new counts.
    const outbox = await outboxRows(world, jobId);
    expect(outbox.map((row) => row.detail)).toMatchObject([
      { succeeded: 29, failed: 11 },
      { status: 'COMPLETED_WITH_ERRORS', succeeded: 32, failed: 8, cancelled: 0 },
    ]);
    const events = await completionEvents(world, jobId, 2);
    await vi.waitFor(
      async () => expect((await outboxRows(world, jobId)).map((row) => row.published)).toEqual([true, true]),
      { timeout: 10_000, interval: 100 },
    );
    expect(events).toMatchObject([
      { status: 'COMPLETED_WITH_ERRORS', succeeded: 29, failed: 11 },
      { status: 'COMPLETED_WITH_ERRORS', succeeded: 32, failed: 8 },
    ]);
    expect([...((events[1]?.profileIds ?? []) as number[])].sort()).toEqual([...profileIds].sort());

    // status --json: the job's counts as the items have them.
    const [statusText, csv] = await Promise.all([
      cli(world, ['bulk', 'status', jobId, '--json']),
      cli(world, ['bulk', 'report', jobId, '--failed', '--format', 'csv']),
    ]);
    const status = JSON.parse(statusText.slice(statusText.indexOf('{'), statusText.lastIndexOf('}') + 1));
    expect(status.job).toMatchObject({ id: jobId, status: 'COMPLETED_WITH_ERRORS', counts: second.counts });
    expect(status.progress).toMatchObject({ done: 40, fraction: 1 });

    // report --failed --format csv: one row per failed item, Amazon's code and message.
    const records = parse(csv.slice(csv.indexOf('item_id')), {
      columns: true,
      skip_empty_lines: true,
    }) as Record<string, string>[];
    const failed = items.filter((item) => item.status === 'FAILED');
    expect(records.map((record) => Number(record.item_id))).toEqual(failed.map((item) => item.id));
    for (const [index, record] of records.entries()) {
      const item = failed[index];
      expect(record).toMatchObject({
        line: String(item?.line),
        entity_id: item?.entity_id,
        status: 'FAILED',
        attempts: '1',
        error_code: item?.error_code,
        error_message: item?.error_message,
      });
      expect(record.error_message).toMatch(/not found|archived/);
      expect(JSON.parse(record.change as string)).toEqual(item?.change);
    }
  });
});
