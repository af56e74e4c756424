/**
 * Backfill benchmark: 1,000,000 campaigns, campaign-currency.
 *
 *   naive        one `UPDATE campaigns … FROM profiles` over every row, in one transaction,
 *                with the same transform
 *   backfill xN  the backfill-chunk worker (child process) through SQS, default settings,
 *                N chains (--parallel N)
 *   1 core busy  no database work: a spin loop holds one core for as long as backfill x1
 *                took — the floor this 2-core machine sets for any work that takes a core
 *
 * Each runs on an identical copy of the seeded database (CREATE DATABASE … TEMPLATE), while
 * a "production" mix runs against it at a fixed pace: campaign list by profile, campaign
 * by id, and a budget update by id (10%). Reported: throughput as a share of the naive
 * UPDATE's, and the mix's p99 latency relative to its idle baseline, side by side.
 * Targets: backfill ≥ 0.5 × naive throughput; production p99 ≤ 1.5 × idle baseline.
 *
 * This machine is shared: its idle p99 alone wanders by 2× from one minute to the next.
 * So the idle baseline is not a stretch measured before the run but interleaved with it:
 * the backfill is paused and resumed every WINDOW_MS (the spin loop stopped and continued
 * with SIGSTOP/SIGCONT), and each query counts as idle or loaded by the window it started
 * in. Both percentiles then see the same neighbours. The naive UPDATE cannot be paused: its
 * baseline is the stretch before it. Throughput counts the backfill's running time only.
 *
 * `node bench/backfill.ts` with .stack/env loaded (or via `npm run bench`).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../contract/config.ts';
import { resourceNames } from '../contract/topology.ts';
import { MARKETPLACE_CURRENCY } from '../domain/backfill/backfills/campaign-currency.ts';
import { loadJob } from '../domain/backfill/jobs.ts';
import { pauseBackfill, resumeBackfill, startBackfill } from '../domain/backfill/lifecycle.ts';
import { BACKFILLS } from '../domain/backfill/registry.ts';
import {
  SEED_CAMPAIGN_ID_BASE,
  SEED_PROFILE_ID_BASE,
  seedCampaigns,
} from '../scripts/fixtures/seed-campaigns.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { createPool, databaseUrlFor, migrate, runAdminStatement } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { benchEnv, median, percentile } from './support.ts';

const ROWS = 1_000_000;
const PROFILES = 10_000;
const TEMPLATE = 'adfleet_bench_backfill_template';
/** The naive UPDATE's idle baseline, before it. */
const IDLE_SECONDS = 20;
/** Backfill and spin loop: loaded and idle windows alternate at this length. */
const WINDOW_MS = 4_000;
/** The start of each window, left out of both percentiles while the load starts or stops. */
const GUARD_MS = 250;
/** Production clients, each issuing one query every PACE_MS. */
const CLIENTS = 4;
const PACE_MS = 10;
const PREFIX = 'adfleet-bench-bf';
/** Chain counts to measure: one chain, and one per core of this 2-core machine. */
const PARALLEL_RUNS = [1, 2] as const;

function log(message: string) {
  process.stdout.write(`bench backfill: ${message}\n`);
}

async function prepareTemplate(base: string) {
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
  await runAdminStatement(base, `CREATE DATABASE ${TEMPLATE}`);
  const url = databaseUrlFor(base, TEMPLATE);
  await migrate(url);
  const pool = createPool(url, { max: 1 });
  const started = performance.now();
  await seedCampaigns(pool, { profiles: PROFILES, campaigns: ROWS });
  await pool.query('VACUUM ANALYZE campaigns');
  await pool.end();
  log(
    `seeded ${ROWS.toLocaleString('en-US')} campaigns in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

async function freshCopy(base: string, name: string): Promise<string> {
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await runAdminStatement(base, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
  return databaseUrlFor(base, name);
}

/** One production query: when it was due (performance.now()) and how long it took, ms. */
interface Sample {
  readonly at: number;
  readonly ms: number;
}

/** The production mix at a fixed pace until stopped; returns every query's sample. */
function productionMix(url: string) {
  const samples: Sample[] = [];
  let running = true;
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  const clients = Array.from({ length: CLIENTS }, async (_, index) => {
    const client = new pg.Client({ connectionString: url, application_name: 'bench-production' });
    await client.connect();
    // Open loop at a fixed pace, the clients evenly staggered (one query every
    // PACE_MS / CLIENTS overall, not CLIENTS at once). A query's latency counts from its
    // scheduled start when the previous one was still running then: a client held up by
    // the database reports every query it could not send in time (no coordinated
    // omission). A query sent late only because this process's timer fired late counts
    // from when it was sent: that delay belongs to the load generator, not the database.
    await sleep((index * PACE_MS) / CLIENTS);
    let scheduled = performance.now();
    let previousEnd = 0;
    while (running) {
      const started = previousEnd > scheduled ? scheduled : performance.now();
      scheduled += PACE_MS;
      const pick = random();
      if (pick < 0.5) {
        await client.query(
          'SELECT id, name, state, daily_budget FROM campaigns WHERE profile_id = $1 ORDER BY id LIMIT 20',
          [SEED_PROFILE_ID_BASE + 1 + Math.floor(random() * PROFILES)],
        );
      } else if (pick < 0.9) {
        await client.query('SELECT * FROM campaigns WHERE id = $1', [
          SEED_CAMPAIGN_ID_BASE + 1 + Math.floor(random() * ROWS),
        ]);
      } else {
        await client.query('UPDATE campaigns SET daily_budget = daily_budget + 0.01 WHERE id = $1', [
          SEED_CAMPAIGN_ID_BASE + 1 + Math.floor(random() * ROWS),
        ]);
      }
      previousEnd = performance.now();
      samples.push({ at: started, ms: previousEnd - started });
      const wait = scheduled - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await client.end();
  });
  return {
    async stop(): Promise<Sample[]> {
      running = false;
      await Promise.all(clients);
      return samples;
    },
  };
}

/**
 * When the load under test ran ('loaded') and when it was stopped ('idle'). A query counts
 * in the window it was due in; the first GUARD_MS of each window count in neither, as the
 * load starts or stops.
 */
class Timeline {
  private readonly windows: Array<{ from: number; to: number; loaded: boolean }> = [];

  mark(loaded: boolean) {
    const now = performance.now();
    const last = this.windows.at(-1);
    if (last !== undefined) last.to = now;
    this.windows.push({ from: now, to: Number.POSITIVE_INFINITY, loaded });
  }

  /** Seconds the load ran. */
  loadedSeconds(): number {
    const end = performance.now();
    return this.windows
      .filter((window) => window.loaded)
      .reduce((sum, window) => sum + (Math.min(window.to, end) - window.from) / 1000, 0);
  }

  split(samples: readonly Sample[]): { idle: number[]; during: number[] } {
    const idle: number[] = [];
    const during: number[] = [];
    for (const sample of samples) {
      const window = this.windows.find((w) => sample.at >= w.from && sample.at < w.to);
      if (window === undefined || sample.at < window.from + GUARD_MS) continue;
      (window.loaded ? during : idle).push(sample.ms);
    }
    return { idle, during };
  }
}

interface Run {
  readonly seconds: number;
  readonly idle: number[];
  readonly during: number[];
}

async function runNaive(url: string): Promise<Run> {
  const timeline = new Timeline();
  const mix = productionMix(url);
  timeline.mark(false);
  await sleep(IDLE_SECONDS * 1000);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  timeline.mark(true);
  // The same transform as the backfill's (marketplace currency, else the profile's), in one statement.
  await client.query(
    `UPDATE campaigns c
        SET currency_code = coalesce(($2::text[])[array_position($1::text[], p.marketplace)], p.currency_code)
       FROM profiles p WHERE p.id = c.profile_id`,
    [Object.keys(MARKETPLACE_CURRENCY), Object.values(MARKETPLACE_CURRENCY)],
  );
  timeline.mark(false);
  const seconds = timeline.loadedSeconds();
  await client.end();
  await sleep(500);
  return { seconds, ...timeline.split(await mix.stop()) };
}

/**
 * The machine's own floor: the mix while a process outside the database keeps one core
 * busy (a spin loop), in the same windows and for as long as backfill x1 ran. On a 2-core
 * machine, whatever holds one core — a backfill's database session included — costs
 * production at least this much, whatever the throttle does.
 */
async function runCoreBusy(url: string, seconds: number): Promise<Run> {
  const spinner = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  spinner.kill('SIGSTOP');
  const timeline = new Timeline();
  const mix = productionMix(url);
  try {
    timeline.mark(false);
    await sleep(WINDOW_MS);
    while (timeline.loadedSeconds() < seconds) {
      spinner.kill('SIGCONT');
      timeline.mark(true);
      await sleep(Math.min(WINDOW_MS, (seconds - timeline.loadedSeconds()) * 1000));
      spinner.kill('SIGSTOP');
      timeline.mark(false);
      await sleep(WINDOW_MS);
    }
    return { seconds: timeline.loadedSeconds(), ...timeline.split(await mix.stop()) };
  } finally {
    spinner.kill('SIGKILL');
  }
}

async function runBackfill(url: string, env: NodeJS.ProcessEnv, parallel: number): Promise<Run> {
  const config = loadConfig({ ...env, DATABASE_URL: url, ADFLEET_RESOURCE_PREFIX: PREFIX });
  const clients = createAwsClients(config);
  await bootstrapTopology(clients, resourceNames(PREFIX));
  const { messenger } = createMessenger(clients, config);
  const worker = spawn(
    process.execPath,
    [fileURLToPath(new URL('../workers/backfill-chunk/main.ts', import.meta.url))],
    {
      env: {
        ...env,
        DATABASE_URL: url,
        ADFLEET_RESOURCE_PREFIX: PREFIX,
        OTEL_SDK_DISABLED: 'true',
        LOG_LEVEL: 'warn',
        ADFLEET_POLL_WAIT_SECONDS: '1',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const pool = createPool(url, { max: 2 });
  try {
    // Let the worker and its first long polls settle before the first idle window.
    await sleep(5_000);
    const timeline = new Timeline();
    const mix = productionMix(url);
    timeline.mark(false);
    await sleep(WINDOW_MS);
    timeline.mark(true);
    const { job } = await startBackfill(pool, messenger, BACKFILLS, { name: 'campaign-currency', parallel });
    // The job's status, polled at one steady pace through idle and loaded windows alike, so
    // the polling (in this process, beside the mix) weighs on both percentiles the same.
    let state: string = job.status;
    let polling = true;
    const deadline = Date.now() + 10 * 60_000;
    const poller = (async () => {
      while (polling) {
        const current = await loadJob(pool, job.id);
        state = current?.status ?? 'missing';
        if (Date.now() > deadline) state = 'timed out';
        await sleep(50);
      }
    })();
    const until = async (done: () => boolean, windowEnd = Number.POSITIVE_INFINITY) => {
      while (!done() && performance.now() < windowEnd) {
        if (['failed', 'cancelled', 'missing', 'timed out'].includes(state)) {
          throw new Error(`backfill did not complete: ${state}`);
        }
        await sleep(10);
      }
    };
    try {
      for (;;) {
        await until(() => state === 'completed', performance.now() + WINDOW_MS);
        if (state !== 'completed') {
          await pauseBackfill(pool, job.id);
          await until(() => state === 'paused' || state === 'completed');
        }
        timeline.mark(false);
        await sleep(WINDOW_MS);
        if (state === 'completed') break;
        timeline.mark(true);
        await resumeBackfill(pool, messenger, job.id);
        state = 'running';
      }
    } finally {
      polling = false;
      await poller;
    }
    const { rows } = await pool.query<{ filled: number }>(
      'SELECT count(*)::int AS filled FROM campaigns WHERE currency_code IS NOT NULL',
    );
    if (rows[0]?.filled !== ROWS) throw new Error(`backfill filled ${rows[0]?.filled} of ${ROWS} rows`);
    const samples = await mix.stop();
    return { seconds: timeline.loadedSeconds(), ...timeline.split(samples) };
  } finally {
    worker.kill('SIGTERM');
    await pool.end();
    clients.destroy();
  }
}

/** Rounds of the whole comparison; the table shows medians, the ratio's range beside them. */
function rounds(): number {
  const value = Number(process.env.ADFLEET_BENCH_ROUNDS ?? 1);
  if (!Number.isInteger(value) || value < 1)
    throw new Error('ADFLEET_BENCH_ROUNDS must be a positive integer');
  return value;
}

interface Row {
  readonly seconds: number;
  readonly rowsPerSecond: number;
  readonly idleP99: number;
  readonly p99: number;
  readonly ratio: number;
  readonly max: number;
}

function rowOf(run: Run, rows: number): Row {
  const idleP99 = percentile(run.idle, 99);
  const p99 = percentile(run.during, 99);
  return {
    seconds: run.seconds,
    rowsPerSecond: rows / run.seconds,
    idleP99,
    p99,
    ratio: p99 / idleP99,
    max: Math.max(...run.during),
  };
}

/** One round: naive, each chain count, and the spin loop, each on a fresh copy. */
async function runRound(base: string, env: NodeJS.ProcessEnv, into: Map<string, Row[]>) {
  const record = (name: string, row: Row) => into.set(name, [...(into.get(name) ?? []), row]);
  const copy = 'adfleet_bench_backfill_run';
  log('naive UPDATE …');
  record('naive UPDATE', rowOf(await runNaive(await freshCopy(base, copy)), ROWS));
  let x1Seconds = 10;
  for (const parallel of PARALLEL_RUNS) {
    log(`backfill, ${parallel} chain(s) …`);
    const row = rowOf(await runBackfill(await freshCopy(base, copy), env, parallel), ROWS);
    if (parallel === 1) x1Seconds = Math.max(x1Seconds, row.seconds);
    record(`backfill x${parallel}`, row);
  }
  log('one core busy outside the database …');
  record('1 core busy', rowOf(await runCoreBusy(await freshCopy(base, copy), x1Seconds), 0));
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${copy} WITH (FORCE)`);
}

export async function runBackfillBench(): Promise<void> {
  const env = benchEnv();
  const base = env.DATABASE_URL;
  if (base === undefined) throw new Error('DATABASE_URL is not set: load .stack/env');
  await prepareTemplate(base);
  const total = rounds();
  const results = new Map<string, Row[]>();
  for (let round = 1; round <= total; round += 1) {
    if (total > 1) log(`round ${round} of ${total}`);
    await runRound(base, env, results);
  }
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);

  const summary = [...results].map(([name, runs]) => {
    const of = (pick: (row: Row) => number) => median(runs.map(pick));
    const ratios = runs.map((row) => row.ratio);
    return {
      name,
      seconds: of((row) => row.seconds),
      rowsPerSecond: of((row) => row.rowsPerSecond),
      idleP99: of((row) => row.idleP99),
      p99: of((row) => row.p99),
      ratio: of((row) => row.ratio),
      range: `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`,
      max: Math.max(...runs.map((row) => row.max)),
    };
  });
  const naive = summary.find((row) => row.name === 'naive UPDATE');
  if (naive === undefined) throw new Error('no naive run');
  const pad = (value: string, width: number) => value.padStart(width);
  const count = (value: number) => (value === 0 ? '-' : Math.round(value).toLocaleString('en-US'));
  const lines = [
    '',
    `campaign-currency over ${ROWS.toLocaleString('en-US')} rows; production mix: ${CLIENTS} clients, one query per ${PACE_MS} ms each; ${total === 1 ? 'one round' : `medians of ${total} rounds`}`,
    `${'run'.padEnd(14)}${pad('seconds', 9)}${pad('rows/s', 11)}${pad('idle p99', 11)}${pad('p99 during', 12)}${pad('p99 ratio', 11)}${total > 1 ? pad('range', 16) : ''}${pad('max', 10)}`,
    ...summary.map(
      (r) =>
        `${r.name.padEnd(14)}${pad(r.seconds.toFixed(1), 9)}${pad(count(r.rowsPerSecond), 11)}${pad(`${r.idleP99.toFixed(2)}ms`, 11)}${pad(`${r.p99.toFixed(2)}ms`, 12)}${pad(`${r.ratio.toFixed(2)}x`, 11)}${total > 1 ? pad(r.range, 16) : ''}${pad(`${r.max.toFixed(0)}ms`, 10)}`,
    ),
    '',
    ...summary
      .filter((r) => r.name.startsWith('backfill'))
      .map(
        (r) =>
          `${r.name}: throughput ${(r.rowsPerSecond / naive.rowsPerSecond).toFixed(2)}x naive (target >= 0.50), production p99 ${r.ratio.toFixed(2)}x idle (target <= 1.50)`,
      ),
    `naive UPDATE: production p99 ${naive.ratio.toFixed(2)}x idle`,
    `1 core busy (a spin loop, no database work; seconds = how long): production p99 ${summary.find((r) => r.name === '1 core busy')?.ratio.toFixed(2)}x idle`,
    `(idle and loaded queries interleaved in ${WINDOW_MS / 1000} s windows; seconds and rows/s count loaded time only; the naive UPDATE's idle is the ${IDLE_SECONDS} s before it; ADFLEET_BENCH_ROUNDS=N repeats the comparison)`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runBackfillBench();
  process.exit(0);
}
