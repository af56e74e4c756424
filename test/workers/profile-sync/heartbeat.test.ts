import { SetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/logging.ts';
import type { HandledEvent } from '../../../shared/messaging/queue-worker.ts';
import { type RunningWorker, startWorker } from '../../../shared/runtime/start-worker.ts';
import { profileSyncWorker } from '../../../workers/profile-sync/worker.ts';
import {
  checksum,
  databaseLines,
  runsEnded,
  type SyncHarness,
  sandboxLines,
  startSyncHarness,
} from './support.ts';

/**
 * A sync that runs longer than its message's visibility timeout: the chassis heartbeat keeps
 * extending the visibility, so the message is not delivered to the other worker meanwhile,
 * and the sync completes once — one run, one attempt, every page listed once.
 */
describe('profile-sync heartbeat on a long sync', { timeout: 120_000 }, () => {
  const VISIBILITY_SECONDS = 3;
  // 2 campaigns × 2 ad groups × 500 keywords: 1 + 1 + 20 pages, each answered after 400 ms.
  const sizes = { profiles: 1, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 500 };
  const PAGES = 22;
  let harness: SyncHarness;
  const workers: RunningWorker[] = [];
  const handled: HandledEvent[][] = [[], []];

  beforeAll(async () => {
    harness = await startSyncHarness({ label: 'sync-beat', sandbox: { sizes }, inProcessWorker: false });
    await harness.topology.clients.sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: harness.topology.state.queues['profile-sync'].url,
        Attributes: { VisibilityTimeout: String(VISIBILITY_SECONDS) },
      }),
    );
    for (const events of handled)
      workers.push(
        await startWorker(profileSyncWorker, {
          config: harness.config,
          logger: createLogger({ level: 'silent', name: 'profile-sync' }),
          waitTimeSeconds: 1,
          visibilityTimeoutSeconds: VISIBILITY_SECONDS,
          onHandled: (event) => events.push(event),
        }),
      );
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    await harness?.close();
  });

  it('is not redelivered while it runs past the visibility timeout, and completes once', async () => {
    harness.sandbox.admin.injectFaults({ latencyMs: 400 });
    const [first] = workers as [RunningWorker];
    await first.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    const [run] = await runsEnded(harness.database.pool, 1, { timeoutMs: 90_000 });
    const durationMs = (run?.finished_at?.getTime() ?? 0) - (run?.started_at.getTime() ?? 0);
    expect(durationMs, 'the sync outlasted two visibility timeouts').toBeGreaterThan(
      2 * VISIBILITY_SECONDS * 1000,
    );
    expect(run).toMatchObject({ status: 'succeeded', attempts: 1, pages: PAGES });

    // Past another visibility timeout, still one SyncProfile handled, by one worker, once.
    await new Promise((resolve) => setTimeout(resolve, (VISIBILITY_SECONDS + 1) * 1000));
    const syncs = handled.map((events) => events.filter((event) => event.type === 'SyncProfile'));
    expect(syncs.flat().map((event) => event.outcome)).toEqual(['succeeded']);
    const profileId = harness.sandbox.admin.profileIds()[0] as number;
    expect(harness.sandbox.admin.stats().profiles[String(profileId)]?.requests).toBe(PAGES);
    harness.sandbox.admin.injectFaults({});
    expect(checksum(await databaseLines(harness.database.pool, [profileId]))).toBe(
      checksum(await sandboxLines(harness.truth, [profileId])),
    );
  });
});
