import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileFreshness } from '../../../domain/sync/freshness.ts';
import {
  checksum,
  databaseLines,
  runs,
  runsEnded,
  type SyncHarness,
  sandboxLines,
  startSyncHarness,
} from './support.ts';

/**
 * profile-sync against the sandbox, one in-process worker: a full sync matches the sandbox
 * exactly, a second one of unchanged data writes nothing but its run record, and 429s cost
 * time (recorded on the run), not the message.
 */
describe('profile sync', () => {
  const sizes = { profiles: 3, campaignsPerProfile: 3, adGroupsPerCampaign: 2, keywordsPerAdGroup: 40 };
  let harness: SyncHarness;
  let profileIds: number[];

  beforeAll(async () => {
    harness = await startSyncHarness({ label: 'sync', sandbox: { sizes } });
    profileIds = harness.sandbox.admin.profileIds();
  });
  afterAll(async () => {
    await harness?.close();
  });

  async function syncAll(expectedSucceeded: number) {
    await harness.worker?.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    return runsEnded(harness.database.pool, expectedSucceeded);
  }

  it('matches the sandbox exactly: counts per entity and a checksum over every synced field', async () => {
    const all = await syncAll(sizes.profiles);
    const truth = await sandboxLines(harness.truth, profileIds);
    const ours = await databaseLines(harness.database.pool, profileIds);
    expect(ours.campaigns).toHaveLength(sizes.profiles * sizes.campaignsPerProfile);
    expect(ours.keywords).toHaveLength(
      sizes.profiles * sizes.campaignsPerProfile * sizes.adGroupsPerCampaign * sizes.keywordsPerAdGroup,
    );
    expect({
      campaigns: ours.campaigns.length,
      adGroups: ours.adGroups.length,
      keywords: ours.keywords.length,
    }).toEqual({
      campaigns: truth.campaigns.length,
      adGroups: truth.adGroups.length,
      keywords: truth.keywords.length,
    });
    expect(checksum(ours)).toBe(checksum(truth));

    // One run per profile, each counting what it saw and inserted.
    expect(all).toHaveLength(sizes.profiles);
    for (const run of all) {
      expect(run).toMatchObject({ status: 'succeeded', trigger: 'schedule', attempts: 1 });
      expect(run.counts.keywords).toEqual({ seen: 240, inserted: 240, changed: 0, restored: 0, removed: 0 });
      expect(run.counts.campaigns).toMatchObject({ seen: 3, inserted: 3 });
      // 3 campaigns + 6 ad groups + 240 keywords, in pages of 100: 1 + 1 + 3.
      expect(run.pages).toBe(5);
    }
    const { rows } = await harness.database.pool.query('SELECT count(*)::int AS n FROM sync_run_pages');
    expect(rows[0].n).toBe(0);
    const freshness = await profileFreshness(harness.database.pool, 3_600);
    expect(freshness.map((profile) => profile.pastSlo)).toEqual([false, false, false]);
  });

  it('writes nothing but the run record when syncing unchanged data again', async () => {
    const pool = harness.database.pool;
    const snapshot = async () => {
      const { rows } = await pool.query<{ rows: string }>(
        `SELECT string_agg(t || ':' || id || ':' || x, ',' ORDER BY t, id) AS rows FROM (
           SELECT 'c' AS t, id, xmin::text AS x FROM campaigns
           UNION ALL SELECT 'g', id, xmin::text FROM ad_groups
           UNION ALL SELECT 'k', id, xmin::text FROM keywords) AS all_rows`,
      );
      return rows[0]?.rows;
    };
    const before = await snapshot();
    const { rows: profilesBefore } = await pool.query('SELECT id, updated_at FROM profiles ORDER BY id');
    const all = await syncAll(2 * sizes.profiles);

    // Every entity row is the very tuple it was (same xmin): nothing rewritten, nothing locked.
    expect(await snapshot()).toBe(before);
    // The profile list refresh rewrote no profile either (only its last good sync moved).
    const { rows: profilesAfter } = await pool.query('SELECT id, updated_at FROM profiles ORDER BY id');
    expect(profilesAfter).toEqual(profilesBefore);
    for (const run of all.slice(sizes.profiles)) {
      for (const kind of ['campaigns', 'adGroups', 'keywords'])
        expect(run.counts[kind]).toMatchObject({ inserted: 0, changed: 0, restored: 0, removed: 0 });
      expect(run.counts.keywords?.seen).toBe(240);
    }
  });

  it('rides out 429s: the sync completes and its run records the throttled time', async () => {
    const [profileId] = profileIds as [number];
    // Below the fleet's starting rate (5/s): the sandbox answers 429 until the limiter adapts.
    harness.sandbox.admin.setProfileCapacity({ ratePerSecond: 2, burst: 1 }, profileId);
    harness.sandbox.admin.reset();
    const [result] = await harness.request([profileId], { kind: 'operator', reason: 'test' });
    expect(result?.outcome).toBe('enqueued');
    const all = await runsEnded(harness.database.pool, 3, { profileId });
    const run = all.at(-1);
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'operator', attempts: 1 });
    expect(harness.sandbox.admin.stats().profiles[String(profileId)]?.throttled ?? 0).toBeGreaterThan(0);
    expect(run?.throttled_requests).toBeGreaterThan(0);
    expect(run?.throttled_ms).toBeGreaterThan(0);
    expect(await runs(harness.database.pool, profileId)).toHaveLength(3);
  });
});
