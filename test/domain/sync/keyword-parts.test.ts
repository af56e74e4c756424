import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullProfile, RunProgress } from '../../../domain/sync/pull.ts';
import { claimRun, type RunHolder, type SyncRequest } from '../../../domain/sync/runs.ts';
import { syncSettings } from '../../../domain/sync/settings.ts';
import { createAdsClient } from '../../../shared/ads/from-config.ts';
import { createRedis } from '../../../shared/redis.ts';
import { runsEnded, type SyncHarness, startSyncHarness } from '../../workers/profile-sync/support.ts';

/**
 * Keyword parts: a never-synced profile sized by its first keyword page, and a split listing
 * whose resumed token the API refuses — every part lists again from its first page (the
 * kind's seen count starts over), and the run ends with every keyword listed once.
 */
describe('keyword parts', () => {
  // 2 campaigns × 1 ad group × 150 keywords: 3 pages, so parts of 1 page make 2 parts.
  const sizes = { profiles: 1, campaignsPerProfile: 2, adGroupsPerCampaign: 1, keywordsPerAdGroup: 150 };
  let harness: SyncHarness;

  beforeAll(async () => {
    harness = await startSyncHarness({
      label: 'sync-parts',
      sandbox: { sizes },
      config: { ADFLEET_SYNC_KEYWORD_PART_PAGES: '1' },
    });
  });
  afterAll(async () => {
    await harness?.close();
  });

  it('splits a never-synced profile by its first page, and lists every part again when the API refuses a resumed part token', async () => {
    const pool = harness.database.pool;
    const profileId = harness.sandbox.admin.profileIds()[0] as number;
    // A first sync, with no last sync to size the profile by: the keywords' first page says
    // 300 (totalResults), so it is not recorded and 2 parts list 2 pages each.
    await harness.worker?.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    const [firstSync] = await runsEnded(pool, 1);
    expect(firstSync).toMatchObject({ status: 'succeeded', pages: 1 + 1 + 2 * 2 });
    expect(firstSync?.counts.keywords).toMatchObject({ seen: 300, inserted: 300 });
    expect(harness.sandbox.admin.stats().profiles[String(profileId)]?.requests).toBe(1 + 1 + 1 + 2 * 2);
    // The in-process worker is done with it; this test is the next run's worker.
    await harness.worker?.stop();

    const holder: RunHolder = { id: `test:${randomUUID()}`, holds: () => false };
    const request: SyncRequest = {
      profileId,
      requestId: randomUUID(),
      requestedAt: new Date(),
      trigger: { kind: 'operator', reason: 'test' },
    };
    const settings = syncSettings(harness.config);
    const first = await claimRun(pool, request, settings, holder);
    if (first.kind !== 'run') throw new Error(`expected a run, got ${first.kind}`);
    // The run stopped with parents done and part 0 of 2 one page in, on a token the API
    // no longer accepts; then it was released.
    const { rows: campaigns } = await pool.query<{ id: string }>(
      'SELECT id::text FROM campaigns WHERE profile_id = $1',
      [profileId],
    );
    const { rows: adGroups } = await pool.query<{ id: string }>(
      'SELECT id::text FROM ad_groups WHERE profile_id = $1',
      [profileId],
    );
    const { rows: keywords } = await pool.query<{ id: string }>(
      'SELECT id::text FROM keywords WHERE profile_id = $1 ORDER BY id LIMIT 100',
      [profileId],
    );
    await pool.query(
      `INSERT INTO sync_run_pages (run_id, kind, part, parts, page, entity_ids, next_token) VALUES
         ($1, 'campaigns', 0, 1, 1, $2, NULL), ($1, 'adGroups', 0, 1, 1, $3, NULL),
         ($1, 'keywords', 0, 2, 1, $4, $5)`,
      [
        first.run.runId,
        campaigns.map((row) => row.id),
        adGroups.map((row) => row.id),
        keywords.map((row) => row.id),
        Buffer.from('{"offset":"stale"}').toString('base64url'),
      ],
    );
    await pool.query('UPDATE sync_runs SET heartbeat_at = NULL WHERE id = $1', [first.run.runId]);

    const resumed = await claimRun(pool, request, settings, holder);
    if (resumed.kind !== 'run') throw new Error(`expected a run, got ${resumed.kind}`);
    expect(resumed.run.checkpoint.keywords.parts).toHaveLength(2);
    expect(resumed.run.resumeNote).toMatch(/keywords after pages 1\/0 of its 2 parts/);

    const redis = createRedis(harness.config.REDIS_URL);
    const { client: ads, limiter } = createAdsClient(harness.config, redis);
    try {
      const progress = new RunProgress(resumed.run);
      await pullProfile(ads, pool, resumed.run, progress, {
        signal: new AbortController().signal,
        keywordPartPages: 1,
      });
      expect(progress.counts.keywords.seen).toBe(300);
      const { rows: note } = await pool.query<{ resume_note: string }>(
        'SELECT resume_note FROM sync_runs WHERE id = $1',
        [resumed.run.runId],
      );
      expect(note[0]?.resume_note).toMatch(/refused the checkpoint's keywords nextToken/);
      const { rows: pages } = await pool.query<{ part: number; pages: number; ids: number; unique: number }>(
        `SELECT part, count(*)::int AS pages, sum(cardinality(entity_ids))::int AS ids,
                (SELECT count(DISTINCT id)::int FROM sync_run_pages q, unnest(q.entity_ids) AS id
                  WHERE q.run_id = p.run_id AND q.kind = 'keywords' AND q.part = p.part) AS unique
           FROM sync_run_pages p WHERE run_id = $1 AND kind = 'keywords' GROUP BY run_id, part ORDER BY part`,
        [resumed.run.runId],
      );
      // One campaign each: 150 keywords in 2 pages per part, every keyword once.
      expect(pages).toEqual([
        { part: 0, pages: 2, ids: 150, unique: 150 },
        { part: 1, pages: 2, ids: 150, unique: 150 },
      ]);
    } finally {
      await limiter.close();
      redis.disconnect();
    }
  });
});
