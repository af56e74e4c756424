/**
 * Bulk benchmark (`npm run bench -- bulk`; `ADFLEET_BENCH_BULK=submit|run|fairness` for one part).
 *
 *   submit 1,000,000 rows   `bulk submit` of a generated CSV (keyword bid changes over
 *                           1,000 profiles) into a fresh database, in its own process:
 *                           rows/s and peak RSS. Targets: ≥ 50,000 rows/s, < 256 MiB.
 *
 *   run                     ADFLEET_BENCH_BULK_ITEMS items (default 50,000) over
 *                           ADFLEET_BENCH_BULK_PROFILES profiles (default 500) in an
 *                           in-process sandbox, four real bulk-item worker processes
 *                           (20 handlers each) on a topology and database of their own.
 *     items per profile     Zipf (s = 1) by rank, at least 5: at 50,000 / 500 the first
 *                           profile has about 7,360 items, the tenth about 740, the last
 *                           about 15.
 *     rows                  keyword bid (and every 7th a state) changes, a campaign budget
 *                           change on every 5th profile; every 10th row one Amazon refuses
 *                           by its own validation (an archived keyword, an id the profile
 *                           does not have, or a bid outside the profile's marketplace bounds
 *                           but inside the widest ones `bulk submit` checks an unsynced
 *                           profile against).
 *     hidden capacity       per profile by rank r: 1, 2 or 4 requests/s (r mod 3), burst
 *                           equal to the rate; the client 2,000/s. The fleet is not told.
 *     faults                3 % of admitted calls answer 503, 2 % are held 12 s by the
 *                           sandbox (past the client's 10 s timeout, so the call times out
 *                           while the change is applied); 429s come from the capacities.
 *     SIGKILL               ADFLEET_BENCH_BULK_KILLS times (default 3), at even points of
 *                           the estimated floor, the worker holding the most leased items
 *                           is killed and a new one started.
 *     batches               100 items per call (ADFLEET_BULK_BATCH_SIZE=100; Amazon takes
 *                           1,000): at 1,000, 50,000 items over 500 profiles is about one
 *                           call per profile and no profile's bucket would bind.
 *   The job is written by `submitBulkFile` and started with `BulkJobSubmitted`, as
 *   `adfleet bulk submit` does; wall = from that publish to the job's finished_at.
 *
 *   Printed side by side: wall, items/s, the capacity floor and share = floor / wall
 *   (target ≥ 0.9), calls admitted against the fewest the items need, 429s, deferrals.
 *   The floor: with adm(p) the calls the sandbox's bucket of profile p admitted in the run
 *   (requests − 429s; a 503 or a held call took its token too), rate(p) and burst(p) its
 *   hidden capacity, a profile cannot finish before (adm(p) − burst(p)) / rate(p);
 *   profiles run in parallel, so
 *     floor = max( max_p (adm(p) − burst(p)) / rate(p) , (Σ_p adm(p) − client burst) / client rate ).
 *   Retries count in adm(p): the floor is that of the calls the run needed, faults included.
 *   Correctness (the run exits non-zero unless lost = wrong = 0 and the counts match):
 *   items lost (not final at the end, or missing), items with a wrong final value (a
 *   SUCCEEDED item whose entity at the sandbox is not what was requested, a FAILED one
 *   without Amazon's code and message, any other final status), job counts against the
 *   items' statuses, and items re-sent to Amazon after a crash:
 *     Σ over the file's entities max(0, applications − unanswered applications − 1)
 *   from the sandbox's per-entity mutation counts, where an unanswered application is one
 *   made by a call the sandbox held until the caller had given up (`unansweredMutations`):
 *   a timed-out call is retried and its second application is explained by the fault;
 *   what is left was applied, then applied again because the worker died before recording
 *   it (or, in the rare case of a kill during a held call, is counted as a timeout).
 *   `ADFLEET_BENCH_BULK_LOGS=<file>` writes the workers' logs for finding where time went,
 *   and `<file>.arrivals.json` the slowest profile's calls as the sandbox saw them (the
 *   fairness case's two workers log to `<file>.fairness-1` and `-2`).
 *
 *   fairness                a 10,000-item job on one profile submitted together with a
 *                           500-item job over 50 other profiles, against the small job
 *                           alone; two bulk-item worker processes, an in-process sandbox
 *                           with 5 requests/s per profile, 100 items per batch;
 *                           ADFLEET_BENCH_BULK_ROUNDS rounds (default 3), each round's
 *                           slowdown and the median. Target: the small job finishes within
 *                           1.5× its time alone.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, openSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../contract/config.ts';
import { resourceNames } from '../contract/topology.ts';
import { loadJob } from '../domain/bulk/jobs.ts';
import { TERMINAL_JOB_STATUSES } from '../domain/bulk/status.ts';
import { submitBulkFile } from '../domain/bulk/submit.ts';
import { STRANDED_AFTER_MS } from '../domain/bulk/sweep.ts';
import { type AdsSandbox, startAdsSandbox } from '../sandbox/ads-api/server.ts';
import type { Arrival } from '../sandbox/ads-api/stats.ts';
import { marketplaceOf } from '../shared/ads/marketplaces.ts';
import type { Keyword } from '../shared/ads/types.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { createPool, databaseUrlFor, migrate, runAdminStatement } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { createTestDatabase, ensureTemplate } from '../test/support/database.ts';
import { workerEnv } from '../test/support/env.ts';
import { type NodeProcess, spawnNode } from '../test/support/processes.ts';
import { createTestTopology } from '../test/support/topology.ts';
import { benchEnv, median, printTable } from './support.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SUBMIT_ROWS = 1_000_000;
const FAIRNESS_ROUNDS = Number(process.env.ADFLEET_BENCH_BULK_ROUNDS ?? 3);

async function freshDatabase(url: string, label: string) {
  const name = `adfleet_bench_${label}_${randomBytes(4).toString('hex')}`;
  await runAdminStatement(url, `CREATE DATABASE ${name}`);
  const databaseUrl = databaseUrlFor(url, name);
  await migrate(databaseUrl);
  return {
    url: databaseUrl,
    drop: () => runAdminStatement(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function writeRows(path: string, rows: number) {
  const out = createWriteStream(path);
  out.write('profile_id,entity_type,entity_id,bid,budget,state\n');
  for (let i = 0; i < rows; i += 1) {
    const line = `${1_000_000_000_000 + (i % 1_000)},keyword,${5_000_000_000_000 + i},${(1 + (i % 300) / 100).toFixed(2)},,${i % 10 === 0 ? 'PAUSED' : ''}\n`;
    if (!out.write(line)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
}

function runChild(script: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, script), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${script} exited ${code}`)),
    );
  });
}

async function benchSubmit(env: Record<string, string>) {
  const database = await freshDatabase(env.DATABASE_URL as string, 'submit');
  const file = join(tmpdir(), `adfleet-bench-bulk-${process.pid}.csv`);
  try {
    await writeRows(file, SUBMIT_ROWS);
    const result = JSON.parse(await runChild('bench/bulk-submit-child.ts', [database.url, file])) as {
      rows: number;
      ms: number;
      peakRssMiB: number;
    };
    const rate = result.rows / (result.ms / 1000);
    printTable('bulk submit of a 1,000,000-row CSV (one process: parse, check, COPY, commit)', [
      ['rows', 'seconds', 'rows/s', 'target', 'peak RSS', 'target'],
      [
        result.rows.toLocaleString('en-US'),
        (result.ms / 1000).toFixed(1),
        Math.round(rate).toLocaleString('en-US'),
        '≥ 50,000',
        `${result.peakRssMiB.toFixed(0)} MiB`,
        '< 256 MiB',
      ],
    ]);
  } finally {
    await unlink(file).catch(() => {});
    await database.drop();
  }
}

async function benchFairness(env: Record<string, string>) {
  const database = await freshDatabase(env.DATABASE_URL as string, 'fair');
  const sandbox = await startAdsSandbox({
    sizes: { profiles: 51, campaignsPerProfile: 2, adGroupsPerCampaign: 5, keywordsPerAdGroup: 1_000 },
    profileCapacity: { ratePerSecond: 5, burst: 5 },
  });
  const prefix = `bench-bulk-${randomBytes(3).toString('hex')}`;
  const names = resourceNames(prefix);
  const config = {
    ...env,
    ADFLEET_RESOURCE_PREFIX: prefix,
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
  };
  const clients = createAwsClients({
    AWS_REGION: env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL: env.AWS_ENDPOINT_URL,
  });
  await bootstrapTopology(clients, names);
  const { messenger } = createMessenger(clients, { ADFLEET_RESOURCE_PREFIX: prefix });
  const pool = createPool(database.url, { max: 4 });
  // ADFLEET_BENCH_BULK_LOGS=<file>: each worker's log in <file>.fairness-<n>, at info.
  const logFile = process.env.ADFLEET_BENCH_BULK_LOGS;
  const workers = [1, 2].map((n) => {
    const out = logFile === undefined ? undefined : openSync(`${logFile}.fairness-${n}`, 'w');
    const worker = spawn(process.execPath, [join(ROOT, 'workers/bulk-item/main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...config,
        LOG_LEVEL: logFile === undefined ? 'warn' : 'info',
        OTEL_SDK_DISABLED: 'true',
        ADFLEET_POLL_WAIT_SECONDS: '1',
        ADFLEET_CONCURRENCY: '20',
        ADFLEET_BULK_BATCH_SIZE: '100',
      },
      stdio: out === undefined ? 'ignore' : ['ignore', out, 'ignore'],
    });
    // The child has its own copy of the log file's descriptor.
    if (out !== undefined) closeSync(out);
    return worker;
  });
  const [bigProfile, ...others] = sandbox.admin.profileIds() as [number, ...number[]];
  const jobFile = async (name: string, rows: string[]) => {
    const path = join(tmpdir(), `adfleet-bench-${name}-${process.pid}.csv`);
    const out = createWriteStream(path);
    out.write(`profile_id,entity_type,entity_id,bid,budget,state\n${rows.join('\n')}\n`);
    await new Promise((resolve) => out.end(resolve));
    return path;
  };
  // Keyword ids follow the sandbox's seeding scheme (sandbox/ads-api/data.ts).
  const keywordId = (profileIndex: number, n: number) =>
    String(
      5_000_000_000_000 +
        profileIndex * 100_000_000 +
        Math.floor(n / 5_000) * 100_000 +
        Math.floor((n % 5_000) / 1_000) * 1_000 +
        (n % 1_000),
    );
  const bigRows = Array.from(
    { length: 10_000 },
    (_, n) => `${bigProfile},keyword,${keywordId(0, n)},${(0.5 + (n % 50) / 100).toFixed(2)},,`,
  );
  const smallRows = (salt: number) =>
    others
      .slice(0, 50)
      .flatMap((profileId, p) =>
        Array.from(
          { length: 10 },
          (_, n) => `${profileId},keyword,${keywordId(p + 1, n + salt * 10)},${(0.6 + n / 100).toFixed(2)},,`,
        ),
      );
  const run = async (paths: string[]) => {
    const ids: string[] = [];
    for (const path of paths) {
      const result = await submitBulkFile(pool, { path, submittedBy: 'bench' });
      if (!result.ok) throw new Error(JSON.stringify(result.errors.slice(0, 3)));
      ids.push(result.jobId as string);
      await messenger.publish('BulkJobSubmitted', { jobId: result.jobId as string });
    }
    const times: number[] = [];
    for (const id of ids) {
      for (;;) {
        const job = await loadJob(pool, id);
        if (job !== undefined && TERMINAL_JOB_STATUSES.includes(job.status) && job.finishedAt !== null) {
          times.push((job.finishedAt.getTime() - job.createdAt.getTime()) / 1000);
          break;
        }
        await sleep(200);
      }
    }
    return times;
  };
  try {
    await sleep(8_000); // the workers start
    // A first job warms what every job after it finds ready (LWA token, the profiles' shared
    // rates, connections): it is not measured.
    await run([await jobFile('warm-up', smallRows(2))]);
    const rounds: { alone: number; together: number; big: number }[] = [];
    for (let round = 0; round < FAIRNESS_ROUNDS; round += 1) {
      const [alone] = await run([await jobFile(`small-a${round}`, smallRows(3 + 2 * round))]);
      const [big, together] = await run([
        await jobFile(`big${round}`, bigRows),
        await jobFile(`small-b${round}`, smallRows(4 + 2 * round)),
      ]);
      rounds.push({ alone: alone as number, together: together as number, big: big as number });
    }
    const slowdowns = rounds.map((r) => r.together / r.alone);
    printTable(
      `fairness: 500 items over 50 profiles, alone and next to 10,000 items on one profile (${FAIRNESS_ROUNDS} rounds)`,
      [
        ['round', 'small alone', 'small next to big', 'slowdown', 'target', 'big job'],
        ...rounds.map((r, i) => [
          String(i + 1),
          `${r.alone.toFixed(1)} s`,
          `${r.together.toFixed(1)} s`,
          `${(slowdowns[i] as number).toFixed(2)}×`,
          '≤ 1.5×',
          `${r.big.toFixed(1)} s`,
        ]),
        ['median', '', '', `${median(slowdowns).toFixed(2)}×`, '≤ 1.5×', ''],
      ],
    );
  } finally {
    for (const worker of workers) worker.kill('SIGTERM');
    await pool.end();
    await sandbox.close();
    clients.destroy();
    await database.drop();
  }
}

// ---------------------------------------------------------------------------------------
// The 50,000-item run (see the header).

const SCALE = {
  items: Number(process.env.ADFLEET_BENCH_BULK_ITEMS ?? 50_000),
  profiles: Number(process.env.ADFLEET_BENCH_BULK_PROFILES ?? 500),
  kills: Number(process.env.ADFLEET_BENCH_BULK_KILLS ?? 3),
  workers: 4,
  batchSize: 100,
  /** Every tenth row is one Amazon refuses. */
  invalidEvery: 10,
  /** A campaign budget change on every fifth profile, the rest keyword bid/state changes. */
  campaignEvery: 5,
  faults: { errorRate: 0.03, status: 503, slowRate: 0.02, slowMs: 12_000 },
  clientCapacity: { ratePerSecond: 2_000, burst: 2_000 },
  deadlineMs: 30 * 60_000,
} as const;

/** Hidden capacity of the profile of rank `rank` (0 = the most items): 1, 2 or 4 requests/s. */
function hiddenCapacity(rank: number): { ratePerSecond: number; burst: number } {
  const rate = [1, 2, 4][rank % 3] as number;
  return { ratePerSecond: rate, burst: rate };
}

/** Zipf (s = 1) over the profiles, every profile at least 5 items, summing to `total`. */
function itemsPerProfile(total: number, profiles: number): number[] {
  const weights = Array.from({ length: profiles }, (_, rank) => 1 / (rank + 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  const counts = weights.map((w) => Math.max(5, Math.floor((w / sum) * total)));
  let excess = counts.reduce((a, b) => a + b, 0) - total;
  for (let rank = 0; excess !== 0; rank = (rank + 1) % profiles) {
    const step = excess > 0 ? -1 : 1;
    if (step < 0 && (counts[rank] as number) <= 5) continue;
    counts[rank] = (counts[rank] as number) + step;
    excess += step;
  }
  return counts;
}

const COUNTRIES = ['US', 'UK', 'DE', 'JP', 'IN', 'CA', 'FR', 'IT', 'ES', 'AU', 'MX'] as const;

interface ScaleRow {
  readonly profileId: number;
  readonly entityType: 'keyword' | 'campaign';
  readonly entityId: string;
  readonly bid?: number;
  readonly budget?: number;
  readonly state?: 'ENABLED' | 'PAUSED';
  /** Why Amazon refuses it; undefined: a valid change. */
  readonly refusal?: 'archived' | 'unknown id' | 'bid out of range';
}

/** Profiles sized for their items, and the rows: valid changes and ~10 % Amazon refuses. */
function buildScaleRows(admin: AdsSandbox['admin'], counts: readonly number[]) {
  const rows: ScaleRow[] = [];
  const profileIds: number[] = [];
  counts.forEach((count, rank) => {
    const countryCode = COUNTRIES[rank % COUNTRIES.length] as string;
    // Room for the items plus the ~10 % of keywords the seed archives, 5 ad groups a campaign.
    const campaigns = Math.max(2, Math.ceil((count * 1.3) / 5_000));
    const keywordsPerAdGroup = Math.min(1_000, Math.max(10, Math.ceil((count * 1.3) / (campaigns * 5))));
    const profileId = admin.addProfile({
      campaigns,
      adGroupsPerCampaign: 5,
      keywordsPerAdGroup,
      countryCode,
    });
    profileIds.push(profileId);
    const market = marketplaceOf(countryCode);
    const ordinal = profileId - 1_000_000_000_000;
    const live: Keyword[] = [];
    const archived: Keyword[] = [];
    for (let c = 0; c < campaigns; c += 1)
      for (let g = 0; g < 5; g += 1)
        for (let k = 0; k < keywordsPerAdGroup; k += 1) {
          // The sandbox's id scheme (sandbox/ads-api/data.ts).
          const id = 5_000_000_000_000 + ordinal * 100_000_000 + c * 100_000 + g * 1_000 + k;
          const keyword = admin.entity('keyword', id) as Keyword;
          (keyword.state === 'ARCHIVED' ? archived : live).push(keyword);
        }
    let made = 0;
    if (rank % SCALE.campaignEvery === 0) {
      const campaign = Array.from({ length: campaigns }, (_, c) =>
        admin.entity('campaign', 3_000_000_000_000 + ordinal * 100_000 + c),
      ).find((candidate) => candidate !== undefined && candidate.state !== 'ARCHIVED');
      if (campaign !== undefined) {
        rows.push({
          profileId,
          entityType: 'campaign',
          entityId: campaign.campaignId,
          budget: Number((market.dailyBudget.min * (20 + (rank % 30))).toFixed(2)),
        });
        made += 1;
      }
    }
    let nextLive = 0;
    let nextArchived = 0;
    for (; made < count; made += 1) {
      if (made % SCALE.invalidEvery === SCALE.invalidEvery - 1) {
        const kind = Math.floor(made / SCALE.invalidEvery) % 3;
        const archivedKeyword = archived[nextArchived];
        if (kind === 0 && archivedKeyword !== undefined) {
          nextArchived += 1;
          rows.push({
            profileId,
            entityType: 'keyword',
            entityId: archivedKeyword.keywordId,
            bid: Number((market.bid.min * 3).toFixed(2)),
            refusal: 'archived',
          });
          continue;
        }
        if (kind === 1 || archivedKeyword === undefined) {
          // In the profile's id range, past every keyword the sandbox generated.
          rows.push({
            profileId,
            entityType: 'keyword',
            entityId: String(5_000_000_000_000 + ordinal * 100_000_000 + 99_000_000 + made),
            bid: Number((market.bid.min * 3).toFixed(2)),
            refusal: 'unknown id',
          });
          continue;
        }
        const keyword = live[nextLive++] as Keyword;
        // Within the widest bounds `bulk submit` checks an unsynced profile against, outside
        // this profile's marketplace: Amazon's validation is the one that refuses it.
        const bid = market.bid.min >= 1 ? 0.5 : Math.min(100_000, market.bid.max * 2);
        rows.push({
          profileId,
          entityType: 'keyword',
          entityId: keyword.keywordId,
          bid,
          refusal: 'bid out of range',
        });
        continue;
      }
      const keyword = live[nextLive++];
      if (keyword === undefined) throw new Error(`profile ${profileId}: not enough live keywords`);
      const bid = Number((market.bid.min * (2 + (made % 50))).toFixed(2));
      const toggle = made % 7 === 0;
      rows.push({
        profileId,
        entityType: 'keyword',
        entityId: keyword.keywordId,
        bid: bid === keyword.bid ? Number((bid + market.bid.min).toFixed(2)) : bid,
        ...(toggle ? { state: keyword.state === 'PAUSED' ? 'ENABLED' : 'PAUSED' } : {}),
      });
    }
  });
  return { rows, profileIds };
}

async function writeScaleCsv(rows: readonly ScaleRow[]): Promise<string> {
  const path = join(tmpdir(), `adfleet-bench-bulk-scale-${process.pid}.csv`);
  const out = createWriteStream(path);
  out.write('profile_id,entity_type,entity_id,bid,budget,state\n');
  for (const row of rows) {
    const line = `${row.profileId},${row.entityType},${row.entityId},${row.bid ?? ''},${row.budget ?? ''},${row.state ?? ''}\n`;
    if (!out.write(line)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  return path;
}

interface FinalItem {
  entity_type: 'keyword' | 'campaign';
  entity_id: string;
  status: string;
  attempts: number;
  error_code: string | null;
  error_message: string | null;
}

async function benchScale(env: Record<string, string>) {
  await ensureTemplate(env.DATABASE_URL as string, (url) => migrate(url));
  const database = await createTestDatabase(env.DATABASE_URL as string);
  const sandbox = await startAdsSandbox({
    sizes: { profiles: 0, campaignsPerProfile: 0, adGroupsPerCampaign: 0, keywordsPerAdGroup: 0 },
    clientCapacity: SCALE.clientCapacity,
  });
  const { admin } = sandbox;
  const counts = itemsPerProfile(SCALE.items, SCALE.profiles);
  const { rows, profileIds } = buildScaleRows(admin, counts);
  const capacityOf = new Map(profileIds.map((id, rank) => [id, hiddenCapacity(rank)]));
  for (const [profileId, spec] of capacityOf) admin.setProfileCapacity(spec, profileId);
  const file = await writeScaleCsv(rows);
  const topology = await createTestTopology('bench-bulk');
  const config = loadConfig({
    ...env,
    ADFLEET_RESOURCE_PREFIX: topology.prefix,
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
  });
  const workerSettings = workerEnv(topology.prefix, {
    DATABASE_URL: database.url,
    ADFLEET_ADS_API_URL: sandbox.url,
    ADFLEET_BULK_BATCH_SIZE: String(SCALE.batchSize),
  });
  const start = () => spawnNode('workers/bulk-item/main.ts', workerSettings);
  const workers: NodeProcess[] = [];
  const retired: NodeProcess[] = [];
  const { messenger } = createMessenger(topology.clients, config);
  try {
    for (let i = 0; i < SCALE.workers; i += 1) workers.push(start());
    await Promise.all(workers.map((w) => w.waitForLog((line) => line.msg === 'worker started', 120_000)));
    // The fewest calls the items take: one per SCALE.batchSize items of one entity type.
    const itemsByCall = new Map<string, number>();
    for (const row of rows) {
      const key = `${row.profileId}:${row.entityType}`;
      itemsByCall.set(key, (itemsByCall.get(key) ?? 0) + 1);
    }
    const callsNeeded = new Map<number, number>();
    for (const [key, n] of itemsByCall) {
      const profileId = Number(key.split(':')[0]);
      callsNeeded.set(profileId, (callsNeeded.get(profileId) ?? 0) + Math.ceil(n / SCALE.batchSize));
    }
    const estimate = Math.max(
      ...profileIds.map((id) => {
        const { ratePerSecond, burst } = capacityOf.get(id) as { ratePerSecond: number; burst: number };
        return Math.max(0, (callsNeeded.get(id) ?? 0) - burst) / ratePerSecond;
      }),
    );
    process.stdout.write(
      `\nbulk run: ${rows.length.toLocaleString('en-US')} items over ${profileIds.length} profiles ` +
        `(${rows.filter((r) => r.refusal !== undefined).length.toLocaleString('en-US')} refused by Amazon's validation), ` +
        `${SCALE.workers} bulk-item processes × ${config.ADFLEET_CONCURRENCY} handlers, ${SCALE.batchSize} items per call, ` +
        `hidden capacity 1/2/4 req/s per profile by rank, faults: ${SCALE.faults.errorRate * 100} % 503, ` +
        `${SCALE.faults.slowRate * 100} % held ${SCALE.faults.slowMs / 1000} s (past the ${config.ADFLEET_ADS_TIMEOUT_MS / 1000} s client timeout); ` +
        `${SCALE.kills} SIGKILLs; capacity floor of the needed calls ≈ ${estimate.toFixed(1)} s\n`,
    );

    const submitted = await submitBulkFile(database.pool, { path: file, submittedBy: 'bench' });
    if (!submitted.ok)
      throw new Error(`submit refused the file: ${JSON.stringify(submitted.errors.slice(0, 3))}`);
    const jobId = submitted.jobId as string;
    admin.reset();
    admin.recordArrivals(true);
    admin.injectFaults(SCALE.faults);
    const startedAt = Date.now();
    await messenger.publish('BulkJobSubmitted', { jobId });

    // Kills at even points of the estimated floor, each of a worker holding leased items.
    const killAt = Array.from(
      { length: SCALE.kills },
      (_, k) => ((k + 1) / (SCALE.kills + 1)) * estimate * 1000,
    );
    const kills: { atMs: number; pid: number; held: number }[] = [];
    // Where the slowest profile's time goes: its calls and its items every 5 s.
    const timeline: string[] = [];
    const first = profileIds[0] as number;
    let sampledAt = 0;
    let job = await loadJob(database.pool, jobId);
    while (job === undefined || !TERMINAL_JOB_STATUSES.includes(job.status) || job.finishedAt === null) {
      if (Date.now() - startedAt > SCALE.deadlineMs)
        throw new Error(
          `the bulk job did not end within ${SCALE.deadlineMs / 1000} s: ${JSON.stringify(job?.counts)}`,
        );
      const due = killAt[kills.length];
      if (due !== undefined && Date.now() - startedAt >= due) {
        const { rows: holders } = await database.pool.query<{ pid: number; held: number }>(
          `SELECT split_part(lease_owner, ':', 2)::int AS pid, count(*)::int AS held FROM bulk_items
            WHERE status = 'RUNNING' AND lease_expires_at > now() GROUP BY 1 ORDER BY 2 DESC`,
        );
        const victim = workers.find((w) => w.child.pid === holders[0]?.pid);
        if (victim !== undefined) {
          victim.child.kill('SIGKILL');
          await victim.exited;
          kills.push({
            atMs: Date.now() - startedAt,
            pid: victim.child.pid as number,
            held: holders[0]?.held ?? 0,
          });
          workers.splice(workers.indexOf(victim), 1);
          retired.push(victim);
          workers.push(start());
        }
      }
      if (Date.now() - sampledAt >= 5_000) {
        sampledAt = Date.now();
        const c = admin.stats().profiles[String(first)] ?? { requests: 0, throttled: 0, failed: 0 };
        const { rows: statuses } = await database.pool.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int AS n FROM bulk_items WHERE job_id = $1 AND profile_id = $2 GROUP BY 1 ORDER BY 1',
          [jobId, first],
        );
        timeline.push(
          `  ${((sampledAt - startedAt) / 1000).toFixed(0).padStart(4)} s  calls ${c.requests} (429 ${c.throttled}, 5xx ${c.failed})  ` +
            statuses.map((row) => `${row.status} ${row.n}`).join(', '),
        );
      }
      await sleep(100);
      job = await loadJob(database.pool, jobId);
    }
    if (process.env.ADFLEET_BENCH_BULK_TIMELINE === '1')
      process.stdout.write(`the slowest profile (${first}), every 5 s:\n${timeline.join('\n')}\n`);
    const wallMs = job.finishedAt.getTime() - startedAt;
    const stats = admin.stats();
    const mutations = admin.mutations();
    const unanswered = admin.unansweredMutations();
    admin.injectFaults({});

    // The floor (see the header): calls each profile's bucket admitted.
    const admitted = (profileId: number) => {
      const c = stats.profiles[String(profileId)];
      return c === undefined ? 0 : c.requests - c.throttled;
    };
    const profileFloorMs = (profileId: number) => {
      const { ratePerSecond, burst } = capacityOf.get(profileId) as { ratePerSecond: number; burst: number };
      return (Math.max(0, admitted(profileId) - burst) / ratePerSecond) * 1000;
    };
    const totalAdmitted = profileIds.reduce((sum, id) => sum + admitted(id), 0);
    const binding = profileIds.reduce((a, b) => (profileFloorMs(b) > profileFloorMs(a) ? b : a));
    const clientFloorMs =
      (Math.max(0, totalAdmitted - SCALE.clientCapacity.burst) / SCALE.clientCapacity.ratePerSecond) * 1000;
    const floorMs = Math.max(profileFloorMs(binding), clientFloorMs);
    const share = floorMs / wallMs;

    // Correctness: every row's item, its final status and the sandbox's final state.
    const { rows: items } = await database.pool.query<FinalItem>(
      'SELECT entity_type, entity_id, status, attempts, error_code, error_message FROM bulk_items WHERE job_id = $1',
      [jobId],
    );
    const byEntity = new Map(items.map((item) => [`${item.entity_type}:${item.entity_id}`, item]));
    let lost = 0;
    let wrong = 0;
    const wrongExamples: string[] = [];
    let refusedAsExpected = 0;
    let validFailed = 0;
    let resentAfterCrash = 0;
    let entitiesResent = 0;
    let unansweredApplies = 0;
    let appliedTwice = 0;
    const terminal = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
    for (const row of rows) {
      const item = byEntity.get(`${row.entityType}:${row.entityId}`);
      if (item === undefined || !terminal.has(item.status)) {
        lost += 1;
        continue;
      }
      const kind = row.entityType === 'keyword' ? 'keywords' : 'campaigns';
      const applied = mutations[kind][row.entityId] ?? 0;
      const late = unanswered[kind][row.entityId] ?? 0;
      unansweredApplies += late;
      appliedTwice += Math.max(0, applied - 1);
      const extra = Math.max(0, applied - late - 1);
      resentAfterCrash += extra;
      if (extra > 0) entitiesResent += 1;
      const miss = (why: string) => {
        wrong += 1;
        if (wrongExamples.length < 5) wrongExamples.push(`${row.entityType} ${row.entityId}: ${why}`);
      };
      if (item.status === 'SUCCEEDED') {
        if (row.refusal !== undefined) miss(`succeeded, but Amazon refuses it (${row.refusal})`);
        else if (row.entityType === 'keyword') {
          const now = admin.entity('keyword', Number(row.entityId));
          if (now?.bid !== row.bid || (row.state !== undefined && now?.state !== row.state))
            miss(`sandbox has bid ${now?.bid} ${now?.state}, requested ${row.bid} ${row.state ?? ''}`);
        } else {
          const now = admin.entity('campaign', Number(row.entityId));
          if (now?.budget.budget !== row.budget)
            miss(`sandbox has budget ${now?.budget.budget}, requested ${row.budget}`);
        }
      } else if (item.status === 'FAILED') {
        if (item.error_code === null || item.error_message === null)
          miss('FAILED without a code and message');
        else if (row.refusal !== undefined) refusedAsExpected += 1;
        else validFailed += 1;
      } else miss(`${item.status} (${item.error_code}) in a job nobody cancelled or superseded`);
    }
    lost += Math.max(0, items.length - rows.length);
    const { rows: statusCounts } = await database.pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM bulk_items WHERE job_id = $1 GROUP BY status',
      [jobId],
    );
    const actual = Object.fromEntries(statusCounts.map((r) => [r.status.toLowerCase(), r.n]));
    const { total, ...perStatus } = job.counts;
    const countsMatch =
      total === items.length && Object.entries(perStatus).every(([status, n]) => n === (actual[status] ?? 0));
    const logs = [...workers, ...retired].flatMap((w) => w.logs);
    // The workers' own account, for finding where the time went.
    const logFile = process.env.ADFLEET_BENCH_BULK_LOGS;
    if (logFile !== undefined) {
      await writeFile(logFile, `${logs.map((l) => JSON.stringify({ ...l, startedAt })).join('\n')}\n`);
      // The slowest profile's calls as the sandbox saw them, ms into the run.
      const arrivals = admin.arrivals(binding).map((a) => ({ ...a, at: a.at - startedAt }));
      await writeFile(`${logFile}.arrivals.json`, `${JSON.stringify(arrivals)}\n`);
    }
    const sum = (msg: string, field: string) =>
      logs.filter((l) => l.msg === msg).reduce((n, l) => n + Number(l[field] ?? 0), 0);
    const deferrals = logs.filter((l) => l.msg === 'throttled: deferred').length;
    const recovered = sum('bulk sweep', 'recovered');
    const resent = sum('bulk sweep', 'resent');
    const stranded = sum('bulk sweep', 'stranded');
    const resumed = sum('bulk sweep', 'resumed');
    const bindingIndex = profileIds.indexOf(binding);
    const neededCalls = [...callsNeeded.values()].reduce((n, calls) => n + calls, 0);

    printTable(`bulk run: ${rows.length.toLocaleString('en-US')} items over ${profileIds.length} profiles`, [
      [
        'wall',
        'items/s',
        'capacity floor',
        'share (floor / wall)',
        'target',
        'calls (admitted / needed)',
        '429s',
        'deferrals',
      ],
      [
        `${(wallMs / 1000).toFixed(1)} s`,
        (rows.length / (wallMs / 1000)).toFixed(0),
        `${(floorMs / 1000).toFixed(1)} s`,
        share.toFixed(2),
        '≥ 0.9',
        `${totalAdmitted.toLocaleString('en-US')} / ${neededCalls.toLocaleString('en-US')}`,
        `${stats.totals.throttled.toLocaleString('en-US')} of ${stats.totals.requests.toLocaleString('en-US')}`,
        deferrals.toLocaleString('en-US'),
      ],
    ]);
    const bindingCap = capacityOf.get(binding) as { ratePerSecond: number; burst: number };
    process.stdout.write(
      `  floor = max(slowest profile: ${binding} (${counts[bindingIndex]} items, ${bindingCap.ratePerSecond} req/s, burst ${bindingCap.burst}) ` +
        `(${admitted(binding)} admitted − ${bindingCap.burst}) / ${bindingCap.ratePerSecond} = ${(profileFloorMs(binding) / 1000).toFixed(1)} s, ` +
        `client (${totalAdmitted} − ${SCALE.clientCapacity.burst}) / ${SCALE.clientCapacity.ratePerSecond} = ${(clientFloorMs / 1000).toFixed(1)} s)\n`,
    );
    process.stdout.write(
      `  ${describeLostTime(admin.arrivals(binding), bindingCap, startedAt, job.finishedAt.getTime(), kills)}\n`,
    );
    printTable('correctness', [
      [
        'items lost',
        'wrong final value',
        're-sent after a crash',
        'applied more than once',
        'job counts = item statuses',
        'kills',
      ],
      [
        String(lost),
        String(wrong),
        `${resentAfterCrash} (${entitiesResent} entities)`,
        String(appliedTwice),
        countsMatch ? 'yes' : `no: job ${JSON.stringify(job.counts)}, items ${JSON.stringify(actual)}`,
        kills.map((k) => `${(k.atMs / 1000).toFixed(1)} s (${k.held} held)`).join(', '),
      ],
    ]);
    process.stdout.write(
      `  ${job.status}: ${job.counts.succeeded} succeeded, ${job.counts.failed} failed (${refusedAsExpected} refused by Amazon as expected, ` +
        `${validFailed} valid changes given up after retries), ${job.counts.cancelled} cancelled; ` +
        `${recovered} items recovered from expired leases, ${resent} re-sent as overdue, ${stranded} stranded profiles (items due ${STRANDED_AFTER_MS / 1000} s, no claim) sent again, ${resumed} profiles resumed after their claims went stale (sweepers' logs)\n` +
        `  re-sent after a crash = Σ over entities max(0, applications − applications its caller timed out on − 1), ` +
        `from the sandbox's per-entity mutation counts (${unansweredApplies} applications were answered to nobody: held past the client's timeout); ` +
        `applied more than once = Σ over entities max(0, applications − 1), those included\n`,
    );
    for (const example of wrongExamples) process.stdout.write(`  wrong: ${example}\n`);
    if (lost > 0 || wrong > 0 || !countsMatch)
      throw new Error('the bulk run lost items or left wrong values (see the correctness table)');
  } finally {
    await Promise.all(workers.map((w) => w.stop('SIGTERM')));
    await unlink(file).catch(() => {});
    await sandbox.close();
    await topology.destroy();
    await database.drop();
  }
}

/**
 * Where the slowest profile's time went beyond its floor: wall − floor is the wait before
 * its first admitted call, the time after its last one, and each gap between two admitted
 * calls longer than one call interval — counted as a 429's if a 429 arrived in it (its
 * Retry-After pause), else as no call sent (nothing ready, or the fleet holding back).
 * Exact for a bucket of one; a larger bucket's burst makes the first gaps shorter than an
 * interval, which counts as none.
 */
function describeLostTime(
  arrivals: readonly Arrival[],
  capacity: { ratePerSecond: number; burst: number },
  startedAt: number,
  finishedAt: number,
  kills: readonly { atMs: number }[],
): string {
  const admitted = arrivals.filter((a) => a.outcome !== 'throttled').map((a) => a.at);
  const first = admitted[0];
  const last = admitted.at(-1);
  if (first === undefined || last === undefined) return 'the slowest profile: no admitted call recorded';
  const interval = 1000 / capacity.ratePerSecond;
  let after429 = 0;
  let gaps429 = 0;
  let idle = 0;
  const idleGaps: Array<{ at: number; excess: number }> = [];
  let next429 = 0;
  const throttled = arrivals.filter((a) => a.outcome === 'throttled').map((a) => a.at);
  for (let index = 1; index < admitted.length; index += 1) {
    const from = admitted[index - 1] as number;
    const to = admitted[index] as number;
    const excess = to - from - interval;
    let saw429 = false;
    while (next429 < throttled.length && (throttled[next429] as number) < to) {
      if ((throttled[next429] as number) > from) saw429 = true;
      next429 += 1;
    }
    if (excess <= 0) continue;
    if (saw429) {
      after429 += excess;
      gaps429 += 1;
    } else {
      idle += excess;
      idleGaps.push({ at: from - startedAt, excess });
    }
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const spacings = admitted
    .slice(1)
    .map((at, index) => at - (admitted[index] as number))
    .sort((a, b) => a - b);
  const spacingAt = (q: number) =>
    `${((spacings[Math.floor(q * (spacings.length - 1))] ?? 0) / 1000).toFixed(2)}`;
  const largest = idleGaps
    .sort((a, b) => b.excess - a.excess)
    .slice(0, 5)
    .map((gap) => `${s(gap.excess)} at ${s(gap.at)}`)
    .join(', ');
  return (
    `the slowest profile's time beyond its floor: ${s(first - startedAt)} before its first admitted call, ` +
    `${s(finishedAt - last)} after its last, ${s(after429)} in ${gaps429} gaps with a 429 (${throttled.length} 429s), ` +
    `${s(idle)} in ${idleGaps.length} gaps with no call sent (largest: ${largest || 'none'}; kills at ${kills.map((k) => s(k.atMs)).join(', ') || 'none'}); ` +
    `spacing of its admitted calls p10 ${spacingAt(0.1)} s, median ${spacingAt(0.5)} s, p90 ${spacingAt(0.9)} s; ` +
    `429s at ${describe429s(arrivals, startedAt) || 'none'}`
  );
}

/**
 * Each 429's time into the run and, in brackets, how long after the call before it (any
 * answer) it arrived: a 429 about one interval after its predecessor is the jitter of calls
 * at the limit; a much shorter one is a call that left without waiting its turn.
 */
function describe429s(arrivals: readonly Arrival[], startedAt: number): string {
  return arrivals
    .flatMap((arrival, index) => {
      if (arrival.outcome !== 'throttled') return [];
      const before = arrivals[index - 1];
      const after = before === undefined ? '' : ` (${((arrival.at - before.at) / 1000).toFixed(2)} s)`;
      return [`${((arrival.at - startedAt) / 1000).toFixed(1)} s${after}`];
    })
    .join(', ');
}

/** `ADFLEET_BENCH_BULK=submit`, `=run` or `=fairness` runs one part only. */
export async function runBulkBench() {
  const env = benchEnv();
  const only = process.env.ADFLEET_BENCH_BULK;
  if (only === undefined || only === 'submit') await benchSubmit(env);
  if (only === undefined || only === 'run') await benchScale(env);
  if (only === undefined || only === 'fairness') await benchFairness(env);
}
