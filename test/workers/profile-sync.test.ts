import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { createLogger } from '../../shared/logging.ts';
import { type RunningWorker, startWorker } from '../../shared/runtime/start-worker.ts';
import { profileSyncWorker } from '../../workers/profile-sync/worker.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { stackEnv, testConfig } from '../support/env.ts';
import { createTestTopology, type TestTopology } from '../support/topology.ts';

/** profile-sync end to end: a sync-all event in, every profile's entities in Postgres. */
describe('profile-sync', () => {
  const sizes = { profiles: 4, campaignsPerProfile: 3, adGroupsPerCampaign: 2, keywordsPerAdGroup: 30 };
  let topology: TestTopology;
  let database: TestDatabase;
  let sandbox: AdsSandbox;
  let worker: RunningWorker;

  beforeAll(async () => {
    topology = await createTestTopology('profile-sync');
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    sandbox = await startAdsSandbox({ sizes });
    const config = testConfig({
      ADFLEET_RESOURCE_PREFIX: topology.prefix,
      DATABASE_URL: database.url,
      ADFLEET_ADS_API_URL: sandbox.url,
      ADFLEET_CONCURRENCY: '4',
    });
    worker = await startWorker(profileSyncWorker, {
      config,
      logger: createLogger({ level: 'silent', name: 'profile-sync' }),
      waitTimeSeconds: 1,
    });
  });
  afterAll(async () => {
    await worker?.stop();
    await sandbox?.close();
    await topology?.destroy();
    await database?.drop();
  });

  async function counts() {
    const { rows } = await database.pool.query<Record<string, number>>(
      `SELECT (SELECT count(*) FROM profiles WHERE last_synced_at IS NOT NULL)::int AS synced,
              (SELECT count(*) FROM campaigns)::int AS campaigns,
              (SELECT count(*) FROM campaigns WHERE currency_code IS NULL)::int AS without_currency,
              (SELECT count(*) FROM ad_groups)::int AS ad_groups,
              (SELECT count(*) FROM keywords)::int AS keywords`,
    );
    return rows[0] as Record<string, number>;
  }

  async function syncAllAndWait(after: Date) {
    await worker.messenger.publish('SyncAllProfilesRequested', { reason: 'test' });
    await vi.waitFor(
      async () => {
        const { rows } = await database.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM profiles WHERE last_synced_at > $1',
          [after],
        );
        expect(rows[0]?.n, 'profiles synced').toBe(sizes.profiles);
      },
      { timeout: 60_000, interval: 200 },
    );
  }

  it('pages every profile’s campaigns, ad groups and keywords into Postgres', async () => {
    await syncAllAndWait(new Date(0));
    const campaigns = sizes.profiles * sizes.campaignsPerProfile;
    const adGroups = campaigns * sizes.adGroupsPerCampaign;
    expect(await counts()).toEqual({
      synced: sizes.profiles,
      campaigns,
      without_currency: 0,
      ad_groups: adGroups,
      keywords: adGroups * sizes.keywordsPerAdGroup,
    });
    // 60 keywords per campaign, 180 per profile, in pages of 100: each profile took two
    // keyword pages plus one campaign and one ad-group page, all inside its rate limit.
    const { profiles } = sandbox.admin.stats();
    for (const profileId of sandbox.admin.profileIds()) {
      expect(profiles[String(profileId)]?.requests).toBeGreaterThanOrEqual(4);
      expect(profiles[String(profileId)]?.throttled ?? 0).toBe(0);
    }
  });

  it('is idempotent: syncing again changes no counts', async () => {
    const before = await counts();
    await syncAllAndWait(new Date());
    expect(await counts()).toEqual(before);
  });
});
