import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ReceivedSpan, SpanKindCode, startOtlpReceiver } from '../../support/otlp-receiver.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
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
} from './support.ts';

/**
 * The headline workflow as ONE trace: `adfleet bulk submit` → EventBridge → bulk-item
 * dispatch → one item batch per profile, each with its Ads API call → BulkJobCompleted →
 * EventBridge → profile-sync → one SyncProfile per touched profile → ProfileSynced. Checked
 * through a real OTLP receiver, together with what the job did at Amazon and in Postgres.
 */
describe('bulk workflow trace', { timeout: 120_000 }, () => {
  let world: BulkWorld;
  let workers: NodeProcess[] = [];
  const PROFILES = 3;

  beforeAll(async () => {
    world = await createBulkWorld('bulk-trace', { profiles: PROFILES });
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await world.close();
  });

  it('is one trace from bulk submit to the last ProfileSynced, with every batch’s Ads call', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const profileIds = world.sandbox.admin.profileIds();
      const rows = await buildRows(world, profileIds, 3, 1);
      const file = await writeCsv(rows, 'bulk-trace');
      const telemetry = { OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
      workers = [
        startBulkWorker(world, telemetry, 'bulk-item'),
        spawnNode('workers/profile-sync/main.ts', {
          ...world.workerEnv(telemetry),
          OTEL_SERVICE_NAME: 'profile-sync',
        }),
      ];
      await waitForWorkers(workers);

      const submit = runCli(world, ['bulk', 'submit', file, '--json'], {
        ...telemetry,
        OTEL_SERVICE_NAME: 'adfleet-cli',
      });
      const { code } = await cliOutput(submit);
      expect(code, submit.output.join('\n')).toBe(0);
      const submitted = submit.logs.find((line) => typeof line.jobId === 'string');
      const jobId = String(submitted?.jobId);
      const traceId = String(submitted?.traceId);
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);

      // What the job did: Amazon holds the valid changes, the invalid one failed with its reason.
      const job = await waitForJob(world.db.pool, jobId);
      expect(job.status).toBe('COMPLETED_WITH_ERRORS');
      expect(job.counts).toMatchObject({ succeeded: 2 * PROFILES, failed: PROFILES });
      expect(job.traceId).toBe(traceId);
      const items = await itemsOf(world.db.pool, jobId);
      const { keywords } = await sandboxEntities(world.ads, profileIds);
      for (const item of items) {
        if (item.status === 'SUCCEEDED') expect(keywords.get(item.entity_id)?.bid).toBe(item.change.bid);
        else expect(['entityNotFoundError', 'entityStateError']).toContain(item.error_code);
      }
      // …and profile-sync re-synced the touched profiles, so Postgres has the new bids too.
      const applied = items.filter((item) => item.status === 'SUCCEEDED');
      await vi.waitFor(
        async () => {
          const { rows: synced } = await world.db.pool.query<{ id: number; bid: string }>(
            'SELECT id, bid FROM keywords WHERE id = ANY($1)',
            [applied.map((item) => item.entity_id)],
          );
          const bids = new Map(synced.map((row) => [String(row.id), Number(row.bid)]));
          expect(
            applied
              .filter((item) => bids.get(item.entity_id) !== item.change.bid)
              .map((item) => item.entity_id),
            'keywords whose re-synced bid differs from the change',
          ).toEqual([]);
        },
        { timeout: 30_000, interval: 200 },
      );

      // dispatch + one batch per profile + BulkJobCompleted + one SyncProfile per profile
      const expectedProcess = 1 + PROFILES + 1 + PROFILES;
      const inTrace = () => receiver.spans.filter((span) => span.traceId === traceId);
      await vi
        .waitFor(
          () => {
            const processSpans = inTrace().filter((span) => span.name.startsWith('process '));
            const published = inTrace().filter(isProfileSyncedPublish);
            expect(processSpans.length).toBeGreaterThanOrEqual(expectedProcess);
            expect(published.length).toBeGreaterThanOrEqual(PROFILES);
          },
          { timeout: 30_000, interval: 200 },
        )
        .catch(() => {}); // the assertions below say what is missing
      const spans = inTrace();
      assertHeadlineTrace(spans, PROFILES);
      // Nothing of this workflow went to another trace.
      const elsewhere = receiver.spans.filter(
        (span) => span.traceId !== traceId && span.name.startsWith('process '),
      );
      expect(elsewhere.map((span) => span.attributes['adfleet.message.type'])).toEqual([]);
    } finally {
      await receiver.close();
    }
  });
});

function isProfileSyncedPublish(span: ReceivedSpan): boolean {
  return (
    span.service === 'profile-sync' && span.kind === SpanKindCode.Producer && span.name.startsWith('publish ')
  );
}

function assertHeadlineTrace(spans: readonly ReceivedSpan[], profiles: number) {
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const roots = spans.filter((span) => span.parentSpanId === '' || !byId.has(span.parentSpanId));
  expect(roots.map((span) => span.name)).toEqual(['adfleet bulk submit']);

  const processSpans = spans.filter((span) => span.name.startsWith('process '));
  const ofType = (type: string) =>
    processSpans.filter((span) => span.attributes['adfleet.message.type'] === type);
  expect(ofType('BulkJobSubmitted')).toHaveLength(1);
  expect(ofType('BulkItemBatch')).toHaveLength(profiles);
  expect(ofType('BulkJobCompleted')).toHaveLength(1);
  expect(ofType('SyncProfile')).toHaveLength(profiles);
  for (const span of processSpans) {
    expect(byId.get(span.parentSpanId)?.kind, span.name).toBe(SpanKindCode.Producer);
  }
  expect(ofType('BulkJobSubmitted')[0]?.attributes['adfleet.message.origin']).toBe('eventbridge');
  expect(ofType('BulkJobCompleted')[0]?.attributes['adfleet.message.origin']).toBe('eventbridge');

  const ancestors = (span: ReceivedSpan): ReceivedSpan[] => {
    const chain: ReceivedSpan[] = [];
    for (let at = byId.get(span.parentSpanId); at !== undefined; at = byId.get(at.parentSpanId))
      chain.push(at);
    return chain;
  };
  // Each batch made its PUT to Amazon inside its own process span.
  const puts = spans.filter(
    (span) =>
      span.kind === SpanKindCode.Client &&
      String(span.attributes['url.full'] ?? '').includes('/sp/keywords') &&
      span.attributes['http.request.method'] === 'PUT',
  );
  const batchIds = new Set(ofType('BulkItemBatch').map((span) => span.spanId));
  const putParents = new Set(puts.map((put) => ancestors(put).find((a) => batchIds.has(a.spanId))?.spanId));
  expect(putParents).toEqual(batchIds);
  // The completion was published from a batch, the re-syncs hang below it.
  const completed = ofType('BulkJobCompleted')[0] as ReceivedSpan;
  expect(ancestors(completed).some((span) => batchIds.has(span.spanId))).toBe(true);
  for (const sync of ofType('SyncProfile')) expect(ancestors(sync)).toContain(completed);
  expect(spans.filter(isProfileSyncedPublish)).toHaveLength(profiles);
}
