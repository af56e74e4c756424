import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../../sandbox/ads-api/server.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
import { freePort } from '../../support/tcp-proxy.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { deadLettered, health, proxyFor, redisUrl, testMessenger } from './support.ts';

/**
 * Redis down for 60 s and a Postgres "restart" (every connection cut, new ones refused)
 * in the middle of a sync of every profile: nothing is dead-lettered, the worker reports
 * not-ready while Postgres is down, and every profile is synced once both are back. On a
 * chassis without outage handling, each Ads call fails within a second while Redis is down
 * and each message reaches the DLQ after five receives (about 30 s).
 */
describe('profile-sync through a Redis and a Postgres outage', () => {
  const sizes = { profiles: 12, campaignsPerProfile: 3, adGroupsPerCampaign: 2, keywordsPerAdGroup: 40 };
  let topology: TestTopology;
  let database: TestDatabase;
  let sandbox: AdsSandbox;
  let worker: NodeProcess | undefined;
  const proxies: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    topology = await createTestTopology('ps-outage');
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    sandbox = await startAdsSandbox({ sizes });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    for (const proxy of proxies) await proxy.close();
    await sandbox?.close();
    await topology?.destroy();
    await database?.drop();
  });

  async function synced(): Promise<number> {
    const { rows } = await database.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM profiles WHERE last_synced_at IS NOT NULL',
    );
    return rows[0]?.n ?? 0;
  }

  it('dead-letters nothing, reports not-ready while Postgres is down, and syncs every profile after', async () => {
    const redis = await proxyFor(redisUrl());
    const postgres = await proxyFor(database.url);
    proxies.push(redis.proxy, postgres.proxy);
    const healthPort = await freePort();
    worker = spawnNode(
      'workers/profile-sync/main.ts',
      workerEnv(topology.prefix, {
        DATABASE_URL: postgres.url,
        REDIS_URL: redis.url,
        ADFLEET_ADS_API_URL: sandbox.url,
        ADFLEET_HEALTH_PORT: String(healthPort),
        ADFLEET_CONCURRENCY: '4',
        ADFLEET_POLL_WAIT_SECONDS: '1',
      }),
    );
    await worker.waitForLog((line) => line.msg === 'worker started', 60_000);

    const redisDownAt = Date.now();
    await redis.proxy.cut();
    await testMessenger(topology).publish('SyncAllProfilesRequested', { reason: 'outage test' });
    // Redis is down: the rate limiter's local budget lets syncs go on, slower.
    await vi.waitFor(
      async () => expect(await synced(), 'profiles synced with Redis down').toBeGreaterThanOrEqual(1),
      { timeout: 60_000, interval: 200 },
    );

    await postgres.proxy.cut();
    const notReady = await vi.waitFor(
      async () => {
        const state = await health(healthPort);
        expect(state.status, 'GET /readyz while Postgres is down').toBe(503);
        expect(JSON.stringify(state.body)).toContain('postgres unavailable');
        return state;
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(JSON.stringify(notReady.body)).toContain('postgres unavailable');
    // Longer than five receives' worth of retry backoff.
    await new Promise((resolve) => setTimeout(resolve, 35_000));
    expect(await deadLettered(topology, 'profile-sync')).toBe(0);
    await postgres.proxy.restore();

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, redisDownAt + 60_000 - Date.now())));
    await redis.proxy.restore();

    await vi.waitFor(async () => expect(await synced(), 'profiles synced').toBe(sizes.profiles), {
      timeout: 120_000,
      interval: 200,
    });
    await vi.waitFor(
      async () => expect((await health(healthPort)).status, 'GET /readyz after the outage').toBe(200),
      { timeout: 30_000, interval: 200 },
    );
    expect(await deadLettered(topology, 'profile-sync')).toBe(0);
    const messages = worker.logs.map((line) => line.msg);
    expect(messages).toContain('dependency unavailable: circuit open');
    expect(messages).toContain('dependencies available: polling resumed');
    expect(worker.logs.some((line) => line.msg === 'message dead-lettered')).toBe(false);
    expect((await worker.stop('SIGTERM')).code).toBe(0);
  }, 300_000);
});
