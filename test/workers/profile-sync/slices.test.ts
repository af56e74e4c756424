import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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
 * A sync longer than one message's slice (ADFLEET_SYNC_SLICE_SECONDS, well inside the
 * handler deadline) hands the rest on: its run is released, the message deferred (a fresh
 * message, no receive spent), and the next delivery resumes from the checkpoint — one run,
 * several attempts, every page recorded once, no retry and no dead letter.
 */
describe('profile-sync in slices', { timeout: 120_000 }, () => {
  // 2 campaigns × 2 ad groups × 500 keywords: 1 + 1 + 20 pages, each answered after 300 ms.
  const sizes = { profiles: 1, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 500 };
  const PAGES = 22;
  let harness: SyncHarness;
  let worker: RunningWorker;
  const handled: HandledEvent[] = [];

  beforeAll(async () => {
    harness = await startSyncHarness({
      label: 'sync-slices',
      sandbox: { sizes },
      inProcessWorker: false,
      config: { ADFLEET_SYNC_SLICE_SECONDS: '2' },
    });
    worker = await startWorker(profileSyncWorker, {
      config: harness.config,
      logger: createLogger({ level: 'silent', name: 'profile-sync' }),
      waitTimeSeconds: 1,
      onHandled: (event) => handled.push(event),
    });
  });
  afterAll(async () => {
    await worker?.stop();
    await harness?.close();
  });

  it('hands a long sync on from slice to slice and finishes it as one run', async () => {
    harness.sandbox.admin.injectFaults({ latencyMs: 300 });
    await worker.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    const [run] = await runsEnded(harness.database.pool, 1, { timeoutMs: 90_000 });
    harness.sandbox.admin.injectFaults({});
    expect(run).toMatchObject({ status: 'succeeded', pages: PAGES });
    // 22 pages at ≥ 300 ms each is ≥ 6.6 s: at least three 2 s slices.
    expect(run?.attempts).toBeGreaterThanOrEqual(3);
    expect(run?.resume_note).toMatch(/^resumed: /);
    const outcomesOf = () =>
      handled.filter((event) => event.type === 'SyncProfile').map((event) => event.outcome);
    // The run is recorded inside the handler; its message counts as handled a moment later.
    await vi.waitFor(() => expect(outcomesOf().at(-1)).toBe('succeeded'), { timeout: 10_000, interval: 50 });
    const outcomes = outcomesOf();
    expect(outcomes.slice(0, -1)).toEqual(Array((run?.attempts ?? 1) - 1).fill('deferred'));
    // Each hand-on may cost the page that was in flight, never a listing from the start.
    const profileId = harness.sandbox.admin.profileIds()[0] as number;
    const requests = harness.sandbox.admin.stats().profiles[String(profileId)]?.requests ?? 0;
    expect(requests).toBeGreaterThanOrEqual(PAGES);
    expect(requests).toBeLessThanOrEqual(PAGES + (run?.attempts ?? 1) - 1);
    expect(run?.counts.keywords).toMatchObject({ seen: 2_000, inserted: 2_000 });
    expect(checksum(await databaseLines(harness.database.pool, [profileId]))).toBe(
      checksum(await sandboxLines(harness.truth, [profileId])),
    );
  });

  it('lists the keywords of a profile it found large in parts side by side, each resumed from its own checkpoint', async () => {
    const profileId = harness.sandbox.admin.profileIds()[0] as number;
    const pool = harness.database.pool;
    // Removed at Amazon since the last sync: one keyword in each campaign (so in each part).
    const { rows: gone } = await pool.query<{ id: string }>(
      `SELECT DISTINCT ON (campaign_id) id::text FROM keywords WHERE profile_id = $1 ORDER BY campaign_id, id DESC`,
      [profileId],
    );
    expect(gone).toHaveLength(2);
    harness.sandbox.admin.removeEntities(
      'keyword',
      gone.map((row) => Number(row.id)),
    );
    // Parts of 2 pages or more: this profile's 20 keyword pages make parts.
    await worker.stop();
    worker = await startWorker(profileSyncWorker, {
      config: { ...harness.config, ADFLEET_SYNC_KEYWORD_PART_PAGES: 2 },
      logger: createLogger({ level: 'silent', name: 'profile-sync' }),
      waitTimeSeconds: 1,
    });
    harness.sandbox.admin.reset();
    harness.sandbox.admin.injectFaults({ latencyMs: 300 });
    const split = new Set<number>();
    const watch = setInterval(() => {
      pool
        .query<{ part: number }>(`SELECT DISTINCT part FROM sync_run_pages WHERE kind = 'keywords'`)
        .then(({ rows }) => {
          for (const row of rows) split.add(row.part);
        })
        .catch(() => {});
    }, 100);
    try {
      await harness.request([profileId], { kind: 'operator', reason: 'test' });
      const all = await runsEnded(pool, 2, { timeoutMs: 90_000 });
      const run = all.at(-1);
      harness.sandbox.admin.injectFaults({});
      // 2 campaigns, 2 parts of 999 keywords: 10 pages each, after a page of campaigns and
      // one of ad groups.
      expect(run).toMatchObject({ status: 'succeeded', pages: 22 });
      expect(split).toEqual(new Set([0, 1]));
      // Side by side, 20 keyword pages at 300 ms take about 3 s: more than one 2 s slice,
      // and the resumed attempt went on with each part where it had stopped.
      expect(run?.attempts).toBeGreaterThanOrEqual(2);
      expect(run?.resume_note).toMatch(/keywords after pages \d+\/\d+ of its 2 parts/);
      // A hand-on may cost each part its page in flight and the one fetched ahead of its write.
      const requests = harness.sandbox.admin.stats().profiles[String(profileId)]?.requests ?? 0;
      expect(requests).toBeGreaterThanOrEqual(22);
      expect(requests).toBeLessThanOrEqual(22 + 4 * ((run?.attempts ?? 1) - 1));
      expect(run?.counts.keywords).toMatchObject({ seen: 1_998, inserted: 0, changed: 0, removed: 2 });
      expect(checksum(await databaseLines(pool, [profileId]))).toBe(
        checksum(await sandboxLines(harness.truth, [profileId])),
      );
    } finally {
      clearInterval(watch);
    }
  });
});
