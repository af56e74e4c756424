/**
 * `npm run bench -- capacity`: measures what one Ads call and one message cost the worker
 * (short profile-sync and bulk PUT workloads against the in-process sandbox, each in a child
 * process reading its own process.cpuUsage(); a short QueueWorker drain), feeds them into the
 * capacity model (contract/capacity.ts) with the assumptions stated below, and writes
 * docs/capacity.md. Sizes: BENCH_CAPACITY_SECONDS per Ads workload (default 30),
 * BENCH_CAPACITY_MESSAGES for the queue drain (default 1,000).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { promisify } from 'node:util';
import {
  ADS_LATENCY,
  type AdsLatency,
  backfillEstimate,
  bulkJobEstimate,
  fargateTaskHourPrice,
  idleReceivesPerMonth,
  listPagesOf,
  type MeasuredCpu,
  type Measurements,
  modelInputs,
  monthlyCost,
  PLATFORM,
  PRICES,
  PROFILE_MIX,
  profileSyncEstimate,
  RATES,
  SETTINGS,
  sqsRequestTotal,
  type WorkloadEstimate,
} from '../contract/capacity.ts';
import { workers } from '../infra/workers.ts';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import { migrate } from '../shared/db.ts';
import { createTestDatabase, ensureTemplate } from '../test/support/database.ts';
import type { CapacityRunReport, CapacityRunSpec } from './capacity-run.ts';
import { consume, preload, WORKER_OFF } from './queue-worker.ts';
import { benchEnv, printTable } from './support.ts';

const run = promisify(execFile);
const SECONDS = Number(process.env.BENCH_CAPACITY_SECONDS ?? 30);
const QUEUE_MESSAGES = Number(process.env.BENCH_CAPACITY_MESSAGES ?? 1_000);
const OUTPUT = 'docs/capacity.md';

const PRICES_TAKEN = '2026-12-01';

const PROFILE_COUNTS = [200, 2_000, 20_000] as const;
const BULK_ITEMS = 1_000_000;
const BACKFILL_ROWS = 100_000_000;

// The sandbox's data for the measured workloads: 10 campaigns × 5 ad groups × 20 keywords
// (1,000 keywords: one full bulk batch per profile; 12 list pages per sync).
const MEASURED_SIZES = {
  profiles: 20,
  campaignsPerProfile: 10,
  adGroupsPerCampaign: 5,
  keywordsPerAdGroup: 20,
};

async function adsWorkload(
  mode: 'sync' | 'bulk',
  spec: CapacityRunSpec,
  env: Record<string, string>,
): Promise<CapacityRunReport> {
  const { stdout } = await run(process.execPath, ['bench/capacity-run.ts', mode, JSON.stringify(spec)], {
    env: { ...process.env, ...env, OTEL_SDK_DISABLED: 'true', LOG_LEVEL: 'warn' },
    maxBuffer: 16 * 1024 * 1024,
    timeout: spec.durationMs + 180_000,
  });
  const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as CapacityRunReport;
  if (report.errors > 0)
    throw new Error(`${mode} workload failed ${report.errors} times: ${report.firstError}`);
  if (report.calls === 0) throw new Error(`${mode} workload made no calls`);
  return report;
}

export interface MeasuredRun {
  readonly measurements: Measurements;
  readonly measuredCpu: MeasuredCpu;
  /** The sandbox's latency in this run: printed for reference, not used by the model. */
  readonly sandboxLatency: AdsLatency;
  readonly sync: CapacityRunReport;
  readonly bulk: CapacityRunReport;
  readonly queueRate: number;
  readonly loadAverage: number;
}

async function measure(env: Record<string, string>): Promise<MeasuredRun> {
  const databaseUrl = env.DATABASE_URL as string;
  await ensureTemplate(databaseUrl, (url) => migrate(url));
  const database = await createTestDatabase(databaseUrl);
  const sandbox = await startAdsSandbox({
    sizes: MEASURED_SIZES,
    // Far above what the runs ask: they measure CPU per call, not the limits.
    profileCapacity: { ratePerSecond: 10_000, burst: 10_000 },
    clientCapacity: { ratePerSecond: 100_000, burst: 100_000 },
  });
  try {
    const base = {
      apiUrl: sandbox.url,
      redisUrl: env.REDIS_URL as string,
      databaseUrl: database.url,
      durationMs: SECONDS * 1000,
      pageSize: SETTINGS.listPageSize,
      batchSize: SETTINGS.bulkBatchSize,
    };
    const sync = await adsWorkload(
      'sync',
      {
        ...base,
        keyPrefix: `bench-capacity-sync-${Date.now()}`,
        concurrency: workers['profile-sync'].concurrency,
      },
      env,
    );
    const bulk = await adsWorkload(
      'bulk',
      {
        ...base,
        keyPrefix: `bench-capacity-bulk-${Date.now()}`,
        concurrency: workers['bulk-item'].concurrency,
      },
      env,
    );
    const prefix = `bench-capacity-q-${Date.now().toString(36)}`;
    await preload(prefix, env, QUEUE_MESSAGES);
    const queue = await consume(WORKER_OFF, prefix, QUEUE_MESSAGES, env);
    const measuredCpu: MeasuredCpu = {
      syncCpuMsPerCall: sync.cpuMs / sync.calls,
      bulkCpuMsPerPut: bulk.cpuMs / bulk.calls,
      queueCpuMsPerMessage: queue.cpuMsPerMessage,
    };
    return {
      measurements: modelInputs(measuredCpu),
      measuredCpu,
      sandboxLatency: { syncMsPerCall: sync.callMs / sync.calls, bulkMsPerPut: bulk.callMs / bulk.calls },
      sync,
      bulk,
      queueRate: queue.rate,
      loadAverage: loadavg()[0] ?? Number.NaN,
    };
  } finally {
    await sandbox.close();
    await database.drop();
  }
}

const n = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const duration = (seconds: number) =>
  seconds < 120
    ? `${n(seconds, 1)} s`
    : seconds < 7_200
      ? `${n(seconds / 60, 1)} min`
      : `${n(seconds / 3_600, 1)} h`;
const usd = (value: number) => `$${n(value, 2)}`;

/** The model's figures for one measured run: what the document shows and the infra test checks. */
export function capacityFigures(measurements: Measurements) {
  const sync = PROFILE_COUNTS.map((profiles) => ({
    profiles,
    estimate: profileSyncEstimate(
      profiles,
      PROFILE_MIX,
      RATES,
      SETTINGS,
      measurements,
      PLATFORM,
      workers['profile-sync'],
    ),
  }));
  const bulk = bulkJobEstimate(BULK_ITEMS, RATES, SETTINGS, measurements, PLATFORM, workers['bulk-item']);
  const backfill = backfillEstimate(
    BACKFILL_ROWS,
    SETTINGS,
    measurements,
    PLATFORM,
    workers['backfill-chunk'],
  );
  const months = sync.map(({ profiles, estimate }) => ({
    profiles,
    cost: monthlyCost(
      [
        { bounds: workers['profile-sync'], runs: [{ estimate, perMonth: PLATFORM.syncsPerMonth }] },
        { bounds: workers['bulk-item'], runs: [] },
        { bounds: workers['backfill-chunk'], runs: [] },
      ],
      SETTINGS,
      PLATFORM,
      PRICES,
    ),
  }));
  const runCost = (estimate: WorkloadEstimate, bounds: (typeof workers)[keyof typeof workers]) => {
    const tasks = Math.min(bounds.maxTasks, estimate.tasksNeeded);
    return (
      tasks * (estimate.wallSecondsAtMaxTasks / 3_600) * fargateTaskHourPrice(bounds, PRICES) +
      (sqsRequestTotal(estimate.sqs) / 1e6) * PRICES.sqsPerMillionRequests +
      (estimate.eventBridgeEvents / 1e6) * PRICES.eventBridgePerMillionEvents
    );
  };
  return {
    sync,
    bulk,
    backfill,
    months,
    bulkRunCost: runCost(bulk, workers['bulk-item']),
    backfillRunCost: runCost(backfill, workers['backfill-chunk']),
  };
}

function workloadRows(label: string, estimate: WorkloadEstimate, maxTasks: number): string[][] {
  const rows: [string, string, string][] = [
    ['Ads API requests', n(estimate.adsRequests), 'derived'],
    ['SQS messages', n(estimate.messages), 'derived'],
    ['SQS sends (SendMessageBatch of 10)', n(estimate.sqs.sends), 'derived'],
    ['SQS receives (full batches of 10 when backlogged)', n(estimate.sqs.receives), 'derived'],
    ['SQS deletes (one per message)', n(estimate.sqs.deletes), 'derived'],
    ['EventBridge events', n(estimate.eventBridgeEvents), 'derived'],
    [
      `rate-limit floor (${estimate.floorLimit})`,
      duration(estimate.floorSeconds),
      'derived from assumed rates',
    ],
    ['tasks to reach the floor, by CPU', n(estimate.tasksByCpu), 'derived from measured CPU'],
    [
      'tasks to reach the floor, by handler slots',
      n(estimate.tasksBySlots),
      'derived from assumed latency (backfill: partitions)',
    ],
    ['tasks to reach the floor', n(estimate.tasksNeeded), 'derived'],
    ...(estimate.objectiveSeconds === undefined
      ? []
      : ([
          [
            `tasks to drain within the queue's objective (${duration(estimate.objectiveSeconds)})`,
            n(estimate.tasksForObjective ?? Number.NaN),
            'derived',
          ],
        ] as [string, string, string][])),
    [`wall time at deployed maxTasks (${maxTasks})`, duration(estimate.wallSecondsAtMaxTasks), 'derived'],
  ];
  return rows.map(([what, value, source]) => [label, what, value, source]);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

/** What the document records of the run that wrote it, so the next run can set itself beside it. */
interface RecordedRun {
  readonly date: string;
  readonly loadAverage: number;
  readonly measuredCpu: MeasuredCpu;
}

/** The run recorded in the document as it stands, or undefined when there is none to read. */
function previousRun(document: string): RecordedRun | undefined {
  const cpu = /<!-- capacity-measurements (\{.*?\}) -->/.exec(document)?.[1];
  const run = /<!-- capacity-run (\{.*?\}) -->/.exec(document)?.[1];
  if (cpu === undefined) return undefined;
  // Documents written before the capacity-run comment say both in their first paragraph.
  const context = run === undefined ? {} : (JSON.parse(run) as Partial<RecordedRun>);
  return {
    date: context.date ?? /capacity` on (\d{4}-\d{2}-\d{2})/.exec(document)?.[1] ?? 'an earlier run',
    loadAverage: context.loadAverage ?? Number(/load average ([\d.]+)/.exec(document)?.[1] ?? Number.NaN),
    measuredCpu: JSON.parse(cpu) as MeasuredCpu,
  };
}

/**
 * This run beside the previous one: the per-unit costs move with the machine's load, and the
 * question a planner has is whether the decisions they feed (tasks, wall time) move with them.
 */
function reproducibility(current: MeasuredRun, previous: RecordedRun | undefined, date: string): string {
  if (previous === undefined) return 'No earlier run was recorded in this document to compare with.';
  const units: [string, keyof MeasuredCpu][] = [
    ['profile-sync CPU per list page, ms', 'syncCpuMsPerCall'],
    [`bulk-item CPU per PUT of ${n(SETTINGS.bulkBatchSize)}, ms`, 'bulkCpuMsPerPut'],
    ['chassis CPU per SQS message, ms', 'queueCpuMsPerMessage'],
  ];
  const now = capacityFigures(modelInputs(current.measuredCpu));
  const then = capacityFigures(modelInputs(previous.measuredCpu));
  const workloads = (figures: ReturnType<typeof capacityFigures>) => [
    ...figures.sync.map(({ profiles, estimate }) => [`sync ${n(profiles)} profiles`, estimate] as const),
    [`bulk job ${n(BULK_ITEMS)} items`, figures.bulk] as const,
    [`backfill ${n(BACKFILL_ROWS)} rows`, figures.backfill] as const,
  ];
  const before = workloads(then);
  const decisions = workloads(now).map(([label, estimate], index) => {
    const old = (before[index] as (typeof before)[number])[1];
    const same =
      estimate.tasksNeeded === old.tasksNeeded &&
      estimate.wallSecondsAtMaxTasks === old.wallSecondsAtMaxTasks;
    return [
      label,
      `${n(estimate.tasksNeeded)} / ${n(old.tasksNeeded)}`,
      `${n(estimate.tasksByCpu)} / ${n(old.tasksByCpu)}`,
      `${duration(estimate.wallSecondsAtMaxTasks)} / ${duration(old.wallSecondsAtMaxTasks)}`,
      same ? 'same' : 'differs',
    ];
  });
  const load = (value: number) => (Number.isFinite(value) ? `load ${n(value, 1)}` : 'load not recorded');
  return `This run (${date}, ${load(current.loadAverage)}) beside the one this document held before it
(${previous.date}, ${load(previous.loadAverage)}), both on this machine:

${table(
  ['unit', 'this run', 'previous run', 'this / previous'],
  units.map(([label, key]) => [
    label,
    n(current.measuredCpu[key], 3),
    n(previous.measuredCpu[key], 3),
    n(current.measuredCpu[key] / previous.measuredCpu[key], 2),
  ]),
)}

What the model decides from each (this run / previous run):

${table(['workload', 'tasks needed', 'tasks by CPU', 'wall at deployed maxTasks', ''], decisions)}

Per-unit CPU moves with the machine's load (each run shares 2 cores with whatever else runs);
a decision that differs between runs is one that sits near a CPU bound.`;
}

function renderDocument(measured: MeasuredRun, previous: RecordedRun | undefined): string {
  const m = measured.measurements;
  const figures = capacityFigures(m);
  const date = new Date().toISOString().slice(0, 10);
  const shapes = PROFILE_MIX.map((shape) => {
    const adGroups = shape.campaigns * shape.adGroupsPerCampaign;
    return [
      shape.name,
      `${n(shape.share * 100)} %`,
      n(shape.campaigns),
      n(adGroups),
      n(adGroups * shape.keywordsPerAdGroup),
      n(listPagesOf(shape, SETTINGS.listPageSize)),
      'assumed',
    ];
  });
  const syncRows = figures.sync.flatMap(({ profiles, estimate }) =>
    workloadRows(`sync ${n(profiles)} profiles`, estimate, workers['profile-sync'].maxTasks),
  );
  const monthRows = figures.months.map(({ profiles, cost }) => [
    n(profiles),
    n(cost.taskHours, 0),
    usd(cost.fargate),
    n(cost.sqsRequests),
    usd(cost.sqs),
    usd(cost.eventBridge),
    usd(cost.total),
  ]);
  const deployments = (['profile-sync', 'bulk-item', 'backfill-chunk'] as const).map((name) => {
    const w = workers[name];
    return [
      name,
      n(w.concurrency),
      `${n(w.minTasks)}–${n(w.maxTasks)}`,
      `${n(w.cpu / 1024, 2)} vCPU, ${n(w.memoryMiB / 1024, 1)} GB`,
      `$${n(fargateTaskHourPrice(w, PRICES), 5)}`,
      n(idleReceivesPerMonth(w, SETTINGS, PLATFORM)),
    ];
  });
  const twenty = figures.sync.at(-1)?.estimate as WorkloadEstimate;
  const twentyMonth = figures.months.at(-1)?.cost;
  return `# Capacity model

Written by \`npm run bench -- capacity\` on ${date} (bench/capacity.ts; the arithmetic is
contract/capacity.ts, which \`test/infra/capacity.test.ts\` also runs against infra/workers.ts).
**Measured on a loaded 2-core machine** (load average ${n(measured.loadAverage, 1)} on
${cpus().length} cores when the run ended), against the in-process Ads sandbox and LocalStack:
per-call CPU is the worker process's own accounting and is inflated by the contention, so the
task counts below err on the high side. Every figure's source is stated: **measured** (this
run), **assumed** (stated below, with where the number comes from) or **derived** (computed
by the model from the other two).

## Measured in this run

| what | value | how | source |
| --- | --- | --- | --- |
| profile-sync CPU per Ads list page (incl. its upsert) | ${n(m.syncCpuMsPerCall, 3)} ms | the page loop of domain/sync/pull.ts (list a page, its ids, its upsert; without the run's checkpoint bookkeeping) on ${MEASURED_SIZES.profiles} sandbox profiles (12 pages each), ${workers['profile-sync'].concurrency} at once for ${SECONDS} s in a child process: ${n(measured.sync.units)} syncs, ${n(measured.sync.calls)} pages, ${n(measured.sync.cpuMs)} CPU ms | measured |
| profile-sync wall time per list page, sandbox | ${n(measured.sandboxLatency.syncMsPerCall, 1)} ms | the same run: each sync's duration / its pages (the loaded machine's, not Amazon's: not used by the model) | measured |
| bulk-item CPU per bulk PUT of ${n(SETTINGS.bulkBatchSize)} keywords | ${n(m.bulkCpuMsPerPut, 3)} ms | \`AdsApiClient.updateKeywords\` with full batches, ${workers['bulk-item'].concurrency} at once for ${SECONDS} s in a child process: ${n(measured.bulk.calls)} PUTs, ${n(measured.bulk.cpuMs)} CPU ms | measured |
| bulk-item wall time per bulk PUT, sandbox | ${n(measured.sandboxLatency.bulkMsPerPut, 1)} ms | the same run (not used by the model) | measured |
| chassis CPU per SQS message (QueueWorker, tracing off) | ${n(m.queueCpuMsPerMessage, 3)} ms | ${n(QUEUE_MESSAGES)} no-op messages drained by QueueWorker (bench/queue-worker-run.ts) at ${n(measured.queueRate)} msg/s | measured |

Not measured here: the bulk item rows' own database work (claim, record, release in
domain/bulk/apply.ts) — the bulk CPU figure is the Ads call's client side plus the chassis's
per-message cost; the backfill's rows (database-bound: the model uses an assumed rate).

<!-- capacity-measurements ${JSON.stringify(measured.measuredCpu)} -->
<!-- capacity-run ${JSON.stringify({ date, loadAverage: measured.loadAverage })} -->

## Against the previous run

${reproducibility(measured, previous, date)}

## Assumptions

| assumption | value | where it comes from | source |
| --- | --- | --- | --- |
| Amazon's time per list page (incl. its upsert) | ${n(ADS_LATENCY.syncMsPerCall)} ms | Amazon publishes none; the order of the sandbox's on this machine (measured above), which swings with the load | assumed |
| Amazon's time per bulk PUT of 1,000 | ${n(ADS_LATENCY.bulkMsPerPut)} ms | as above | assumed |
| per-profile Ads API rate | ${n(RATES.profileRatePerSecond)} req/s | the sandbox's default profile bucket (sandbox/ads-api/server.ts); Amazon publishes none | assumed |
| Ads API client rate, whole fleet | ${n(RATES.clientRatePerSecond)} req/s | ADFLEET_ADS_CLIENT_RATE_LIMIT default (contract/config.ts) = the sandbox's client bucket | assumed |
| list page size | ${n(SETTINGS.listPageSize)} entities | PAGE_SIZE in domain/sync/pull.ts | fleet setting |
| bulk items per PUT | ${n(SETTINGS.bulkBatchSize)} | ADFLEET_BULK_BATCH_SIZE default (the SP v3 per-call maximum) | fleet setting |
| bulk batches of one profile in flight | ${n(SETTINGS.bulkProfileInFlight)} | ADFLEET_BULK_PROFILE_IN_FLIGHT default | fleet setting |
| backfill rows per chunk message | ${n(SETTINGS.backfillRowsPerChunk)} | default batch 1,000 × 20 batches per chunk (domain/backfill/backfills) | fleet setting |
| profiles one 1,000,000-item bulk job spans | ${n(PLATFORM.bulkJobProfiles)} | planning assumption | assumed |
| backfill rows/s per partition; partitions | ${n(PLATFORM.backfillRowsPerSecondPerPartition)}; ${n(PLATFORM.backfillPartitions)} | planning assumption (database-bound; not measured here) | assumed |
| CPU a task may use before another is added | ${n(PLATFORM.cpuUtilisationTarget * 100)} % of its vCPU | planning assumption | assumed |
| full syncs per month | ${n(PLATFORM.syncsPerMonth)} | the nightly schedule (contract/topology.ts) | fleet setting |
| SQS standard, per million requests | ${usd(PRICES.sqsPerMillionRequests)} | us-east-1 list price; not confirmed from an AWS page in this run (free tier ignored; each request ≤ 64 KB) | assumed |
| EventBridge custom events, per million | ${usd(PRICES.eventBridgePerMillionEvents)} | us-east-1, from third-party pricing guides quoting AWS (cloudburn.io, March 2026), not AWS's page | assumed |
| Fargate Linux/x86, per vCPU-hour | ${usd(PRICES.fargateVcpuHour)} ($0.04048) | us-east-1, from third-party pricing guides quoting AWS (vantage.sh; factualminds.com, June 2026), not AWS's page | assumed |
| Fargate Linux/x86, per GB-hour | $0.004445 | as above | assumed |
| prices taken | ${PRICES_TAKEN} | | |

Profile mix (assumed; Amazon publishes no distribution — replace with the \`profiles\` table's counts):

${table(['shape', 'share', 'campaigns', 'ad groups', 'keywords', 'list pages per sync', 'source'], shapes)}

## Model

- A sync holds one handler slot for its whole run and pulls its pages one after another, at
  most at the profile's rate (and at most 1 / Amazon's page time). The client rate is only
  reached with client rate / per-sync rate syncs at once: **tasks by slots** = that / the
  task's concurrency. **Tasks by CPU** = (request rate × CPU per call + message rate × CPU per
  message) / (task vCPU × utilisation target).
- The **floor** is the larger of: all requests at the client rate (or at profiles × profile
  rate, when there are too few profiles to fill it), and the largest profile at its own rate.
- **Tasks to drain within the objective**: the same arithmetic at the request rate that
  finishes the workload within its queue's maxMessageAgeSeconds (contract/topology.ts), the
  age the oldest-message alarm watches. Not for a backfill, whose chunks are chained.
- **Wall time at maxTasks** is the requests at the rate the deployed maxTasks can sustain
  (slots and CPU), never below the largest profile's own time. Scale-out time (alarm periods,
  task start) is not modelled.
- A bulk job's PUTs are spread over its profiles; each profile takes at most its rate and
  ${n(SETTINGS.bulkProfileInFlight)} batches at once.
- SQS: sends are batched by 10 (shared/messaging/producer.ts); receives assume full batches of
  10 (a lower bound); each message is deleted on its own (QueueWorker). Not counted:
  ChangeMessageVisibility on deferrals and retries. Idle long polls are counted in the month.

## Deployed bounds (infra/workers.ts)

${table(['service', 'concurrency', 'tasks (min–max)', 'task size', 'per task-hour', 'idle receives/month at minTasks'], deployments)}

## Workloads

${table(
  ['workload', 'figure', 'value', 'source'],
  [
    ...syncRows,
    ...workloadRows(`bulk job ${n(BULK_ITEMS)} items`, figures.bulk, workers['bulk-item'].maxTasks),
    ...workloadRows(
      `backfill ${n(BACKFILL_ROWS)} rows`,
      figures.backfill,
      workers['backfill-chunk'].maxTasks,
    ),
  ],
)}

One run of the bulk job costs about $${n(figures.bulkRunCost, 4)} and one backfill about
$${n(figures.backfillRunCost, 4)} (tasks × wall time at Fargate prices, plus their SQS requests
and events; derived).

## Monthly cost (derived)

Every service at minTasks all month, plus the nightly sync's extra tasks for its wall time,
${n(PLATFORM.syncsPerMonth)} times; bulk jobs and backfills are per run (above).

${table(['profiles', 'task-hours', 'Fargate', 'SQS requests', 'SQS', 'EventBridge', 'total'], monthRows)}

## Against the deployed scaling bounds

With list pages taking ${n(m.syncMsPerCall, 0)} ms (assumed), one sync pulls at most
${n(Math.min(RATES.profileRatePerSecond, 1000 / m.syncMsPerCall), 2)} req/s (its profile allows ${n(RATES.profileRatePerSecond)}):
handler slots, not the rate limit, bound profile-sync. 20,000 profiles need
${n(twenty.tasksNeeded)} profile-sync tasks (by CPU ${n(twenty.tasksByCpu)}, by slots ${n(twenty.tasksBySlots)}) to reach the
${duration(twenty.floorSeconds)} rate-limit floor, and ${n(twenty.tasksForObjective ?? Number.NaN)} to drain within the queue's
${duration(twenty.objectiveSeconds ?? Number.NaN)} freshness objective. The service may scale to
${n(workers['profile-sync'].maxTasks)} tasks: a ${duration(twenty.wallSecondsAtMaxTasks)} nightly sync, at about
${usd(twentyMonth?.total ?? Number.NaN)} a month for the whole fleet. The floor is not the target: ${n(twenty.tasksNeeded)}
tasks would hold ${n(twenty.tasksNeeded * workers['profile-sync'].concurrency)} Postgres connections (a task's pool is its
concurrency) to save half an hour of a nightly job. Against Amazon the page time is Amazon's,
not the assumption's: with faster pages fewer tasks are needed, with slower ones more.

\`test/infra/capacity.test.ts\` recomputes these figures from the measurements recorded above
(the comment under "Measured in this run") and fails when profile-sync's maxTasks cannot
drain 20,000 profiles within the objective, or bulk-item's cannot reach the 1,000,000-item
job's floor.
`;
}

export async function runCapacityBench(): Promise<void> {
  const env = benchEnv();
  process.stdout.write(
    `\ncapacity: ${SECONDS} s per Ads workload, ${QUEUE_MESSAGES} queue messages; writes ${OUTPUT}\n`,
  );
  const measured = await measure(env);
  const m = measured.measurements;
  printTable("measured per-unit costs (wall: the sandbox on this machine; the model assumes Amazon's)", [
    ['unit', 'CPU ms', 'wall ms'],
    [
      'profile-sync list page',
      m.syncCpuMsPerCall.toFixed(3),
      measured.sandboxLatency.syncMsPerCall.toFixed(1),
    ],
    [
      `bulk PUT of ${SETTINGS.bulkBatchSize}`,
      m.bulkCpuMsPerPut.toFixed(3),
      measured.sandboxLatency.bulkMsPerPut.toFixed(1),
    ],
    ['SQS message (QueueWorker)', m.queueCpuMsPerMessage.toFixed(3), '–'],
  ]);
  const figures = capacityFigures(m);
  printTable('model', [
    ['workload', 'Ads requests', 'floor', 'tasks needed', 'wall at maxTasks'],
    ...figures.sync.map(({ profiles, estimate }) => [
      `sync ${profiles} profiles`,
      String(estimate.adsRequests),
      duration(estimate.floorSeconds),
      String(estimate.tasksNeeded),
      duration(estimate.wallSecondsAtMaxTasks),
    ]),
    [
      `bulk ${BULK_ITEMS} items`,
      String(figures.bulk.adsRequests),
      duration(figures.bulk.floorSeconds),
      String(figures.bulk.tasksNeeded),
      duration(figures.bulk.wallSecondsAtMaxTasks),
    ],
    [
      `backfill ${BACKFILL_ROWS} rows`,
      '0',
      duration(figures.backfill.floorSeconds),
      String(figures.backfill.tasksNeeded),
      duration(figures.backfill.wallSecondsAtMaxTasks),
    ],
  ]);
  const previous = existsSync(OUTPUT) ? previousRun(readFileSync(OUTPUT, 'utf8')) : undefined;
  writeFileSync(OUTPUT, renderDocument(measured, previous));
  process.stdout.write(`\nwrote ${OUTPUT}\n`);
}
