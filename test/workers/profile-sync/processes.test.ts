import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { workerEnv } from '../../support/env.ts';
import { type NodeProcess, spawnNode } from '../../support/processes.ts';
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
 * Real worker processes: a sync stopped by SIGTERM resumes from its checkpoint in the next
 * process, a sync whose process was killed (SIGKILL) is taken over and finished; freshness
 * metrics go out with nothing syncing; `sync status --stale` exits non-zero past the SLO.
 */
describe('profile-sync processes', () => {
  // 2 campaigns, 4 ad groups, 2,000 keywords: 1 + 1 + 20 pages.
  const sizes = { profiles: 1, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 500 };
  const PAGES = 22;
  let harness: SyncHarness;
  let profileId: number;
  const workers: NodeProcess[] = [];

  function startWorkerProcess(overrides: Record<string, string> = {}) {
    const worker = spawnNode(
      'workers/profile-sync/main.ts',
      workerEnv(harness.topology.prefix, {
        DATABASE_URL: harness.database.url,
        ADFLEET_ADS_API_URL: harness.sandbox.url,
        ADFLEET_POLL_WAIT_SECONDS: '1',
        ADFLEET_DRAIN_TIMEOUT_MS: '1500',
        ADFLEET_SYNC_FRESHNESS_INTERVAL_SECONDS: '1',
        ADFLEET_SYNC_STALE_AFTER_SECONDS: '3',
        ...overrides,
      }),
    );
    workers.push(worker);
    return worker;
  }

  async function pagesOfRunningSync(atLeast: number) {
    await vi.waitFor(
      async () => {
        const running = (await runs(harness.database.pool, profileId)).find(
          (run) => run.status === 'running',
        );
        expect(running?.pages ?? 0, 'pages of the running sync').toBeGreaterThanOrEqual(atLeast);
      },
      { timeout: 60_000, interval: 100 },
    );
  }

  beforeAll(async () => {
    harness = await startSyncHarness({
      label: 'sync-proc',
      sandbox: { sizes },
      inProcessWorker: false,
      config: { ADFLEET_SYNC_STALE_AFTER_SECONDS: '3' },
    });
    [profileId] = harness.sandbox.admin.profileIds() as [number];
    const { rows } = await harness.database.pool.query('SELECT 1');
    expect(rows).toHaveLength(1);
  });
  afterAll(async () => {
    for (const worker of workers) await worker.stop('SIGKILL');
    await harness?.close();
  });

  it('writes the freshness metrics with nothing syncing; a sync stopped by SIGTERM resumes in the next process after its last page', async () => {
    const worker = startWorkerProcess();
    await worker.waitForLog((line) => line.msg === 'worker started', 60_000);
    await vi.waitFor(
      () => {
        const lines = worker.logs.filter((line) => 'ProfilesPastSyncSlo' in line);
        expect(lines.length, 'freshness metric lines').toBeGreaterThanOrEqual(2);
      },
      { timeout: 20_000, interval: 200 },
    );
    expect(await runs(harness.database.pool)).toHaveLength(0);
    // The fan-out lists the profile, so that the next tests can ask for it by id.
    harness.sandbox.admin.injectFaults({ latencyMs: 150 });
    const { createMessenger } = await import('../../../shared/messaging/messenger.ts');
    await createMessenger(harness.topology.clients, harness.config).messenger.publish(
      'SyncAllProfilesRequested',
      {
        reason: 'test',
      },
    );
    await pagesOfRunningSync(3);
    // SIGTERM half way: the drain deadline passes, the run is released with its checkpoint.
    expect((await worker.stop('SIGTERM')).code).toBe(0);
    const [stopped] = await runs(harness.database.pool, profileId);
    expect(stopped).toMatchObject({ status: 'running', attempts: 1 });
    expect(stopped?.pages).toBeGreaterThanOrEqual(3);
    expect(stopped?.pages).toBeLessThan(PAGES);

    harness.sandbox.admin.reset();
    const next = startWorkerProcess();
    await next.waitForLog((line) => line.msg === 'worker started', 60_000);
    const [resumed] = await runsEnded(harness.database.pool, 1, { profileId });
    expect(resumed).toMatchObject({ id: stopped?.id, status: 'succeeded', attempts: 2, pages: PAGES });
    expect(resumed?.resume_note).toMatch(/^resumed: campaigns done, adGroups done, keywords after page \d+/);
    // The second process listed only what the first had not: not one page from the start again.
    const requests = harness.sandbox.admin.stats().profiles[String(profileId)]?.requests ?? 0;
    expect(requests).toBeLessThanOrEqual(PAGES - (stopped?.pages ?? 0) + 1);
    const truth = await sandboxLines(harness.truth, [profileId]);
    expect(checksum(await databaseLines(harness.database.pool, [profileId]))).toBe(checksum(truth));
    expect(resumed?.counts.keywords).toMatchObject({ seen: 2_000, inserted: 2_000 });
    await next.stop('SIGTERM');
  }, 180_000);

  it('finishes a sync whose process was killed (SIGKILL): the next request takes it over from its checkpoint', async () => {
    await harness.database.pool.query('UPDATE keywords SET bid = bid + 1 WHERE profile_id = $1', [profileId]);
    harness.sandbox.admin.injectFaults({ latencyMs: 150 });
    const worker = startWorkerProcess();
    await worker.waitForLog((line) => line.msg === 'worker started', 60_000);
    await harness.request([profileId], { kind: 'operator', reason: 'before the kill' });
    await pagesOfRunningSync(3);
    await worker.stop('SIGKILL');
    const killed = (await runs(harness.database.pool, profileId)).at(-1);
    expect(killed?.status).toBe('running');

    const next = startWorkerProcess();
    await next.waitForLog((line) => line.msg === 'worker started', 60_000);
    // Past the stale threshold (3 s) the run is no longer live: a request is enqueued and its
    // run supersedes the dead one, taking over its checkpoint.
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    const [result] = await harness.request([profileId], { kind: 'operator', reason: 'after the kill' });
    expect(result?.outcome).toBe('enqueued');
    const all = await runsEnded(harness.database.pool, 2, { profileId });
    harness.sandbox.admin.reset();
    const old = all.find((run) => run.id === killed?.id);
    const taker = all.find((run) => run.resumed_from === killed?.id);
    expect(old).toMatchObject({ status: 'superseded', superseded_by: taker?.id });
    expect(taker).toMatchObject({ status: 'succeeded', pages: PAGES });
    expect(taker?.resume_note).toMatch(new RegExp(`^resumed from run ${killed?.id}: `));
    expect(checksum(await databaseLines(harness.database.pool, [profileId]))).toBe(
      checksum(await sandboxLines(harness.truth, [profileId])),
    );
    await next.stop('SIGTERM');
  }, 180_000);

  it('`sync status --stale` lists profiles past the SLO and exits non-zero, and exits 0 when none are', async () => {
    const env = workerEnv(harness.topology.prefix, { DATABASE_URL: harness.database.url });
    const strict = spawnNode('cli/main.ts', { ...env, ADFLEET_SYNC_FRESHNESS_SLO_HOURS: '0.0001' }, [
      'sync',
      'status',
      '--stale',
      '--json',
    ]);
    expect((await strict.exited).code).toBe(1);
    const report = JSON.parse(strict.output.join('')) as {
      profiles: Array<{ profileId: number; pastSlo: boolean }>;
    };
    expect(report.profiles.map((profile) => [profile.profileId, profile.pastSlo])).toEqual([
      [profileId, true],
    ]);

    const relaxed = spawnNode('cli/main.ts', env, ['sync', 'status', '--stale', '--json']);
    expect((await relaxed.exited).code).toBe(0);
    expect(JSON.parse(relaxed.output.join('')).profiles).toEqual([]);
  });
});
