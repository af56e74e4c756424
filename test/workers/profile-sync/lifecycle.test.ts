import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { profileFreshness } from '../../../domain/sync/freshness.ts';
import { workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import {
  checksum,
  databaseLines,
  runs,
  runsEnded,
  type SyncHarness,
  sandboxLines,
  startSyncHarness,
} from './support.ts';

/** Changes, removals and restores at Amazon; pile-ups of requests; a failing profile. */
describe('sync lifecycle', () => {
  const sizes = { profiles: 1, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 150 };
  let harness: SyncHarness;
  let profileId: number;

  beforeAll(async () => {
    harness = await startSyncHarness({ label: 'sync-life', sandbox: { sizes } });
    [profileId] = harness.sandbox.admin.profileIds() as [number];
    // The nightly fan-out lists the profiles; an operator request needs a profile we know.
    await harness.worker?.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    await runsEnded(harness.database.pool, 1, { profileId });
  });
  afterAll(async () => {
    await harness?.close();
  });

  async function syncOnce(succeededBefore: number) {
    const [result] = await harness.request([profileId], { kind: 'operator', reason: 'test' });
    expect(result?.outcome).toBe('enqueued');
    const all = await runsEnded(harness.database.pool, succeededBefore + 1, { profileId });
    return all.at(-1);
  }

  async function matchesSandbox() {
    const truth = await sandboxLines(harness.truth, [profileId]);
    const ours = await databaseLines(harness.database.pool, [profileId]);
    expect(ours.keywords.length).toBe(truth.keywords.length);
    expect(checksum(ours)).toBe(checksum(truth));
  }

  it('reflects an entity changed, removed and restored at Amazon after each next sync', async () => {
    await matchesSandbox();
    const pool = harness.database.pool;
    const { rows } = await pool.query<{ id: number; bid: string }>(
      'SELECT id, bid FROM keywords WHERE profile_id = $1 ORDER BY id LIMIT 5',
      [profileId],
    );
    const [changed, ...gone] = rows as [{ id: number; bid: string }, ...{ id: number }[]];
    const newBid = Number(changed.bid) + 0.37;
    harness.sandbox.admin.updateEntities('keyword', [{ id: changed.id, bid: newBid }]);
    harness.sandbox.admin.removeEntities(
      'keyword',
      gone.map((row) => row.id),
    );

    const afterRemoval = await syncOnce(1);
    expect(afterRemoval?.counts.keywords).toMatchObject({ seen: 596, inserted: 0, changed: 1, removed: 4 });
    await matchesSandbox();
    const removed = await pool.query<{ id: number; removed_at: Date | null }>(
      'SELECT id, removed_at FROM keywords WHERE id = ANY($1::bigint[]) ORDER BY id',
      [gone.map((row) => row.id)],
    );
    // Kept, and marked: not deleted, not left looking live.
    expect(removed.rows).toHaveLength(4);
    for (const row of removed.rows) expect(row.removed_at).toBeInstanceOf(Date);
    const bid = await pool.query<{ bid: string }>('SELECT bid FROM keywords WHERE id = $1', [changed.id]);
    expect(Number(bid.rows[0]?.bid)).toBeCloseTo(newBid, 2);

    harness.sandbox.admin.restoreEntities(
      'keyword',
      gone.map((row) => row.id),
    );
    const afterRestore = await syncOnce(2);
    expect(afterRestore?.counts.keywords).toMatchObject({
      seen: 600,
      inserted: 0,
      changed: 4,
      restored: 4,
      removed: 0,
    });
    await matchesSandbox();
    const restored = await pool.query('SELECT count(*)::int AS n FROM keywords WHERE removed_at IS NOT NULL');
    expect(restored.rows[0].n).toBe(0);
  });

  it('folds 20 requests (schedule, bulk, operator; some while it runs) into one running sync and one follow-up', async () => {
    const pool = harness.database.pool;
    const before = (await runs(pool, profileId)).length;
    // Slow pages, so that requests arrive while the sync runs.
    harness.sandbox.admin.injectFaults({ latencyMs: 400 });
    const outcomes: string[] = [];
    const request = async (trigger: Parameters<SyncHarness['request']>[1]) => {
      const [result] = await harness.request([profileId], trigger);
      outcomes.push(result?.outcome ?? 'none');
    };
    const jobIds = Array.from({ length: 12 }, () => crypto.randomUUID());
    // 5 before the sync starts: one message, the rest see it queued.
    await request({ kind: 'schedule', reason: 'nightly' });
    for (const jobId of jobIds.slice(0, 2)) await request({ kind: 'bulk', jobId });
    await request({ kind: 'operator' });
    await request({ kind: 'schedule', reason: 'nightly' });
    await vi.waitFor(
      async () => {
        const running = await pool.query(
          "SELECT 1 FROM sync_runs WHERE profile_id = $1 AND status = 'running' AND pages >= 1",
          [profileId],
        );
        expect(running.rowCount, 'a sync running').toBe(1);
      },
      { timeout: 30_000, interval: 50 },
    );
    // 15 while it runs: all folded into its follow-up.
    for (const jobId of jobIds.slice(2)) await request({ kind: 'bulk', jobId });
    for (let index = 0; index < 4; index += 1) await request({ kind: 'operator' });
    await request({ kind: 'schedule', reason: 'nightly' });
    const lastBulkRequestAt = new Date();
    const stillRunning = await pool.query(
      "SELECT 1 FROM sync_runs WHERE profile_id = $1 AND status = 'running'",
      [profileId],
    );
    expect(stillRunning.rowCount, 'the first sync outlasted the requests').toBe(1);

    const all = await runsEnded(pool, before + 2, { profileId, timeoutMs: 90_000 });
    harness.sandbox.admin.injectFaults({ latencyMs: 0 });
    // Let anything else that might have been queued show up before counting.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const mine = (await runs(pool, profileId)).slice(before);
    expect(mine.map((run) => [run.trigger, run.status])).toEqual([
      ['schedule', 'succeeded'],
      ['follow-up', 'succeeded'],
    ]);
    // One message; the rest found it queued or (once it started) running. The 15 that
    // arrived while it ran are all folded into its one follow-up.
    expect(
      outcomes.filter((outcome) => outcome === 'enqueued'),
      JSON.stringify(outcomes),
    ).toEqual(['enqueued']);
    expect(outcomes[0]).toBe('enqueued');
    expect(
      outcomes.slice(1, 5).every((outcome) => outcome === 'already-queued' || outcome === 'follow-up'),
    ).toBe(true);
    expect(outcomes.slice(5)).toEqual(Array.from({ length: 15 }, () => 'follow-up'));
    const followUp = mine[1];
    // The bulk jobs' changes are read by a sync that started after the last of them was requested.
    expect(followUp?.started_at.getTime()).toBeGreaterThan(lastBulkRequestAt.getTime());
    const folded = (followUp?.trigger_detail.folded ?? []) as Array<{ kind: string; jobId?: string }>;
    // Every bulk job requested while the first sync ran (and any requested after it started).
    const foldedJobs = folded.filter((trigger) => trigger.kind === 'bulk').map((trigger) => trigger.jobId);
    expect(foldedJobs).toEqual(expect.arrayContaining(jobIds.slice(2)));
    expect(foldedJobs.every((jobId) => (jobIds as string[]).includes(jobId ?? ''))).toBe(true);
    expect(all.length).toBe(before + 2);
  });

  it('records a failed sync, and `sync status` shows the profile failing with its error', async () => {
    harness.sandbox.admin.injectFaults({ failNext: 1_000, status: 400 });
    const failedBefore = (await runs(harness.database.pool, profileId)).filter(
      (run) => run.status === 'failed',
    ).length;
    await harness.request([profileId], { kind: 'operator', reason: 'will fail' });
    const all = await runsEnded(harness.database.pool, failedBefore + 1, { profileId, status: 'failed' });
    harness.sandbox.admin.reset();
    const failed = all.filter((run) => run.status === 'failed').at(-1);
    expect(failed?.error).toMatch(/400/);
    const [freshness] = await profileFreshness(harness.database.pool, 3_600, { profileIds: [profileId] });
    expect(freshness?.failing?.lastError).toBe(failed?.error);

    const cli = spawnNode(
      'cli/main.ts',
      workerEnv(harness.topology.prefix, {
        DATABASE_URL: harness.database.url,
        ADFLEET_ADS_API_URL: harness.sandbox.url,
      }),
      ['sync', 'status', '--profile', String(profileId)],
    );
    const exit = await cli.exited;
    const text = cli.output.join('');
    expect(exit.code, text).toBe(0);
    expect(text).toContain(`${profileId}`);
    expect(text).toContain('FAILING for');
    expect(text).toContain(failed?.error ?? 'missing');
  });
});
