/**
 * Backfill benchmark: 1,000,000 campaigns, campaign-currency, with the Postgres server on a
 * core of its own (bench/affinity.ts: taskset) and everything else on the other.
 *
 *   naive            one `UPDATE campaigns … FROM profiles` over every row, in one
 *                    transaction, with the same transform
 *   latency 1.5x     the backfill-chunk worker (child process) through SQS with
 *                    `--max-latency-ratio 1.5`: paced by a production-like probe
 *   health throttle  the same with the default throttle (database health signals)
 *   unthrottled      the same with no throttle at all (health thresholds out of reach)
 *   1 core busy      no database work: a spin loop holds the non-database core for as long
 *                    as the health-throttled backfill took — the floor the pinning leaves
 *   step load        the latency-targeted backfill while the production mix doubles
 *                    mid-run: how long until production's p99 is back under 1.5x idle
 *
 * Each runs on an identical copy of the seeded database (CREATE DATABASE … TEMPLATE, then a
 * CHECKPOINT, so no run pays for the writes of the one before; the backfill variants take
 * turns at running first from round to round), while
 * a "production" mix runs against it at a fixed pace: campaign list by profile, campaign
 * by id, and a budget update by id (10%). Reported: throughput as a share of the naive
 * UPDATE's, and the mix's p99 latency relative to its idle baseline, side by side.
 * Targets: with the latency target, production p99 <= 1.5 x idle in every round, and
 * throughput as high as that allows (aim: >= 0.3 x naive); back under target within 10 s
 * of the step.
 *
 * This machine is shared: its idle p99 alone wanders from one minute to the next. So the
 * idle baseline is not a stretch measured before the run but interleaved with it: the
 * backfill is paused and resumed every WINDOW_MS (the spin loop stopped and continued with
 * SIGSTOP/SIGCONT), and each query counts as idle or loaded by the window it started in.
 * Both percentiles then see the same neighbours. The naive UPDATE cannot be paused: its
 * baseline is the stretch before it. Throughput counts the backfill's running time only.
 *
 * `node bench/backfill.ts` with .stack/env loaded (or via `npm run bench`).
 */
import { fork, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../contract/config.ts';
import { resourceNames } from '../contract/topology.ts';
import { MARKETPLACE_CURRENCY } from '../domain/backfill/backfills/campaign-currency.ts';
import { loadJob } from '../domain/backfill/jobs.ts';
import { DEFAULT_LATENCY_TARGET, type LatencyTargetPolicy } from '../domain/backfill/latency-target.ts';
import {
  cancelBackfill,
  pauseBackfill,
  resumeBackfill,
  type StartRequest,
  startBackfill,
} from '../domain/backfill/lifecycle.ts';
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
import { type Pinning, pinDatabaseToItsOwnCore } from './affinity.ts';
import { epochNow, type MixMessage, type MixSettings } from './production-mix.ts';
import { benchEnv, median, percentile } from './support.ts';

/** Campaigns to backfill: 1,000,000 unless ADFLEET_BENCH_BACKFILL_ROWS says otherwise. */
const ROWS = Number(process.env.ADFLEET_BENCH_BACKFILL_ROWS ?? 1_000_000);
if (!Number.isInteger(ROWS) || ROWS < 1)
  throw new Error('ADFLEET_BENCH_BACKFILL_ROWS must be a positive integer');
const PROFILES = 10_000;
const TEMPLATE = 'adfleet_bench_backfill_template';
/** The naive UPDATE's idle baseline, before it. */
const IDLE_SECONDS = 20;
/** Backfill and spin loop: loaded and idle windows alternate at this length. */
const WINDOW_MS = 4_000;
/** The start of each window, left out of both percentiles while the load starts or stops. */
const GUARD_MS = 250;
/** Production clients, each issuing one query every PACE_MS; the step load doubles them. */
const CLIENTS = 4;
const PACE_MS = 10;
const PREFIX = 'adfleet-bench-bf';
const TARGET_RATIO = 1.5;
/** The spin loop's row with the load generator's thread an ordinary one. */
const BUSY_PLAIN = 'busy, mix nice 0';
/** Step load: idle stretches to measure both mixes, then the run before and after the step. */
const STEP_IDLE_MS = 8_000;
const STEP_BEFORE_MS = 15_000;
const STEP_AFTER_MS = 25_000;
/** Step load: production p99 is judged over windows of this length. */
const STEP_WINDOW_MS = 1_000;
/** Health thresholds no database reaches: the backfill runs flat out. */
const NO_THROTTLE = {
  probeLatencyMs: { slow: 1e9, pause: 1e9 },
  activeConnections: { slow: 1e9, pause: 1e9 },
  replicationLagMs: { slow: 1e9, pause: 1e9 },
} as const;

type BackfillVariant = {
  readonly name: string;
  readonly request: Omit<StartRequest, 'name'>;
  /** Stop (cancel) after this many loaded seconds instead of running to completion. */
  readonly loadedSeconds?: number;
};

/**
 * ADFLEET_BENCH_BACKFILL_LATENCY='{"batchIntervalMs":20}': settings of the latency target's
 * controller (LatencyTargetPolicy) for the latency rows, over its defaults: for trying one.
 */
const LATENCY_SETTINGS = (() => {
  const raw = process.env.ADFLEET_BENCH_BACKFILL_LATENCY;
  if (raw === undefined || raw.trim() === '') return undefined;
  const parsed: unknown = JSON.parse(raw);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error('ADFLEET_BENCH_BACKFILL_LATENCY must be a JSON object of latency target settings');
  return parsed as Partial<LatencyTargetPolicy>;
})();

/** The latency-targeted backfill: its row, and the step load's job. */
const LATENCY_VARIANT: BackfillVariant = {
  name: `latency ${TARGET_RATIO}x`,
  request: {
    maxLatencyRatio: TARGET_RATIO,
    ...(LATENCY_SETTINGS === undefined ? {} : { throttle: { latencyTarget: LATENCY_SETTINGS } }),
  },
};

/**
 * The pace curve: the backfill held at a fixed pace (the health thresholds out of reach,
 * the operator's ceiling at that many rows/s, and batches of the size the latency target
 * asks for at that pace: rows/s x its batchIntervalMs, within 50-1,000), each for
 * FIXED_PACE_SECONDS of loaded time, then cancelled. What production's p99 is at each pace
 * on this machine, in the same run: the fastest pace that holds 1.5x is the most any
 * throttle could reach here, and the measure of the latency target's own pace.
 * ADFLEET_BENCH_BACKFILL_PACES=2500,5000 picks the paces (rows/s).
 */
const FIXED_PACE_SECONDS = 20;
const FIXED_PACES = (() => {
  const raw = process.env.ADFLEET_BENCH_BACKFILL_PACES ?? '2500,5000,10000,20000';
  return raw
    .split(',')
    .filter((part) => part.trim() !== '')
    .map((part, index) => {
      const pace = Number(part);
      if (!Number.isInteger(pace) || pace < 1)
        throw new Error(
          `ADFLEET_BENCH_BACKFILL_PACES: entry ${index + 1} (${JSON.stringify(part)}) is not a positive whole number of rows/s`,
        );
      return pace;
    });
})();

const ALL_VARIANTS: readonly BackfillVariant[] = [
  LATENCY_VARIANT,
  { name: 'health throttle', request: {} },
  { name: 'unthrottled', request: { throttle: NO_THROTTLE } },
  ...FIXED_PACES.map((pace) => ({
    name: `fixed ${pace.toLocaleString('en-US')}/s`,
    request: {
      throttle: NO_THROTTLE,
      maxRate: pace,
      batchSize: Math.min(
        1_000,
        Math.max(
          DEFAULT_LATENCY_TARGET.minBatchSize,
          Math.round((pace * DEFAULT_LATENCY_TARGET.batchIntervalMs) / 1000),
        ),
      ),
    },
    loadedSeconds: FIXED_PACE_SECONDS,
  })),
];

/**
 * ADFLEET_BENCH_BACKFILL_ONLY=latency,step (any of latency, health, unthrottled, fixed, busy, step)
 * runs only those rows, beside the naive UPDATE every ratio needs: for working on one
 * throttle without waiting for the others.
 */
const ONLY = (() => {
  const raw = process.env.ADFLEET_BENCH_BACKFILL_ONLY;
  if (raw === undefined || raw.trim() === '') return undefined;
  const known = ['latency', 'health', 'unthrottled', 'fixed', 'busy', 'step'];
  const picked = raw.split(',').map((part) => part.trim());
  const unknown = picked.filter((part) => !known.includes(part));
  if (unknown.length > 0)
    throw new Error(
      `ADFLEET_BENCH_BACKFILL_ONLY: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`,
    );
  return new Set(picked);
})();
/** ADFLEET_BENCH_BACKFILL_LOGS=<file>: the workers' logs at debug level (the latency verdicts among them). */
const LOGS = process.env.ADFLEET_BENCH_BACKFILL_LOGS;
const runs = (row: string) => ONLY === undefined || ONLY.has(row);

const VARIANTS = ALL_VARIANTS.filter((variant) => runs(variant.name.split(' ')[0] as string));

function log(message: string) {
  process.stdout.write(`bench backfill: ${message}\n`);
}

async function prepareTemplate(base: string) {
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
  await runAdminStatement(base, `CREATE DATABASE ${TEMPLATE}`);
  const url = databaseUrlFor(base, TEMPLATE);
  await migrate(url);
  // A client of its own, without the pools' statement deadlines: a million rows take a while.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const started = performance.now();
  await seedCampaigns(client, { profiles: PROFILES, campaigns: ROWS });
  await client.query('VACUUM ANALYZE campaigns');
  await client.end();
  log(
    `seeded ${ROWS.toLocaleString('en-US')} campaigns in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

async function freshCopy(base: string, name: string): Promise<string> {
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await runAdminStatement(base, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
  // The copy went through the WAL, and the run before wrote up to a million rows: without
  // a checkpoint now, the server writes that out during the next run, and whichever run
  // comes next pays production latency for the one before it.
  await runAdminStatement(base, 'CHECKPOINT');
  return databaseUrlFor(base, name);
}

/** The production mix's queries. */
const QUERY_KINDS = ['list', 'by id', 'update'] as const;
type QueryKind = (typeof QUERY_KINDS)[number];

/** One production query: when it was due (epoch ms, epochNow), how long it took (ms), which it was. */
interface Sample {
  readonly at: number;
  readonly ms: number;
  readonly kind: QueryKind;
}

/**
 * The production mix at a fixed pace until stopped, sent by a process of its own
 * (bench/production-mix.ts, at a raised priority when `raised`: see there); `samples` fills as it
 * reports them, and `stop` resolves with all of them. `setClients` changes how many of the
 * `maxClients` connections send (the step load).
 */
function productionMix(
  url: string,
  pinning: Pinning,
  options: { maxClients?: number; raised?: boolean } = {},
) {
  const maxClients = options.maxClients ?? CLIENTS;
  const settings: MixSettings = {
    url,
    maxClients,
    clients: Math.min(CLIENTS, maxClients),
    paceMs: PACE_MS,
    profiles: PROFILES,
    rows: ROWS,
    profileIdBase: SEED_PROFILE_ID_BASE,
    campaignIdBase: SEED_CAMPAIGN_ID_BASE,
  };
  const samples: Sample[] = [];
  const child = fork(
    fileURLToPath(new URL('./production-mix.ts', import.meta.url)),
    [JSON.stringify(settings)],
    {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  if (child.pid !== undefined) {
    pinning.pinToOtherCpu(child.pid);
    if (options.raised ?? true) pinning.raisePriority(child.pid, true);
  }
  const stopped = new Promise<void>((resolve, reject) => {
    child.on('message', (message: MixMessage) => {
      if (message === 'stopped') return resolve();
      const values = message.samples;
      for (let index = 0; index + 2 < values.length; index += 3) {
        samples.push({
          at: values[index] as number,
          ms: values[index + 1] as number,
          kind: QUERY_KINDS[values[index + 2] as number] as QueryKind,
        });
      }
    });
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`the production mix exited with ${code}`)),
    );
  });
  return {
    samples,
    setClients(count: number) {
      child.send({ clients: count });
    },
    async stop(): Promise<Sample[]> {
      child.send('stop');
      await stopped;
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
    const now = epochNow();
    const last = this.windows.at(-1);
    if (last !== undefined) last.to = now;
    this.windows.push({ from: now, to: Number.POSITIVE_INFINITY, loaded });
  }

  /** Seconds the load ran. */
  loadedSeconds(): number {
    const end = epochNow();
    return this.windows
      .filter((window) => window.loaded)
      .reduce((sum, window) => sum + (Math.min(window.to, end) - window.from) / 1000, 0);
  }

  split(samples: readonly Sample[]): Omit<Run, 'seconds' | 'rows'> {
    const idle: number[] = [];
    const during: number[] = [];
    const byKind = Object.fromEntries(
      QUERY_KINDS.map((kind) => [kind, { idle: [] as number[], during: [] as number[] }]),
    ) as Record<QueryKind, { idle: number[]; during: number[] }>;
    for (const sample of samples) {
      const window = this.windows.find((w) => sample.at >= w.from && sample.at < w.to);
      if (window === undefined || sample.at < window.from + GUARD_MS) continue;
      (window.loaded ? during : idle).push(sample.ms);
      (window.loaded ? byKind[sample.kind].during : byKind[sample.kind].idle).push(sample.ms);
    }
    return { idle, during, byKind };
  }
}

interface Run {
  readonly seconds: number;
  /** Rows the run processed (all of them, but for a fixed pace's stretch). */
  readonly rows: number;
  readonly idle: number[];
  readonly during: number[];
  /** The same, per query of the mix: which of them a backfill slows. */
  readonly byKind: Record<QueryKind, { idle: number[]; during: number[] }>;
  /** A latency-targeted run: what its own probe saw, medians over its throttle events. */
  readonly probe?: { readonly baselineMs: number; readonly p99Ms: number; readonly decisions: number };
}

async function runNaive(url: string, pinning: Pinning): Promise<Run> {
  const timeline = new Timeline();
  const mix = productionMix(url, pinning);
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
  return { seconds, rows: ROWS, ...timeline.split(await mix.stop()) };
}

/**
 * The floor the pinning leaves: the mix while a process outside the database keeps the
 * non-database core busy (a spin loop), in the same windows and for as long as the
 * health-throttled backfill ran.
 */
async function runCoreBusy(url: string, seconds: number, pinning: Pinning, raised = true): Promise<Run> {
  const [command, ...args] = [...pinning.onOtherCpu, process.execPath, '-e', 'for (;;) {}'];
  const spinner = spawn(command as string, args, { stdio: 'ignore' });
  await sleep(200);
  spinner.kill('SIGSTOP');
  const timeline = new Timeline();
  const mix = productionMix(url, pinning, { raised });
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
    return { seconds: timeline.loadedSeconds(), rows: 0, ...timeline.split(await mix.stop()) };
  } finally {
    spinner.kill('SIGKILL');
  }
}

/** A backfill-chunk worker process on the non-database core, with its messenger and a pool. */
async function startBenchWorker(url: string, env: NodeJS.ProcessEnv, pinning: Pinning) {
  const config = loadConfig({ ...env, DATABASE_URL: url, ADFLEET_RESOURCE_PREFIX: PREFIX });
  const clients = createAwsClients(config);
  await bootstrapTopology(clients, resourceNames(PREFIX));
  const { messenger } = createMessenger(clients, config);
  const [command, ...args] = [
    ...pinning.onOtherCpu,
    process.execPath,
    fileURLToPath(new URL('../workers/backfill-chunk/main.ts', import.meta.url)),
  ];
  const worker = spawn(command as string, args, {
    env: {
      ...env,
      DATABASE_URL: url,
      ADFLEET_RESOURCE_PREFIX: PREFIX,
      OTEL_SDK_DISABLED: 'true',
      LOG_LEVEL: LOGS === undefined ? 'warn' : 'debug',
      ADFLEET_POLL_WAIT_SECONDS: '1',
    },
    stdio: ['ignore', LOGS === undefined ? 'ignore' : 'pipe', 'inherit'],
  });
  if (LOGS !== undefined) worker.stdout?.pipe(createWriteStream(LOGS, { flags: 'a' }));
  const pool = createPool(url, { max: 2 });
  // Let the worker and its first long polls settle before the first idle window.
  await sleep(5_000);
  return {
    messenger,
    pool,
    async stop() {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
      await pool.end();
      clients.destroy();
    },
  };
}

async function runBackfill(
  url: string,
  env: NodeJS.ProcessEnv,
  pinning: Pinning,
  variant: BackfillVariant,
): Promise<Run> {
  const { messenger, pool, stop } = await startBenchWorker(url, env, pinning);
  try {
    const timeline = new Timeline();
    const mix = productionMix(url, pinning);
    timeline.mark(false);
    await sleep(WINDOW_MS);
    timeline.mark(true);
    const { job } = await startBackfill(pool, messenger, BACKFILLS, {
      name: 'campaign-currency',
      ...variant.request,
    });
    // The job's status, polled at one steady pace through idle and loaded windows alike, so
    // the polling (in this process, beside the mix) weighs on both percentiles the same.
    let state: string = job.status;
    let polling = true;
    const deadline = Date.now() + 45 * 60_000;
    const poller = (async () => {
      while (polling) {
        const current = await loadJob(pool, job.id);
        state = current?.status ?? 'missing';
        if (Date.now() > deadline) state = 'timed out';
        await sleep(50);
      }
    })();
    const until = async (done: () => boolean, windowEnd = Number.POSITIVE_INFINITY) => {
      while (!done() && epochNow() < windowEnd) {
        if (['failed', 'cancelled', 'missing', 'timed out'].includes(state)) {
          throw new Error(`backfill did not complete: ${state}`);
        }
        await sleep(10);
      }
    };
    try {
      for (;;) {
        await until(() => state === 'completed', epochNow() + WINDOW_MS);
        if (state !== 'completed') {
          await pauseBackfill(pool, job.id);
          await until(() => state === 'paused' || state === 'completed');
        }
        timeline.mark(false);
        await sleep(WINDOW_MS);
        if (state === 'completed') break;
        if (variant.loadedSeconds !== undefined && timeline.loadedSeconds() >= variant.loadedSeconds) break;
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
    const filled = rows[0]?.filled ?? 0;
    if (state === 'completed' && filled !== ROWS)
      throw new Error(`backfill filled ${filled} of ${ROWS} rows`);
    if (state !== 'completed') await cancelBackfill(pool, job.id);
    const samples = await mix.stop();
    const probe = variant.request.maxLatencyRatio === undefined ? undefined : await probeView(pool, job.id);
    return {
      seconds: timeline.loadedSeconds(),
      rows: filled,
      ...timeline.split(samples),
      ...(probe && { probe }),
    };
  } finally {
    await stop();
  }
}

/** The latency throttle's own view of a run: the medians of its recorded baseline and probe p99. */
async function probeView(pool: pg.Pool, jobId: string): Promise<Run['probe']> {
  const { rows } = await pool.query<{ baseline: number | null; probe: number | null; decisions: number }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY baseline_p99_ms) AS baseline,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY probe_p99_ms) AS probe,
            count(*)::int AS decisions
       FROM backfill_throttle_events
      WHERE job_id = $1 AND baseline_p99_ms IS NOT NULL AND probe_p99_ms IS NOT NULL`,
    [jobId],
  );
  const row = rows[0];
  if (row?.baseline == null || row.probe == null) return undefined;
  return { baselineMs: row.baseline, p99Ms: row.probe, decisions: row.decisions };
}

interface StepResult {
  readonly idleP99: number;
  readonly steppedIdleP99: number;
  readonly beforeP99: number;
  readonly afterP99: number;
  /** Seconds from the step until production's p99 stayed under target for 3 windows; undefined: never. */
  readonly convergedSeconds: number | undefined;
  /** Seconds from the step until the throttle's first verdict under target after its first over it. */
  readonly throttleSeconds: number | undefined;
  readonly windows: readonly number[];
  readonly rowsPerSecondBefore: number;
  readonly rowsPerSecondAfter: number;
}

/**
 * The step load: the latency-targeted backfill runs without pauses while the production
 * mix doubles mid-run. Both mixes' idle p99 are measured first, with no backfill; the
 * target after the step is 1.5x the doubled mix's idle p99.
 */
async function runStepLoad(url: string, env: NodeJS.ProcessEnv, pinning: Pinning): Promise<StepResult> {
  const { messenger, pool, stop } = await startBenchWorker(url, env, pinning);
  const mix = productionMix(url, pinning, { maxClients: CLIENTS * 2 });
  const stretch = async (ms: number) => {
    const from = epochNow();
    await sleep(ms);
    return mix.samples.filter((sample) => sample.at >= from + GUARD_MS).map((sample) => sample.ms);
  };
  const processed = async (jobId: string) => (await loadJob(pool, jobId))?.rowsProcessed ?? 0;
  try {
    const idle = await stretch(STEP_IDLE_MS);
    mix.setClients(CLIENTS * 2);
    const steppedIdle = await stretch(STEP_IDLE_MS);
    mix.setClients(CLIENTS);
    const { job } = await startBackfill(pool, messenger, BACKFILLS, {
      name: 'campaign-currency',
      ...LATENCY_VARIANT.request,
    });
    await sleep(3_000); // the throttle learns its baseline, then paces
    const rowsAtBefore = await processed(job.id);
    const before = await stretch(STEP_BEFORE_MS - 3_000);
    const rowsAtStep = await processed(job.id);
    const stepAt = epochNow();
    const stepWall = new Date();
    mix.setClients(CLIENTS * 2);
    await sleep(STEP_AFTER_MS);
    const rowsAfter = await processed(job.id);
    await cancelBackfill(pool, job.id);
    const steppedIdleP99 = percentile(steppedIdle, 99);
    const target = TARGET_RATIO * steppedIdleP99;
    const windows: number[] = [];
    for (let from = stepAt; from + STEP_WINDOW_MS <= stepAt + STEP_AFTER_MS; from += STEP_WINDOW_MS) {
      windows.push(
        percentile(
          mix.samples.filter((s) => s.at >= from && s.at < from + STEP_WINDOW_MS).map((s) => s.ms),
          99,
        ),
      );
    }
    const settled = windows.findIndex(
      (_, index) => windows.slice(index, index + 3).every((p) => p <= target) && index + 3 <= windows.length,
    );
    const { rows: events } = await pool.query<{ state: string; at: Date }>(
      `SELECT state, at FROM backfill_throttle_events WHERE job_id = $1 AND at >= $2 ORDER BY id`,
      [job.id, stepWall],
    );
    const firstOver = events.findIndex((event) => event.state === 'slowed');
    const backUnder =
      firstOver < 0 ? undefined : events.slice(firstOver).find((event) => event.state === 'healthy');
    return {
      idleP99: percentile(idle, 99),
      steppedIdleP99,
      beforeP99: percentile(before, 99),
      afterP99: percentile(
        mix.samples.filter((s) => s.at >= stepAt + GUARD_MS).map((s) => s.ms),
        99,
      ),
      convergedSeconds: settled < 0 ? undefined : (settled * STEP_WINDOW_MS) / 1000,
      throttleSeconds:
        backUnder === undefined ? undefined : (backUnder.at.getTime() - stepWall.getTime()) / 1000,
      windows,
      rowsPerSecondBefore: (rowsAtStep - rowsAtBefore) / ((STEP_BEFORE_MS - 3_000) / 1000),
      rowsPerSecondAfter: (rowsAfter - rowsAtStep) / (STEP_AFTER_MS / 1000),
    };
  } finally {
    await mix.stop();
    await stop();
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
  /** p99 during / idle per query kind, in QUERY_KINDS order. */
  readonly kindRatios: readonly number[];
  readonly probe?: Run['probe'];
}

function rowOf(run: Run): Row {
  const { rows } = run;
  const idleP99 = percentile(run.idle, 99);
  const p99 = percentile(run.during, 99);
  return {
    seconds: run.seconds,
    rowsPerSecond: rows / run.seconds,
    idleP99,
    p99,
    ratio: p99 / idleP99,
    // A loop, not Math.max(...during): a slow run's hundreds of thousands of samples as
    // arguments overflow the stack.
    max: run.during.reduce((top, ms) => Math.max(top, ms), Number.NEGATIVE_INFINITY),
    kindRatios: QUERY_KINDS.map(
      (kind) => percentile(run.byKind[kind].during, 99) / percentile(run.byKind[kind].idle, 99),
    ),
    ...(run.probe && { probe: run.probe }),
  };
}

/** One round: naive, each backfill variant, the spin loop, each on a fresh copy; then the step load. */
async function runRound(
  base: string,
  env: NodeJS.ProcessEnv,
  pinning: Pinning,
  into: Map<string, Row[]>,
  steps: StepResult[],
  round: number,
) {
  const record = (name: string, row: Row) => into.set(name, [...(into.get(name) ?? []), row]);
  const copy = 'adfleet_bench_backfill_run';
  // The variants take turns at running first, so none always follows the naive UPDATE.
  const order = VARIANTS.map(
    (_, index) => VARIANTS[(index + round - 1) % VARIANTS.length] as BackfillVariant,
  );
  log('naive UPDATE …');
  record('naive UPDATE', rowOf(await runNaive(await freshCopy(base, copy), pinning)));
  let healthSeconds = 10;
  for (const variant of order) {
    log(`backfill, ${variant.name} …`);
    const row = rowOf(await runBackfill(await freshCopy(base, copy), env, pinning, variant));
    if (variant.name === 'health throttle') healthSeconds = Math.max(healthSeconds, row.seconds);
    record(variant.name, row);
    log(`  ${row.seconds.toFixed(1)} s, p99 ${row.ratio.toFixed(2)}x idle`);
  }
  if (runs('busy')) {
    log('one core busy outside the database …');
    record('1 core busy', rowOf(await runCoreBusy(await freshCopy(base, copy), healthSeconds, pinning)));
    // The same floor with the mix at the default priority, side by side: what its raised
    // priority takes out of every row's p99.
    if (pinning.raised) {
      log('one core busy, the production mix at nice 0 …');
      record(
        BUSY_PLAIN,
        rowOf(await runCoreBusy(await freshCopy(base, copy), healthSeconds, pinning, false)),
      );
    }
  }
  if (runs('step')) {
    log('step load: the production mix doubles mid-run …');
    steps.push(await runStepLoad(await freshCopy(base, copy), env, pinning));
  }
  await runAdminStatement(base, `DROP DATABASE IF EXISTS ${copy} WITH (FORCE)`);
}

/**
 * The pace curve's verdict: the fastest fixed pace whose production p99 held the target in
 * every round, beside what the latency target reached: the most any throttle could have
 * had here, and how much of it the controller found.
 */
function paceCurveLines(
  summary: ReadonlyArray<{ name: string; rowsPerSecond: number; worstRatio: number }>,
  naiveRowsPerSecond: number,
): string[] {
  const fixed = summary.filter((r) => r.name.startsWith('fixed '));
  if (fixed.length === 0) return [];
  const holding = fixed.filter((r) => r.worstRatio <= TARGET_RATIO);
  const best = holding.reduce<(typeof fixed)[number] | undefined>(
    (top, r) => (top === undefined || r.rowsPerSecond > top.rowsPerSecond ? r : top),
    undefined,
  );
  const latency = summary.find((r) => r.name === LATENCY_VARIANT.name);
  const curve = fixed.map((r) => `${r.name.slice('fixed '.length)} ${r.worstRatio.toFixed(2)}x`).join(', ');
  return [
    `pace curve (worst round's p99 ratio at each fixed pace): ${curve}`,
    best === undefined
      ? `pace curve: no fixed pace held ${TARGET_RATIO}x in every round`
      : `pace curve: the fastest fixed pace holding ${TARGET_RATIO}x in every round ran ${count(best.rowsPerSecond)} rows/s (${(best.rowsPerSecond / naiveRowsPerSecond).toFixed(2)}x naive)${latency === undefined ? '' : `; the latency target ran ${count(latency.rowsPerSecond)} rows/s (${(latency.rowsPerSecond / best.rowsPerSecond).toFixed(2)}x of it)`}`,
  ];
}

/** A count for the tables: rounded, with thousands separators; '-' for none. */
const count = (value: number) => (value === 0 ? '-' : Math.round(value).toLocaleString('en-US'));

export async function runBackfillBench(): Promise<void> {
  const env = benchEnv();
  const base = env.DATABASE_URL;
  if (base === undefined) throw new Error('DATABASE_URL is not set: load .stack/env');
  await prepareTemplate(base);
  const pinning = await pinDatabaseToItsOwnCore(base);
  const restore = () => pinning.restore();
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)
    process.once(signal, () => {
      restore();
      process.exit(code);
    });
  log(pinning.description);
  const total = rounds();
  const results = new Map<string, Row[]>();
  const steps: StepResult[] = [];
  try {
    for (let round = 1; round <= total; round += 1) {
      if (total > 1) log(`round ${round} of ${total}`);
      await runRound(base, env, pinning, results, steps, round);
    }
  } finally {
    restore();
    log('affinity restored');
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
      worstRatio: Math.max(...ratios),
      range: `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`,
      max: Math.max(...runs.map((row) => row.max)),
      kindRatios: QUERY_KINDS.map((_, index) => of((row) => row.kindRatios[index] as number)),
      probes: runs.flatMap((row) => (row.probe === undefined ? [] : [row.probe])),
    };
  });
  const naive = summary.find((row) => row.name === 'naive UPDATE');
  if (naive === undefined) throw new Error('no naive run');
  const pad = (value: string, width: number) => value.padStart(width);
  const secondsOrNever = (value: number | undefined) =>
    value === undefined ? 'not within the run' : `${value.toFixed(1)} s`;
  const lines = [
    '',
    pinning.description,
    `campaign-currency over ${ROWS.toLocaleString('en-US')} rows; production mix: ${CLIENTS} clients, one query per ${PACE_MS} ms each; ${total === 1 ? 'one round' : `medians of ${total} rounds`}`,
    `${'run'.padEnd(16)}${pad('seconds', 9)}${pad('rows/s', 11)}${pad('x naive', 9)}${pad('idle p99', 11)}${pad('p99 during', 12)}${pad('p99 ratio', 11)}${total > 1 ? pad('range', 19) : ''}${pad('max', 9)}`,
    ...summary.map(
      (r) =>
        `${r.name.padEnd(16)}${pad(r.seconds.toFixed(1), 9)}${pad(count(r.rowsPerSecond), 11)}${pad(r.rowsPerSecond === 0 ? '-' : (r.rowsPerSecond / naive.rowsPerSecond).toFixed(2), 9)}${pad(`${r.idleP99.toFixed(2)}ms`, 11)}${pad(`${r.p99.toFixed(2)}ms`, 12)}${pad(`${r.ratio.toFixed(2)}x`, 11)}${total > 1 ? pad(r.range, 19) : ''}${pad(`${r.max.toFixed(0)}ms`, 9)}`,
    ),
    '',
    `p99 ratio by query of the mix (${QUERY_KINDS.map((kind, index) => `${kind} ${[50, 40, 10][index]}%`).join(', ')}): which a run slows`,
    ...summary.map(
      (r) =>
        `  ${r.name.padEnd(17)}${r.kindRatios.map((ratio, index) => `${QUERY_KINDS[index]} ${ratio.toFixed(2)}x`).join('  ')}`,
    ),
    '',
    ...summary
      .filter((r) => VARIANTS.some((variant) => variant.name === r.name))
      .map(
        (r) =>
          `${r.name}: throughput ${(r.rowsPerSecond / naive.rowsPerSecond).toFixed(2)}x naive, production p99 ${r.ratio.toFixed(2)}x idle (worst round ${r.worstRatio.toFixed(2)}x)`,
      ),
    ...summary
      .filter((r) => r.name === `latency ${TARGET_RATIO}x`)
      .map(
        (r) =>
          `latency ${TARGET_RATIO}x targets: p99 <= ${TARGET_RATIO}x idle in every round (${r.worstRatio <= TARGET_RATIO ? 'met' : 'MISSED'}), throughput >= 0.30x naive (${r.rowsPerSecond / naive.rowsPerSecond >= 0.3 ? 'met' : 'MISSED'})`,
      ),
    ...paceCurveLines(summary, naive.rowsPerSecond),
    ...summary
      .filter((r) => r.probes.length > 0)
      .map((r) => {
        const baseline = median(r.probes.map((probe) => probe.baselineMs));
        const probeP99 = median(r.probes.map((probe) => probe.p99Ms));
        return `${r.name}, as its own probe saw it (medians of its recorded decisions): baseline p99 ${baseline.toFixed(2)}ms (production's idle p99 ${r.idleP99.toFixed(2)}ms), probe p99 ${probeP99.toFixed(2)}ms (${(probeP99 / baseline).toFixed(2)}x its baseline; production ${r.ratio.toFixed(2)}x)`;
      }),
    `naive UPDATE: production p99 ${naive.ratio.toFixed(2)}x idle`,
    ...summary
      .filter((r) => r.name === '1 core busy')
      .map(
        (r) =>
          `1 core busy (a spin loop on the non-database core, no database work; seconds = how long): production p99 ${r.ratio.toFixed(2)}x idle`,
      ),
    ...summary
      .filter((r) => r.name === BUSY_PLAIN)
      .map(
        (r) =>
          `${BUSY_PLAIN} (the same, the production mix at nice 0): production p99 ${r.ratio.toFixed(2)}x idle`,
      ),
    ...steps.map(
      (step, index) =>
        `step load${steps.length > 1 ? ` (round ${index + 1})` : ''}: mix ${CLIENTS} -> ${CLIENTS * 2} clients; idle p99 ${step.idleP99.toFixed(2)}ms -> ${step.steppedIdleP99.toFixed(2)}ms; p99 before the step ${step.beforeP99.toFixed(2)}ms (${(step.beforeP99 / step.idleP99).toFixed(2)}x), after ${step.afterP99.toFixed(2)}ms (${(step.afterP99 / step.steppedIdleP99).toFixed(2)}x); back under ${TARGET_RATIO}x for 3 s in a row: ${secondsOrNever(step.convergedSeconds)} (target <= 10 s); throttle's verdict back under target: ${secondsOrNever(step.throttleSeconds)}; rows/s ${count(step.rowsPerSecondBefore)} before, ${count(step.rowsPerSecondAfter)} after`,
    ),
    ...steps.map(
      (step) =>
        `  p99 per ${STEP_WINDOW_MS / 1000} s after the step (target ${(TARGET_RATIO * step.steppedIdleP99).toFixed(2)}ms): ${step.windows.map((p) => p.toFixed(1)).join(' ')}`,
    ),
    `(idle and loaded queries interleaved in ${WINDOW_MS / 1000} s windows; seconds and rows/s count loaded time only; the naive UPDATE's idle is the ${IDLE_SECONDS} s before it; ADFLEET_BENCH_ROUNDS=N repeats the comparison)`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await runBackfillBench();
  process.exit(0);
}
