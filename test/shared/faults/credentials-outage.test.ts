import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../../sandbox/ads-api/server.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
import { freePort } from '../../support/tcp-proxy.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { deadLettered, health, testMessenger } from './support.ts';

/**
 * Login with Amazon refusing the app's credentials (a rotated secret, a revoked grant) is
 * not the messages' fault: the worker trips its credentials breaker, reports not-ready,
 * dead-letters nothing, and syncs everything once the credentials work again. On a chassis
 * that treats a refused grant as fatal, every message is dead-lettered within seconds.
 */
describe('refused credentials', () => {
  const sizes = { profiles: 6, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 10 };
  let topology: TestTopology;
  let database: TestDatabase;
  let sandbox: AdsSandbox;
  let worker: NodeProcess | undefined;

  beforeAll(async () => {
    topology = await createTestTopology('credentials');
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    sandbox = await startAdsSandbox({ sizes });
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await sandbox?.close();
    await topology?.destroy();
    await database?.drop();
  });

  async function syncedSince(since: Date): Promise<number> {
    const { rows } = await database.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM profiles WHERE last_synced_at > $1',
      [since],
    );
    return rows[0]?.n ?? 0;
  }

  it('reports not-ready, dead-letters nothing, and recovers by itself when the credentials work again', async () => {
    const healthPort = await freePort();
    worker = spawnNode(
      'workers/profile-sync/main.ts',
      workerEnv(topology.prefix, {
        DATABASE_URL: database.url,
        ADFLEET_ADS_API_URL: sandbox.url,
        ADFLEET_HEALTH_PORT: String(healthPort),
        ADFLEET_CONCURRENCY: '4',
        ADFLEET_POLL_WAIT_SECONDS: '1',
      }),
    );
    await worker.waitForLog((line) => line.msg === 'worker started', 60_000);
    const messenger = testMessenger(topology);
    await messenger.publish('SyncAllProfilesRequested', { reason: 'before' });
    await vi.waitFor(
      async () => expect(await syncedSince(new Date(0)), 'profiles synced first').toBe(sizes.profiles),
      { timeout: 60_000, interval: 200 },
    );

    sandbox.admin.refuseCredentials(true);
    const refusedAt = new Date();
    await messenger.sendBatch(
      'SyncProfile',
      sandbox.admin.profileIds().map((profileId) => ({
        profileId,
        requestId: randomUUID(),
        requestedAt: new Date().toISOString(),
        trigger: { kind: 'operator' as const, reason: 'while refused' },
      })),
    );
    const notReady = await vi.waitFor(
      async () => {
        const state = await health(healthPort);
        expect(state.status, 'GET /readyz while the credentials are refused').toBe(503);
        expect(JSON.stringify(state.body)).toContain('ads-credentials unavailable');
        return state;
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(JSON.stringify(notReady.body)).not.toContain('adfleet-local-secret');
    // Longer than five receives' worth of retry backoff: still nothing in the DLQ.
    await new Promise((resolve) => setTimeout(resolve, 35_000));
    expect(await deadLettered(topology, 'profile-sync')).toBe(0);
    expect(await syncedSince(refusedAt)).toBe(0);

    sandbox.admin.refuseCredentials(false);
    await vi.waitFor(
      async () => expect(await syncedSince(refusedAt), 'profiles synced again').toBe(sizes.profiles),
      { timeout: 120_000, interval: 200 },
    );
    await vi.waitFor(
      async () => expect((await health(healthPort)).status, 'GET /readyz after the fix').toBe(200),
      { timeout: 30_000, interval: 200 },
    );
    expect(await deadLettered(topology, 'profile-sync')).toBe(0);
    expect(worker.logs.some((line) => line.msg === 'message dead-lettered')).toBe(false);
    expect(
      worker.logs.some(
        (line) =>
          line.msg === 'dependency unavailable: circuit open' && line.dependency === 'ads-credentials',
      ),
    ).toBe(true);
    expect((await worker.stop('SIGTERM')).code).toBe(0);
  }, 300_000);
});
