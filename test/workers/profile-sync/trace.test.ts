import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { scheduleTargetParameters, topology } from '../../../contract/topology.ts';
import { workerEnv } from '../../support/env.ts';
import { type ReceivedSpan, SpanKindCode, startOtlpReceiver } from '../../support/otlp-receiver.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
import { runsEnded, type SyncHarness, startSyncHarness } from './support.ts';

/**
 * The nightly sync as ONE trace: the schedule's SyncAllProfilesRequested arrives through
 * EventBridge (put on the bus exactly as the EventBridge Scheduler target does: no trace
 * context, so the worker's consumer span starts the trace), the fan-out sends one
 * SyncProfile per profile, and each profile's sync — its Ads API list calls and its
 * ProfileSynced — hangs below its own SyncProfile span. Checked through a real OTLP receiver
 * and a real worker process, together with the run records' trace ids.
 */
describe('nightly sync trace', { timeout: 120_000 }, () => {
  const PROFILES = 3;
  let harness: SyncHarness;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    harness = await startSyncHarness({
      label: 'sync-trace',
      sandbox: {
        sizes: { profiles: PROFILES, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 60 },
      },
      inProcessWorker: false,
    });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await harness?.close();
  });

  it('is one trace from the schedule’s event through the fan-out to every profile’s sync', async () => {
    const receiver = await startOtlpReceiver();
    try {
      worker = spawnNode(
        'workers/profile-sync/main.ts',
        workerEnv(harness.topology.prefix, {
          DATABASE_URL: harness.database.url,
          ADFLEET_ADS_API_URL: harness.sandbox.url,
          ADFLEET_POLL_WAIT_SECONDS: '1',
          OTEL_SDK_DISABLED: 'false',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: 'profile-sync',
        }),
      );
      await worker.waitForLog((line) => line.msg === 'worker started', 60_000);

      const schedule = topology.schedules.find((spec) => spec.detailType === 'SyncAllProfilesRequested');
      expect(schedule, 'the nightly schedule').toBeDefined();
      const target = scheduleTargetParameters(schedule as NonNullable<typeof schedule>);
      const put = await harness.topology.clients.events.send(
        new PutEventsCommand({
          Entries: [
            {
              EventBusName: harness.topology.names.bus,
              Source: target.EventBridgeParameters.Source,
              DetailType: target.EventBridgeParameters.DetailType,
              Detail: target.Input,
            },
          ],
        }),
      );
      expect(put.FailedEntryCount ?? 0).toBe(0);

      const runs = await runsEnded(harness.database.pool, PROFILES);
      const traceIds = new Set(runs.map((run) => run.trace_id));
      expect(traceIds.size, 'one trace id over every run').toBe(1);
      const [traceId] = [...traceIds] as [string];
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);

      const inTrace = () => receiver.spans.filter((span) => span.traceId === traceId);
      await vi
        .waitFor(
          () => {
            expect(inTrace().filter(isProfileSyncedPublish).length).toBeGreaterThanOrEqual(PROFILES);
          },
          { timeout: 30_000, interval: 200 },
        )
        .catch(() => {}); // the assertions below say what is missing
      assertNightlyTrace(inTrace(), harness.sandbox.admin.profileIds());

      // Nothing of the night went to another trace.
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
  return span.kind === SpanKindCode.Producer && span.name.startsWith('publish ');
}

function assertNightlyTrace(spans: readonly ReceivedSpan[], profileIds: readonly number[]) {
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const ancestors = (span: ReceivedSpan): ReceivedSpan[] => {
    const chain: ReceivedSpan[] = [];
    for (let at = byId.get(span.parentSpanId); at !== undefined; at = byId.get(at.parentSpanId))
      chain.push(at);
    return chain;
  };
  const processSpans = spans.filter((span) => span.name.startsWith('process '));
  const ofType = (type: string) =>
    processSpans.filter((span) => span.attributes['adfleet.message.type'] === type);

  // The schedule's event, from EventBridge, starts the trace: it is the one root.
  const fanOut = ofType('SyncAllProfilesRequested');
  expect(fanOut).toHaveLength(1);
  const [root] = fanOut as [ReceivedSpan];
  expect(root.kind).toBe(SpanKindCode.Consumer);
  expect(root.attributes['adfleet.message.origin']).toBe('eventbridge');
  const roots = spans.filter((span) => span.parentSpanId === '' || !byId.has(span.parentSpanId));
  expect(roots.map((span) => span.spanId)).toEqual([root.spanId]);

  // One SyncProfile per profile, each sent from inside the fan-out (its parent is a producer span).
  const syncs = ofType('SyncProfile');
  expect(syncs).toHaveLength(profileIds.length);
  for (const sync of syncs) {
    expect(byId.get(sync.parentSpanId)?.kind, 'a SyncProfile’s parent').toBe(SpanKindCode.Producer);
    expect(ancestors(sync)).toContain(root);
  }

  // Each profile's sync is below its own SyncProfile span: its three list calls and its ProfileSynced.
  const syncIds = new Set(syncs.map((span) => span.spanId));
  const ownSync = (span: ReceivedSpan) => ancestors(span).find((a) => syncIds.has(a.spanId))?.spanId;
  const listCalls = spans.filter(
    (span) =>
      span.kind === SpanKindCode.Client && /\/sp\/\w+\/list/.test(String(span.attributes['url.full'])),
  );
  for (const sync of syncs) {
    const below = listCalls.filter((call) => ownSync(call) === sync.spanId);
    const paths = new Set(below.map((call) => new URL(String(call.attributes['url.full'])).pathname));
    expect([...paths].sort(), `list calls below SyncProfile span ${sync.spanId}`).toEqual([
      '/sp/adGroups/list',
      '/sp/campaigns/list',
      '/sp/keywords/list',
    ]);
    const published = spans.filter((span) => isProfileSyncedPublish(span) && ownSync(span) === sync.spanId);
    expect(published, `ProfileSynced below SyncProfile span ${sync.spanId}`).toHaveLength(1);
  }
  // Every list call belongs to one profile's sync (none hangs off the fan-out or floats).
  expect(listCalls.filter((call) => ownSync(call) === undefined)).toEqual([]);
}
