import { afterEach, describe, expect, it } from 'vitest';
import { METRIC_NAMES, METRICS_NAMESPACE } from '../../contract/metrics.ts';
import { createLogger } from '../../shared/logging.ts';
import { Outcome } from '../../shared/messaging/queue-worker.ts';
import { WorkerMetrics } from '../../shared/metrics.ts';
import { type EmfLine, emfLinesOf } from '../support/emf.ts';
import { handledEvent } from '../support/factories.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('worker metrics as Embedded Metric Format', () => {
  let metrics: WorkerMetrics | undefined;
  afterEach(async () => {
    await metrics?.close();
    metrics = undefined;
  });

  it('writes one line with the counters and gauges, namespace adfleet, dimension Service alone', async () => {
    const before = Date.now();
    const lines = await emfLinesOf(async () => {
      metrics = new WorkerMetrics('profile-sync', logger);
      metrics.record(handledEvent({ outcome: Outcome.Succeeded, type: 'SyncProfile', durationMs: 30 }));
      metrics.record(handledEvent({ outcome: Outcome.Retried, type: 'SyncProfile', durationMs: 10 }));
      metrics.record(handledEvent({ outcome: Outcome.DeadLettered, type: 'SyncProfile', durationMs: 20 }));
      metrics.record(handledEvent({ outcome: Outcome.Deferred, type: 'SyncProfile', durationMs: 60 }));
      // A released message was not handled: it counts as released only.
      metrics.record(handledEvent({ outcome: Outcome.Released, type: 'SyncProfile', durationMs: 900 }));
      metrics.record(handledEvent({ outcome: Outcome.SendFailed, type: 'SyncProfile', durationMs: 15 }));
      metrics.watchDependencies(() => 2);
      metrics.gauge(METRIC_NAMES.oldestProfileSyncAge, 7_200, 'Seconds');
      await metrics.flush();
    });
    expect(lines).toHaveLength(1);
    const [line] = lines as [EmfLine];
    expect(line._aws.Timestamp).toBeGreaterThanOrEqual(before);
    expect(line._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: METRICS_NAMESPACE,
        Dimensions: [['Service']],
        Metrics: expect.arrayContaining([
          { Name: 'MessagesProcessed', Unit: 'Count' },
          { Name: 'MessagesFailed', Unit: 'Count' },
          { Name: 'MessagesDeadLettered', Unit: 'Count' },
          { Name: 'MessagesDeferred', Unit: 'Count' },
          { Name: 'HandlerDurationMs', Unit: 'Milliseconds' },
          { Name: 'OldestProfileSyncAgeSeconds', Unit: 'Seconds' },
          { Name: 'MessagesReleased', Unit: 'Count' },
          { Name: 'MessageSendFailures', Unit: 'Count' },
          { Name: 'DependenciesUnavailable', Unit: 'Count' },
        ]),
      },
    ]);
    expect(line._aws.CloudWatchMetrics[0]?.Metrics).toHaveLength(9);
    expect(line).toMatchObject({
      Service: 'profile-sync',
      MessagesProcessed: 5,
      MessagesFailed: 4,
      MessagesDeadLettered: 1,
      MessagesDeferred: 1,
      MessagesReleased: 1,
      MessageSendFailures: 1,
      DependenciesUnavailable: 2,
      HandlerDurationMs: 27,
      OldestProfileSyncAgeSeconds: 7_200,
    });
    // No dimension the library would add by default (LogGroup, ServiceName, ServiceType).
    expect(Object.keys(line).filter((key) => /^(LogGroup|ServiceName|ServiceType)$/.test(key))).toEqual([]);
  });

  it('counts each interval afresh and writes nothing for an idle one', async () => {
    const lines = await emfLinesOf(async () => {
      metrics = new WorkerMetrics('bulk-item', logger);
      metrics.record(handledEvent({ outcome: Outcome.Succeeded, type: 'ApplyBulkItems', durationMs: 5 }));
      await metrics.flush();
      await metrics.flush();
      metrics.record(handledEvent({ outcome: Outcome.Succeeded, type: 'ApplyBulkItems', durationMs: 7 }));
      metrics.record(handledEvent({ outcome: Outcome.Succeeded, type: 'ApplyBulkItems', durationMs: 9 }));
      await metrics.close();
      metrics = undefined;
    });
    expect(lines.map((line) => [line.MessagesProcessed, line.HandlerDurationMs])).toEqual([
      [1, 5],
      [2, 8],
    ]);
    expect(lines.every((line) => line.Service === 'bulk-item' && line.MessagesFailed === 0)).toBe(true);
  });
});
