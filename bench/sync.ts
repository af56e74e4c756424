/**
 * `npm run bench -- sync`: how close a nightly sync gets to the floor the rate limits allow,
 * with 2 and 4 profile-sync worker processes side by side.
 *
 * The world (one per worker count, each with its own topology, database, Redis keys and
 * in-process sandbox, the same data and limits): ADFLEET_BENCH_SYNC_PROFILES profiles
 * (default 200) whose sizes fall off like a power law — the largest of
 * ADFLEET_BENCH_SYNC_LARGEST keywords (default 100,000), then 43,500, 26,800, … down to a
 * few hundred: a few large profiles, many small ones. Each profile has a hidden capacity in
 * the sandbox (`setProfileCapacity`), uneven: 10 to 40 req/s (burst = one second's worth),
 * which the fleet does not know and has to find; the client's capacity is the fleet's
 * configured client ceiling.
 *
 * Two nights per world, each started the way the schedule starts it
 * (`SyncAllProfilesRequested` on the bus):
 *   first   — nothing synced before: no run history, no learned rates;
 *   nightly — the next night: the profiles' run history and the rates the fleet learned
 *             are there, as they are for every night after the first.
 *
 * The floor: with req(p) the list requests the sandbox admitted for profile p in that night
 * and each profile's bucket of rate(p) per second after a burst of burst(p), a profile cannot
 * finish before (req(p) − burst(p)) / rate(p); profiles run in parallel, so the night cannot
 * finish before the slowest of them, nor before all requests at the client's limit:
 *   floor = max( max_p (req(p) − burst(p)) / rate(p) , (Σ_p req(p) − client burst) / client rate ).
 * Handler slots, queue latency, CPU and database time are not in the floor: they are what the
 * ratio measures. Wall time: the publish of SyncAllProfilesRequested to the last run's
 * finished_at.
 *
 * Where the gap goes, for the pole (the profile with the longest own floor): when the
 * fan-out asked for its sync, when its run started, when its first page was recorded, how
 * many requests the ramp cost (its rate limit's slow start and first 429s: requests short of
 * capacity × time in the first 10 s after the first page), its rate after that against its
 * capacity, the finish after its last page, and what ran after it finished.
 *
 * Correctness after each world: every profile's last run succeeded and its live keyword
 * count equals the sandbox's (read back through the sandbox's API).
 *
 * Development knobs: ADFLEET_BENCH_SYNC_PROFILES, ADFLEET_BENCH_SYNC_LARGEST,
 * ADFLEET_BENCH_SYNC_WORKERS ("2,4"), ADFLEET_BENCH_SYNC_NIGHTS ("first,nightly").
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { type Config, loadConfig, lwaTokenUrl } from '../contract/config.ts';
import type { BucketSpec } from '../sandbox/ads-api/capacity.ts';
import { type AdsSandbox, startAdsSandbox } from '../sandbox/ads-api/server.ts';
import type { SandboxStats } from '../sandbox/ads-api/stats.ts';
import { AdsApiClient } from '../shared/ads/client.ts';
import { LwaTokenProvider } from '../shared/ads/lwa.ts';
import { migrate } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { createTestDatabase, ensureTemplate, type TestDatabase } from '../test/support/database.ts';
import { workerEnv } from '../test/support/env.ts';
import { type NodeProcess, spawnNode } from '../test/support/processes.ts';
import { createTestTopology, type TestTopology } from '../test/support/topology.ts';
import { benchEnv, printTable } from './support.ts';

const PROFILES = Number(process.env.ADFLEET_BENCH_SYNC_PROFILES ?? 200);
const LARGEST_KEYWORDS = Number(process.env.ADFLEET_BENCH_SYNC_LARGEST ?? 100_000);
const WORKER_COUNTS = (process.env.ADFLEET_BENCH_SYNC_WORKERS ?? '2,4').split(',').map(Number);
const NIGHTS = (process.env.ADFLEET_BENCH_SYNC_NIGHTS ?? 'first,nightly').split(',') as Night[];
type Night = 'first' | 'nightly';
/** Sizes fall off as 1 / rank^SIZE_EXPONENT. */
const SIZE_EXPONENT = 1.2;
/** Hidden per-profile rates, by rank (cycled): uneven, the largest profile at 20 req/s. */
const PROFILE_RATES = [20, 10, 25, 15, 30, 10, 40, 20, 15, 25] as const;
const CLIENT_CAPACITY = { ratePerSecond: 2_000, burst: 2_000 } as const;
const DEADLINE_MS = 900_000;
const SAMPLE_MS = 200;
/** The ramp is judged over this long after the pole's first page. */
const RAMP_WINDOW_MS = 10_000;

interface ProfilePlan {
  readonly rank: number;
  readonly keywords: number;
  readonly capacity: BucketSpec;
}

/** The bench's profiles, largest first: sizes by a power law, capacities uneven. */
export function planProfiles(count: number, largest: number): ProfilePlan[] {
  return Array.from({ length: count }, (_, rank) => {
    const ratePerSecond = PROFILE_RATES[rank % PROFILE_RATES.length] as number;
    return {
      rank,
      keywords: Math.max(15, Math.round(largest / (rank + 1) ** SIZE_EXPONENT)),
      capacity: { ratePerSecond, burst: ratePerSecond },
    };
  });
}

function shapeOf(keywords: number) {
  // Large profiles: 10 campaigns × 10 ad groups; small ones 5 × 3 (one page of each).
  if (keywords >= 10_000)
    return { campaigns: 10, adGroupsPerCampaign: 10, keywordsPerAdGroup: Math.round(keywords / 100) };
  return { campaigns: 5, adGroupsPerCampaign: 3, keywordsPerAdGroup: Math.max(1, Math.round(keywords / 15)) };
}

/** The same permutation every run (a seeded Fisher–Yates; Math.random cannot be seeded). */
function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  let seed = 0x2545f491;
  const next = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU ms a process has used (user + system), from /proc/<pid>/stat; 0 if it is gone. */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    // After the command: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND) * 1000;
  } catch {
    return 0;
  }
}

/** The machine's busy and total CPU time (all cores, every process), from /proc/stat. */
function machineCpu(): { busy: number; total: number } {
  const [, ...values] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/);
  const ticks = values.map(Number);
  const total = ticks.reduce((sum, value) => sum + value, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: total - idle, total };
}

interface CpuSample {
  readonly machine: { busy: number; total: number };
  readonly workersMs: number;
  readonly benchMs: number;
  readonly postgres: Map<number, number>;
}

async function sampleCpu(world: World): Promise<CpuSample> {
  const { rows } = await world.database.pool.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database()',
  );
  const usage = process.cpuUsage();
  return {
    machine: machineCpu(),
    workersMs: world.processes.reduce((sum, w) => sum + processCpuMs(w.child.pid as number), 0),
    benchMs: (usage.user + usage.system) / 1000,
    postgres: new Map(rows.map((row) => [row.pid, processCpuMs(row.pid)])),
  };
}

function cpuBetween(start: CpuSample, end: CpuSample) {
  let postgresMs = 0;
  for (const [pid, ms] of end.postgres) postgresMs += ms - (start.postgres.get(pid) ?? 0);
  return {
    machineBusy:
      (end.machine.busy - start.machine.busy) / Math.max(1, end.machine.total - start.machine.total),
    workersMs: end.workersMs - start.workersMs,
    benchMs: end.benchMs - start.benchMs,
    postgresMs,
  };
}

/** Peak resident set of a process, in MiB, from the kernel's accounting. */
function peakMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) / 1024;
}

const seconds = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : '--');
const percent = (share: number) => `${(share * 100).toFixed(2)} %`;
const load = () => loadavg()[0]?.toFixed(1) ?? '?';

interface World {
  readonly workers: number;
  readonly database: TestDatabase;
  readonly topology: TestTopology;
  readonly sandbox: AdsSandbox;
  readonly config: Config;
  readonly processes: NodeProcess[];
  readonly plans: Map<number, ProfilePlan>;
  readonly redis: Redis;
}

interface NightResult {
  readonly night: Night;
  readonly workers: number;
  readonly loadAtStart: string;
  readonly requests: number;
  readonly floorMs: number;
  readonly clientFloorMs: number;
  readonly wallMs: number;
  readonly throttled: number;
  readonly attempted: number;
  readonly pole: PoleFigures;
  readonly notSucceeded: number;
  readonly cpu: ReturnType<typeof cpuBetween>;
}

interface PoleFigures {
  readonly rank: number;
  readonly keywords: number;
  readonly capacity: number;
  readonly requests: number;
  readonly floorMs: number;
  readonly requestedAfterMs: number;
  readonly startedAfterMs: number;
  readonly firstPageAfterMs: number;
  readonly rampLostRequests: number;
  readonly steadyRate: number;
  readonly lastPageAfterMs: number;
  readonly finishedAfterMs: number;
  readonly attempts: number;
  readonly learnedCeiling: number;
}

async function createWorld(workers: number, env: Record<string, string>): Promise<World> {
  const database = await createTestDatabase(env.DATABASE_URL as string);
  const sandbox = await startAdsSandbox({
    sizes: { profiles: 0, campaignsPerProfile: 0, adGroupsPerCampaign: 0, keywordsPerAdGroup: 0 },
    clientCapacity: CLIENT_CAPACITY,
  });
  const plans = new Map<number, ProfilePlan>();
  // Sizes in no relation to profile ids (ids are the order a plain fan-out sends in).
  for (const plan of shuffled(planProfiles(PROFILES, LARGEST_KEYWORDS)))
    plans.set(sandbox.admin.addProfile(shapeOf(plan.keywords)), plan);
  const topology = await createTestTopology(`bench-sync-${workers}`);
  const config = loadConfig({
    ...env,
    ADFLEET_RESOURCE_PREFIX: topology.prefix,
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
  });
  // The sandbox generates a profile's entities on its first request: do that now, outside
  // the measure, then give each profile its hidden capacity (a full bucket).
  const truth = truthClient(config);
  for (const profileId of plans.keys()) {
    for await (const _page of truth.pages('campaigns', profileId, { maxResults: 1 })) break;
  }
  await sleep(1_500);
  for (const [profileId, plan] of plans) sandbox.admin.setProfileCapacity(plan.capacity, profileId);
  const processes: NodeProcess[] = [];
  for (let i = 0; i < workers; i += 1)
    processes.push(
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
  await Promise.all(processes.map((w) => w.waitForLog((line) => line.msg === 'worker started', 120_000)));
  return {
    workers,
    database,
    topology,
    sandbox,
    config,
    processes,
    plans,
    redis: new Redis(env.REDIS_URL as string, { lazyConnect: false }),
  };
}

async function closeWorld(world: World) {
  await Promise.all(world.processes.map((w) => w.stop('SIGTERM')));
  world.redis.disconnect();
  await world.sandbox.close();
  await world.topology.destroy();
  await world.database.drop();
}

function admittedOf(stats: SandboxStats, profileId: number): number {
  const counters = stats.profiles[String(profileId)];
  return counters === undefined ? 0 : counters.requests - counters.throttled - counters.failed;
}

function ownFloorMs(requests: number, capacity: BucketSpec): number {
  return (Math.max(0, requests - capacity.burst) / capacity.ratePerSecond) * 1000;
}

async function runNight(world: World, night: Night): Promise<NightResult> {
  const { database, sandbox, plans } = world;
  const profileIds = [...plans.keys()];
  sandbox.admin.reset(); // counters only: data and capacities stay
  const loadAtStart = load();
  // The poles to watch: the profiles with the longest own floor for their size (one page per 100).
  const expectedFloor = (id: number) => {
    const plan = plans.get(id) as ProfilePlan;
    return ownFloorMs(Math.ceil(plan.keywords / 100) + 2, plan.capacity);
  };
  const watched = [...profileIds].sort((a, b) => expectedFloor(b) - expectedFloor(a)).slice(0, 3);
  const samples = new Map<number, Array<{ at: number; pages: number }>>(watched.map((id) => [id, []]));

  const { messenger } = createMessenger(world.topology.clients, world.config);
  const { rows: before } = await database.pool.query<{ max: string | null }>(
    'SELECT max(id)::text AS max FROM sync_runs',
  );
  const afterRunId = Number(before[0]?.max ?? 0);
  const cpuAtStart = await sampleCpu(world);
  const startedAt = Date.now();
  await messenger.publish('SyncAllProfilesRequested', { reason: `bench ${night}` });
  for (;;) {
    const { rows } = await database.pool.query<{ done: number; open: number }>(
      `SELECT count(DISTINCT profile_id) FILTER (WHERE status IN ('succeeded', 'failed'))::int AS done,
              count(*) FILTER (WHERE status = 'running')::int AS open
         FROM sync_runs WHERE id > $1`,
      [afterRunId],
    );
    const { rows: poles } = await database.pool.query<{ profile_id: string; pages: number }>(
      'SELECT profile_id, pages FROM sync_runs WHERE id > $1 AND profile_id = ANY($2::bigint[])',
      [afterRunId, watched],
    );
    const at = Date.now();
    for (const pole of poles) samples.get(Number(pole.profile_id))?.push({ at, pages: pole.pages });
    const { done, open } = rows[0] ?? { done: 0, open: 0 };
    if (done >= profileIds.length && open === 0) break;
    if (at - startedAt > DEADLINE_MS)
      throw new Error(`the ${night} sync did not end within ${DEADLINE_MS / 1000} s: ${done} profiles done`);
    await sleep(SAMPLE_MS);
  }
  const cpu = cpuBetween(cpuAtStart, await sampleCpu(world));
  const { rows: failures } = await database.pool.query<{ profile_id: string; status: string; error: string }>(
    `SELECT profile_id, status, error FROM sync_runs WHERE id > $1 AND status <> 'succeeded'`,
    [afterRunId],
  );
  for (const failure of failures)
    process.stdout.write(`  ${night}: profile ${failure.profile_id} ${failure.status}: ${failure.error}\n`);
  const stats = sandbox.admin.stats();
  const { rows: runRows } = await database.pool.query<{
    profile_id: string;
    status: string;
    requested_at: Date;
    started_at: Date;
    finished_at: Date | null;
    attempts: number;
  }>(
    'SELECT profile_id, status, requested_at, started_at, finished_at, attempts FROM sync_runs WHERE id > $1',
    [afterRunId],
  );
  const wallMs = Math.max(...runRows.map((run) => run.finished_at?.getTime() ?? 0)) - startedAt;
  const totalAdmitted = profileIds.reduce((sum, id) => sum + admittedOf(stats, id), 0);
  const floors = profileIds.map((id) => ({
    id,
    floorMs: ownFloorMs(admittedOf(stats, id), (plans.get(id) as ProfilePlan).capacity),
  }));
  const poleEntry = floors.reduce((a, b) => (b.floorMs > a.floorMs ? b : a));
  const clientFloorMs =
    (Math.max(0, totalAdmitted - CLIENT_CAPACITY.burst) / CLIENT_CAPACITY.ratePerSecond) * 1000;
  const pole = poleFigures(world, poleEntry.id, stats, runRows, samples.get(poleEntry.id) ?? [], startedAt);
  const { ceiling } = await world.redis.hgetall(
    `${world.config.ADFLEET_RESOURCE_PREFIX}:ads:rate:profile:${poleEntry.id}`,
  );
  return {
    night,
    workers: world.workers,
    loadAtStart,
    requests: totalAdmitted,
    floorMs: Math.max(poleEntry.floorMs, clientFloorMs),
    clientFloorMs,
    wallMs,
    throttled: stats.totals.throttled,
    attempted: stats.totals.requests,
    pole: { ...pole, learnedCeiling: Number(ceiling ?? Number.NaN) },
    notSucceeded: runRows.filter((run) => run.status !== 'succeeded').length,
    cpu,
  };
}

function poleFigures(
  world: World,
  profileId: number,
  stats: SandboxStats,
  runRows: ReadonlyArray<{
    profile_id: string;
    status: string;
    requested_at: Date;
    started_at: Date;
    finished_at: Date | null;
    attempts: number;
  }>,
  samples: ReadonlyArray<{ at: number; pages: number }>,
  startedAt: number,
): Omit<PoleFigures, 'learnedCeiling'> {
  const plan = world.plans.get(profileId) as ProfilePlan;
  const run = runRows.find((row) => Number(row.profile_id) === profileId);
  const requests = admittedOf(stats, profileId);
  const first = samples.find((sample) => sample.pages > 0);
  const last = samples.at(-1);
  const lastPage = samples.find((sample) => sample.pages === last?.pages);
  const rate = plan.capacity.ratePerSecond;
  let rampLostRequests = Number.NaN;
  let steadyRate = Number.NaN;
  if (first !== undefined && lastPage !== undefined) {
    const rampEnd = samples.find((sample) => sample.at >= first.at + RAMP_WINDOW_MS);
    if (rampEnd !== undefined) {
      const elapsed = (rampEnd.at - first.at) / 1000;
      // What a bucket of `rate` after its burst allows in that time, against what was recorded.
      rampLostRequests = Math.max(0, rate * elapsed + plan.capacity.burst - (rampEnd.pages - first.pages));
      if (lastPage.at > rampEnd.at)
        steadyRate = (lastPage.pages - rampEnd.pages) / ((lastPage.at - rampEnd.at) / 1000);
    }
  }
  return {
    rank: plan.rank,
    keywords: plan.keywords,
    capacity: rate,
    requests,
    floorMs: ownFloorMs(requests, plan.capacity),
    requestedAfterMs: run ? run.requested_at.getTime() - startedAt : Number.NaN,
    startedAfterMs: run ? run.started_at.getTime() - startedAt : Number.NaN,
    firstPageAfterMs: first ? first.at - startedAt : Number.NaN,
    rampLostRequests,
    steadyRate,
    lastPageAfterMs: lastPage ? lastPage.at - startedAt : Number.NaN,
    finishedAfterMs: run?.finished_at ? run.finished_at.getTime() - startedAt : Number.NaN,
    attempts: run?.attempts ?? 0,
  };
}

/** The sandbox's API without a rate limiter, for what the bench reads outside the measure. */
function truthClient(config: Config): AdsApiClient {
  return new AdsApiClient({
    baseUrl: config.ADFLEET_ADS_API_URL,
    clientId: config.ADFLEET_ADS_CLIENT_ID,
    tokens: new LwaTokenProvider({
      tokenUrl: lwaTokenUrl(config),
      clientId: config.ADFLEET_ADS_CLIENT_ID,
      clientSecret: config.ADFLEET_ADS_CLIENT_SECRET,
      refreshToken: config.ADFLEET_ADS_REFRESH_TOKEN,
    }),
  });
}

/** Every profile's live keyword count in Postgres against the sandbox's, read without limits. */
async function checkConsistency(world: World): Promise<{ matching: number; db: number; sandbox: number }> {
  const { config, sandbox, database } = world;
  for (const profileId of world.plans.keys())
    sandbox.admin.setProfileCapacity({ ratePerSecond: 10_000, burst: 10_000 }, profileId);
  const truth = truthClient(config);
  const { rows } = await database.pool.query<{ profile_id: string; keywords: number }>(
    'SELECT profile_id, count(*)::int AS keywords FROM keywords WHERE removed_at IS NULL GROUP BY profile_id',
  );
  const synced = new Map(rows.map((row) => [Number(row.profile_id), row.keywords]));
  let matching = 0;
  let sandboxTotal = 0;
  for (const profileId of world.plans.keys()) {
    let count = 0;
    for await (const page of truth.pages('keywords', profileId, { maxResults: 1_000 }))
      count += page.items.length;
    sandboxTotal += count;
    if (synced.get(profileId) === count) matching += 1;
  }
  return { matching, db: [...synced.values()].reduce((sum, n) => sum + n, 0), sandbox: sandboxTotal };
}

export async function runSyncBench(): Promise<void> {
  const env = benchEnv();
  await ensureTemplate(env.DATABASE_URL as string, (url) => migrate(url));
  const plans = planProfiles(PROFILES, LARGEST_KEYWORDS);
  const pages = plans.reduce((sum, plan) => sum + Math.ceil(plan.keywords / 100) + 2, 0);
  process.stdout.write(
    `\nsync: ${PROFILES} profiles, ${plans.reduce((sum, plan) => sum + plan.keywords, 0).toLocaleString('en-US')} keywords ` +
      `(largest ${plans
        .slice(0, 4)
        .map((plan) => plan.keywords.toLocaleString('en-US'))
        .join(
          ', ',
        )}, …, smallest ${plans.at(-1)?.keywords}), about ${pages.toLocaleString('en-US')} list pages; ` +
      `hidden profile capacities ${[...new Set(PROFILE_RATES)].sort((a, b) => a - b).join('/')} req/s, ` +
      `client ${CLIENT_CAPACITY.ratePerSecond} req/s; load average at the start ${loadavg()
        .map((value) => value.toFixed(1))
        .join(' ')} (${process.env.ADFLEET_BENCH_SYNC_WORKERS ?? '2,4'} worker processes)\n`,
  );
  const results: NightResult[] = [];
  const checks: Array<{ workers: number; matching: number; db: number; sandbox: number; peak: number }> = [];
  for (const workers of WORKER_COUNTS) {
    const world = await createWorld(workers, env);
    try {
      for (const night of NIGHTS) {
        const result = await runNight(world, night);
        results.push(result);
        process.stdout.write(
          `  ${workers} workers, ${night}: wall ${seconds(result.wallMs)} / floor ${seconds(result.floorMs)} (load ${load()})\n`,
        );
      }
      const peak = Math.max(...world.processes.map((w) => peakMiB(w.child.pid as number)));
      checks.push({ workers, ...(await checkConsistency(world)), peak });
    } finally {
      await closeWorld(world);
    }
  }

  printTable('nightly sync against the rate-limit floor', [
    ['workers', 'night', 'load', 'list requests', 'floor', 'wall', 'wall / floor', '429s', 'runs not ok'],
    ...results.map((r) => [
      `${r.workers} × ${loadConfig(env).ADFLEET_CONCURRENCY}`,
      r.night,
      r.loadAtStart,
      r.requests.toLocaleString('en-US'),
      seconds(r.floorMs),
      seconds(r.wallMs),
      `${(r.wallMs / r.floorMs).toFixed(2)}×`,
      `${percent(r.throttled / Math.max(1, r.attempted))} (${r.throttled} of ${r.attempted})`,
      String(r.notSucceeded),
    ]),
  ]);
  process.stdout.write(
    '  floor = max(slowest profile (req − burst) / rate, all (req − client burst) / client rate); ' +
      `the client term: ${results.map((r) => seconds(r.clientFloorMs)).join(', ')}\n`,
  );
  printTable(
    'where the gap goes: the pole (the profile with the longest own floor), seconds after the publish',
    [
      [
        'workers',
        'night',
        'pole',
        'its floor',
        'requested',
        'run started',
        'first page',
        'ramp cost',
        'rate after 10 s',
        'last page',
        'finished',
        'wall − pole',
        'attempts',
        'learned ceiling',
      ],
      ...results.map((r) => {
        const p = r.pole;
        return [
          String(r.workers),
          r.night,
          `#${p.rank + 1} ${p.keywords.toLocaleString('en-US')} kw @ ${p.capacity}/s`,
          seconds(p.floorMs),
          seconds(p.requestedAfterMs),
          seconds(p.startedAfterMs),
          seconds(p.firstPageAfterMs),
          Number.isFinite(p.rampLostRequests)
            ? `${p.rampLostRequests.toFixed(0)} req = ${seconds((p.rampLostRequests / p.capacity) * 1000)}`
            : '--',
          Number.isFinite(p.steadyRate)
            ? `${p.steadyRate.toFixed(1)}/s (${percent(p.steadyRate / p.capacity)})`
            : '--',
          seconds(p.lastPageAfterMs),
          seconds(p.finishedAfterMs),
          seconds(r.wallMs - p.finishedAfterMs),
          String(p.attempts),
          Number.isFinite(p.learnedCeiling) ? `${p.learnedCeiling.toFixed(1)}/s` : '--',
        ];
      }),
    ],
  );
  printTable('the machine during each night (2 cores, shared)', [
    [
      'workers',
      'night',
      'machine busy',
      'pages/s',
      'CPU ms per page: workers',
      'sandbox + bench',
      'postgres (this db)',
      'all three',
    ],
    ...results.map((r) => {
      const perPage = (ms: number) => (ms / Math.max(1, r.requests)).toFixed(1);
      return [
        String(r.workers),
        r.night,
        percent(r.cpu.machineBusy),
        (r.requests / (r.wallMs / 1000)).toFixed(0),
        perPage(r.cpu.workersMs),
        perPage(r.cpu.benchMs),
        perPage(r.cpu.postgresMs),
        perPage(r.cpu.workersMs + r.cpu.benchMs + r.cpu.postgresMs),
      ];
    }),
  ]);
  printTable('correctness and memory, after both nights', [
    ['workers', 'keyword counts equal to the sandbox', 'keywords (db / sandbox)', 'worker peak RSS (max)'],
    ...checks.map((c) => [
      String(c.workers),
      `${c.matching} / ${PROFILES}`,
      `${c.db.toLocaleString('en-US')} / ${c.sandbox.toLocaleString('en-US')}`,
      `${c.peak.toFixed(0)} MiB`,
    ]),
  ]);
  process.stdout.write(
    `  load average at the end: ${loadavg()
      .map((v) => v.toFixed(1))
      .join(' ')}\n`,
  );
  if (checks.some((c) => c.matching !== PROFILES) || results.some((r) => r.notSucceeded > 0))
    throw new Error('a night did not end consistent with the sandbox (see the tables)');
}
