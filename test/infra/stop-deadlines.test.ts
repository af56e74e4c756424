import { describe, expect, it } from 'vitest';
import { DEFAULT_DRAIN_TIMEOUT_MS } from '../../contract/config.ts';
import { HANDLER_DEADLINE_SECONDS, LONGEST_HANDLER_DEADLINE_SECONDS } from '../../contract/deadlines.ts';
import { topology } from '../../contract/topology.ts';
import { STOP_TIMEOUT_SECONDS } from '../../infra/workers.ts';

/** The longest handler fits in the drain, the drain (plus flushing) in ECS's stop timeout. */
describe('stop deadlines', () => {
  it('lets the longest handler finish inside the drain, and the drain inside the ECS stop timeout', () => {
    expect(LONGEST_HANDLER_DEADLINE_SECONDS).toBe(Math.max(60, ...Object.values(HANDLER_DEADLINE_SECONDS)));
    expect(DEFAULT_DRAIN_TIMEOUT_MS).toBeGreaterThan(LONGEST_HANDLER_DEADLINE_SECONDS * 1000);
    // Spans flushed and pools closed after the drain: at least 10 s before SIGKILL.
    expect(STOP_TIMEOUT_SECONDS * 1000).toBeGreaterThanOrEqual(DEFAULT_DRAIN_TIMEOUT_MS + 10_000);
    // Fargate's ceiling.
    expect(STOP_TIMEOUT_SECONDS).toBeLessThanOrEqual(120);
  });

  it('keeps every handler deadline inside its queue visibility timeout', () => {
    const byQueue = {
      SyncProfile: 'profile-sync',
      SyncAllProfilesRequested: 'profile-sync',
      BulkJobCompleted: 'profile-sync',
      BulkJobSubmitted: 'bulk-item',
      BulkItemBatch: 'bulk-item',
      BackfillRequested: 'backfill-chunk',
      BackfillChunk: 'backfill-chunk',
    } as const;
    for (const [type, queue] of Object.entries(byQueue)) {
      const deadline = HANDLER_DEADLINE_SECONDS[type as keyof typeof byQueue] ?? 60;
      expect(deadline, type).toBeLessThan(topology.queues[queue].visibilityTimeoutSeconds);
    }
  });
});
