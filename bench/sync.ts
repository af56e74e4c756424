/**
 * `npm run bench -- sync`: how close a nightly sync gets to the floor the rate limits allow.
 *
 * ADFLEET_BENCH_SYNC_PROFILES small profiles (default 50, uneven: 150 to 2,550 keywords) and
 * one big profile of 100,000 keywords (10 campaigns × 10 ad groups × 1,000 keywords) in an
 * in-process sandbox whose every profile has the same known capacity
 * (`setProfileCapacity`, PROFILE_CAPACITY below); two real profile-sync worker processes on a
 * topology and a database of their own; the sync is started the way the schedule starts it,
 * with `SyncAllProfilesRequested`.
 *
 * Printed side by side: the floor, the wall time (publish of SyncAllProfilesRequested to the
 * last run's finished_at), floor / wall, the share of requests answered 429, the big
 * profile's run time against its own floor, and each worker process's peak RSS (VmHWM from
 * /proc/<pid>/status, read idle after start and again after the sync). Then correctness:
 * every profile's run succeeded and its live keyword count equals the sandbox's (read back
 * through the sandbox's API after the measurement).
 *
 * The floor: with req(p) the list requests the sandbox admitted for profile p in this run
 * and each profile's bucket of `rate` per second after a burst of `burst`, a profile cannot
 * finish before (req(p) − burst) / rate; profiles run in parallel, so the whole cannot finish
 * before the slowest of them, nor before all requests at the client's limit:
 *   floor = max( max_p (req(p) − burst) / rate , (Σ_p req(p) − client burst) / client rate ).
 * Handler slots, queue latency and database time are not in the floor: they are what the
 * ratio measures.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, lwaTokenUrl } from '../contract/config.ts';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import { AdsApiClient } from '../shared/ads/client.ts';
import { LwaTokenProvider } from '../shared/ads/lwa.ts';
import { migrate } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { createTestDatabase, ensureTemplate } from '../test/support/database.ts';
import { workerEnv } from '../test/support/env.ts';
import { type NodeProcess, spawnNode } from '../test/support/processes.ts';
import { createTestTopology } from '../test/support/topology.ts';
import { benchEnv, printTable } from './support.ts';

const SMALL_PROFILES = Number(process.env.ADFLEET_BENCH_SYNC_PROFILES ?? 50);
const WORKER_PROCESSES = 2;
const PROFILE_CAPACITY = { ratePerSecond: 20, burst: 20 } as const;
const CLIENT_CAPACITY = { ratePerSecond: 2_000, burst: 2_000 } as const;
const BIG_PROFILE = { campaigns: 10, adGroupsPerCampaign: 10, keywordsPerAdGroup: 1_000 } as const;
const DEADLINE_MS = 600_000;

/** Peak and current resident set of a process, in MiB, from the kernel's accounting. */
function memoryOf(pid: number): { hwmMiB: number; rssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { hwmMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (value: number) => `${value.toFixed(0)} MiB`;

export async function runSyncBench(): Promise<void> {
  const env = benchEnv();
  await ensureTemplate(env.DATABASE_URL as string, (url) => migrate(url));
  const database = await createTestDatabase(env.DATABASE_URL as string);
  const sandbox = await startAdsSandbox({
    sizes: { profiles: 0, campaignsPerProfile: 0, adGroupsPerCampaign: 0, keywordsPerAdGroup: 0 },
    clientCapacity: CLIENT_CAPACITY,
  });
  const { admin } = sandbox;
  // Uneven small profiles: 5 campaigns × 3 ad groups × 10 to 170 keywords (2 to 26 keyword pages).
  for (let i = 0; i < SMALL_PROFILES; i += 1)
    admin.addProfile({ campaigns: 5, adGroupsPerCampaign: 3, keywordsPerAdGroup: 10 + (i % 5) * 40 });
  const bigProfile = admin.addProfile(BIG_PROFILE);
  admin.setProfileCapacity(PROFILE_CAPACITY);
  const profileIds = admin.profileIds();

  const topology = await createTestTopology('bench-sync');
  const config = loadConfig({
    ...env,
    ADFLEET_RESOURCE_PREFIX: topology.prefix,
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
  });
  const workers: NodeProcess[] = [];
  try {
    for (let i = 0; i < WORKER_PROCESSES; i += 1)
      workers.push(
        spawnNode(
          'workers/profile-sync/main.ts',
          workerEnv(topology.prefix, {
            DATABASE_URL: database.url,
            ADFLEET_ADS_API_URL: sandbox.url,
            ADFLEET_ADS_CLIENT_RATE_LIMIT: String(CLIENT_CAPACITY.ratePerSecond),
            ADFLEET_POLL_WAIT_SECONDS: '1',
          }),
        ),
      );
    await Promise.all(workers.map((w) => w.waitForLog((line) => line.msg === 'worker started', 120_000)));
    const idle = workers.map((w) => memoryOf(w.child.pid as number));
    const concurrency = config.ADFLEET_CONCURRENCY;
    process.stdout.write(
      `\nsync: ${SMALL_PROFILES} small profiles + 1 of ${(100_000).toLocaleString('en-US')} keywords; ` +
        `${WORKER_PROCESSES} profile-sync processes × ${concurrency} handlers; ` +
        `sandbox ${PROFILE_CAPACITY.ratePerSecond} req/s per profile (burst ${PROFILE_CAPACITY.burst}), ` +
        `client ${CLIENT_CAPACITY.ratePerSecond} req/s\n`,
    );

    const { messenger } = createMessenger(topology.clients, config);
    const startedAt = Date.now();
    await messenger.publish('SyncAllProfilesRequested', { reason: 'bench' });
    for (;;) {
      const { rows } = await database.pool.query<{ done: number; running: number }>(
        `SELECT count(*) FILTER (WHERE last_good_run_id IS NOT NULL OR last_failed_run_id IS NOT NULL)::int AS done,
                count(*) FILTER (WHERE running_run_id IS NOT NULL OR queued_at IS NOT NULL)::int AS running
           FROM profile_sync_state`,
      );
      const { done, running } = rows[0] ?? { done: 0, running: 0 };
      if (done >= profileIds.length && running === 0) break;
      if (Date.now() - startedAt > DEADLINE_MS)
        throw new Error(`the sync did not end within ${DEADLINE_MS / 1000} s: ${done} profiles done`);
      await sleep(250);
    }
    const stats = admin.stats();
    const peak = workers.map((w) => memoryOf(w.child.pid as number));

    const { rows: runRows } = await database.pool.query<{
      profile_id: string;
      status: string;
      started_at: Date;
      finished_at: Date | null;
      throttled_ms: string;
      pages: number;
      attempts: number;
    }>('SELECT profile_id, status, started_at, finished_at, throttled_ms, pages, attempts FROM sync_runs');
    const lastFinish = Math.max(...runRows.map((run) => run.finished_at?.getTime() ?? 0));
    const wallMs = lastFinish - startedAt;

    const admitted = (profileId: number) => {
      const counters = stats.profiles[String(profileId)];
      return counters === undefined ? 0 : counters.requests - counters.throttled - counters.failed;
    };
    const profileFloorMs = (profileId: number) =>
      (Math.max(0, admitted(profileId) - PROFILE_CAPACITY.burst) / PROFILE_CAPACITY.ratePerSecond) * 1000;
    const totalAdmitted = profileIds.reduce((sum, id) => sum + admitted(id), 0);
    const slowestProfileFloorMs = Math.max(...profileIds.map(profileFloorMs));
    const clientFloorMs =
      (Math.max(0, totalAdmitted - CLIENT_CAPACITY.burst) / CLIENT_CAPACITY.ratePerSecond) * 1000;
    const floorMs = Math.max(slowestProfileFloorMs, clientFloorMs);
    const throttledShare = stats.totals.throttled / Math.max(1, stats.totals.requests);
    const bigRun = runRows.find((run) => Number(run.profile_id) === bigProfile && run.status === 'succeeded');
    const bigRunMs = bigRun?.finished_at ? bigRun.finished_at.getTime() - bigRun.started_at.getTime() : NaN;
    const bigFromRequestMs = bigRun?.finished_at ? bigRun.finished_at.getTime() - startedAt : NaN;

    printTable('nightly sync against the rate-limit floor', [
      ['profiles', 'list requests', 'floor', 'wall', 'floor / wall', '429s', 'workers'],
      [
        String(profileIds.length),
        totalAdmitted.toLocaleString('en-US'),
        seconds(floorMs),
        seconds(wallMs),
        `${(floorMs / wallMs).toFixed(2)} (wall = ${(wallMs / floorMs).toFixed(2)}× floor)`,
        `${(throttledShare * 100).toFixed(2)} % (${stats.totals.throttled} of ${stats.totals.requests})`,
        `${WORKER_PROCESSES} × ${concurrency}`,
      ],
    ]);
    process.stdout.write(
      `  floor = max(slowest profile (req − ${PROFILE_CAPACITY.burst}) / ${PROFILE_CAPACITY.ratePerSecond} req/s = ${seconds(slowestProfileFloorMs)}, ` +
        `all (req − ${CLIENT_CAPACITY.burst}) / ${CLIENT_CAPACITY.ratePerSecond} req/s = ${seconds(clientFloorMs)})\n`,
    );
    printTable('the 100,000-keyword profile', [
      [
        'list requests',
        'its floor',
        'run (start to end)',
        'run / floor',
        'request to end',
        'run started after',
        'attempts',
        'pages',
        'throttled',
      ],
      [
        admitted(bigProfile).toLocaleString('en-US'),
        seconds(profileFloorMs(bigProfile)),
        seconds(bigRunMs),
        `${(bigRunMs / profileFloorMs(bigProfile)).toFixed(2)}×`,
        seconds(bigFromRequestMs),
        seconds(bigRun ? bigRun.started_at.getTime() - startedAt : NaN),
        String(bigRun?.attempts ?? 0),
        String(bigRun?.pages ?? 0),
        seconds(Number(bigRun?.throttled_ms ?? 0)),
      ],
    ]);
    printTable('worker memory (VmHWM / VmRSS from /proc/<pid>/status)', [
      ['process', 'peak idle (after start)', 'peak after the sync', 'RSS after the sync'],
      ...workers.map((_, i) => [
        `profile-sync #${i + 1}`,
        mib(idle[i]?.hwmMiB ?? NaN),
        mib(peak[i]?.hwmMiB ?? NaN),
        mib(peak[i]?.rssMiB ?? NaN),
      ]),
    ]);

    // Correctness, read back after the measurement with the limits out of the way.
    admin.setProfileCapacity({ ratePerSecond: 10_000, burst: 10_000 });
    const truth = new AdsApiClient({
      baseUrl: sandbox.url,
      clientId: config.ADFLEET_ADS_CLIENT_ID,
      tokens: new LwaTokenProvider({
        tokenUrl: lwaTokenUrl(config),
        clientId: config.ADFLEET_ADS_CLIENT_ID,
        clientSecret: config.ADFLEET_ADS_CLIENT_SECRET,
        refreshToken: config.ADFLEET_ADS_REFRESH_TOKEN,
      }),
    });
    const { rows: counted } = await database.pool.query<{ profile_id: string; keywords: number }>(
      'SELECT profile_id, count(*)::int AS keywords FROM keywords WHERE removed_at IS NULL GROUP BY profile_id',
    );
    const synced = new Map(counted.map((row) => [Number(row.profile_id), row.keywords]));
    let matching = 0;
    let sandboxKeywords = 0;
    for (const profileId of profileIds) {
      let count = 0;
      for await (const page of truth.pages('keywords', profileId, { maxResults: 1_000 }))
        count += page.items.length;
      sandboxKeywords += count;
      if (synced.get(profileId) === count) matching += 1;
    }
    const succeeded = new Set(
      runRows.filter((run) => run.status === 'succeeded').map((run) => Number(run.profile_id)),
    );
    const notSucceeded = runRows.filter((run) => run.status !== 'succeeded').length;
    const databaseKeywords = [...synced.values()].reduce((sum, n) => sum + n, 0);
    printTable('correctness', [
      [
        'profiles with a succeeded run',
        'runs not succeeded',
        'keyword counts equal to the sandbox',
        'keywords (db / sandbox)',
      ],
      [
        `${profileIds.filter((id) => succeeded.has(id)).length} / ${profileIds.length}`,
        String(notSucceeded),
        `${matching} / ${profileIds.length}`,
        `${databaseKeywords.toLocaleString('en-US')} / ${sandboxKeywords.toLocaleString('en-US')}`,
      ],
    ]);
    if (matching !== profileIds.length || succeeded.size !== profileIds.length)
      throw new Error('the sync did not end consistent with the sandbox (see the correctness table)');
  } finally {
    await Promise.all(workers.map((w) => w.stop('SIGTERM')));
    await sandbox.close();
    await topology.destroy();
    await database.drop();
  }
}
