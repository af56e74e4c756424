import { configSchema } from './config.ts';
import { topology } from './topology.ts';

/**
 * The capacity model: what a workload costs in requests, time, tasks and money, from stated
 * assumptions and measured per-unit costs. Pure arithmetic and nothing else, so the capacity
 * benchmark (which measures and writes docs/capacity.md) and the infra test (which checks the
 * CDK's scaling bounds against it) compute the same figures.
 */

/** One kind of profile in the fleet's mix. */
export interface ProfileShape {
  readonly name: string;
  /** Fraction of all profiles (the shares of a mix add up to 1). */
  readonly share: number;
  readonly campaigns: number;
  readonly adGroupsPerCampaign: number;
  readonly keywordsPerAdGroup: number;
}

/**
 * Assumed mix: most sellers run a handful of campaigns, a quarter are mid-sized, one in
 * twenty is an agency-scale account. Amazon publishes no distribution; this is a planning
 * assumption to be replaced with the fleet's own counts (`profiles` table) once it runs.
 */
export const PROFILE_MIX: readonly ProfileShape[] = [
  { name: 'small', share: 0.7, campaigns: 5, adGroupsPerCampaign: 3, keywordsPerAdGroup: 20 },
  { name: 'medium', share: 0.25, campaigns: 50, adGroupsPerCampaign: 5, keywordsPerAdGroup: 30 },
  { name: 'large', share: 0.05, campaigns: 300, adGroupsPerCampaign: 10, keywordsPerAdGroup: 50 },
];

/** Rates the Ads API allows; Amazon publishes neither, so both are assumptions. */
export interface RateAssumptions {
  /** Sustained requests/s one profile gets (the sandbox's default profile bucket). */
  readonly profileRatePerSecond: number;
  /** Sustained requests/s of the whole API client (ADFLEET_ADS_CLIENT_RATE_LIMIT's default). */
  readonly clientRatePerSecond: number;
}

/** What the fleet's own settings fix (contract/config.ts defaults, the sync page size). */
export interface FleetSettings {
  /** Entities per v3 list call (domain/sync/pull.ts PAGE_SIZE). */
  readonly listPageSize: number;
  /** Items per bulk PUT (ADFLEET_BULK_BATCH_SIZE). */
  readonly bulkBatchSize: number;
  /** Batches of one profile in flight fleet-wide (ADFLEET_BULK_PROFILE_IN_FLIGHT). */
  readonly bulkProfileInFlight: number;
  /** Rows per backfill batch × batches per chunk: rows one BackfillChunk message covers. */
  readonly backfillRowsPerChunk: number;
  /** Long-poll wait of every poller (ADFLEET_POLL_WAIT_SECONDS). */
  readonly pollWaitSeconds: number;
}

/** Per-unit CPU costs measured by `npm run bench -- capacity`. */
export interface MeasuredCpu {
  /** Worker CPU per Ads list page, including the page's upsert (profile-sync). */
  readonly syncCpuMsPerCall: number;
  /** Worker CPU per bulk PUT of a full batch (client side: request, 207 mapping). */
  readonly bulkCpuMsPerPut: number;
  /** Chassis CPU per SQS message (receive, validate, delete) with tracing off. */
  readonly queueCpuMsPerMessage: number;
}

/**
 * How long Amazon takes to answer, which sets how many handler slots a rate needs. Assumed:
 * Amazon publishes no latency, and the sandbox's on a loaded 2-core machine measures the
 * machine (it swung from 0.5 s to 0.9 s a page between two runs). Replace with the fleet's
 * own Ads call durations once it runs against Amazon.
 */
export interface AdsLatency {
  /** Wall time of one list page and its upsert, seen by one sync. */
  readonly syncMsPerCall: number;
  /** Wall time of one bulk PUT of a full batch. */
  readonly bulkMsPerPut: number;
}

export const ADS_LATENCY: AdsLatency = { syncMsPerCall: 500, bulkMsPerPut: 1_000 };

/** What the model computes from: the measured CPU and the assumed latency. */
export type Measurements = MeasuredCpu & AdsLatency;

export const modelInputs = (measured: MeasuredCpu, latency: AdsLatency = ADS_LATENCY): Measurements => ({
  ...measured,
  ...latency,
});

/** Assumptions about the platform and how the fleet is used. */
export interface PlatformAssumptions {
  /** Share of a task's vCPU the model lets a workload use before it adds a task. */
  readonly cpuUtilisationTarget: number;
  /** Profiles one 1,000,000-item bulk job spans. */
  readonly bulkJobProfiles: number;
  /** Rows/s one backfill partition writes (database-bound, throttled on its health). */
  readonly backfillRowsPerSecondPerPartition: number;
  /** Partitions a backfill runs in parallel. */
  readonly backfillPartitions: number;
  /** Full syncs of every profile per month (the nightly schedule). */
  readonly syncsPerMonth: number;
  readonly hoursPerMonth: number;
}

/** List prices, us-east-1. */
export interface Prices {
  readonly sqsPerMillionRequests: number;
  readonly eventBridgePerMillionEvents: number;
  readonly fargateVcpuHour: number;
  readonly fargateGbHour: number;
}

/** A service's deployment as far as the model needs it (a subset of infra's WorkerDeployment). */
export interface ServiceBounds {
  readonly concurrency: number;
  readonly minTasks: number;
  readonly maxTasks: number;
  /** CPU units (1024 = one vCPU). */
  readonly cpu: number;
  readonly memoryMiB: number;
}

export interface SqsRequests {
  readonly sends: number;
  readonly receives: number;
  readonly deletes: number;
}

export interface WorkloadEstimate {
  readonly adsRequests: number;
  readonly messages: number;
  readonly sqs: SqsRequests;
  readonly eventBridgeEvents: number;
  /** Shortest possible wall time under the rate limits (seconds). */
  readonly floorSeconds: number;
  /** Which limit sets the floor. */
  readonly floorLimit: string;
  /** Tasks to hold the floor's rate: by CPU, by handler slots, and the larger. */
  readonly tasksByCpu: number;
  readonly tasksBySlots: number;
  readonly tasksNeeded: number;
  /** Wall time with the deployed maxTasks (seconds). */
  readonly wallSecondsAtMaxTasks: number;
  /**
   * The queue's freshness objective (its maxMessageAgeSeconds): a workload enqueued at once
   * must drain within it, or the age-of-oldest-message alarm fires. Undefined where messages
   * are chained (a backfill enqueues each chunk after the last), so age is not the job's time.
   */
  readonly objectiveSeconds: number | undefined;
  /** Tasks to drain within the objective (never fewer than 1; the floor's tasks if it is below the floor). */
  readonly tasksForObjective: number | undefined;
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);
const vcpuOf = (bounds: ServiceBounds) => bounds.cpu / 1024;

/** Pages of the three list calls a profile of this shape needs. */
export function listPagesOf(shape: ProfileShape, pageSize: number): number {
  const adGroups = shape.campaigns * shape.adGroupsPerCampaign;
  const keywords = adGroups * shape.keywordsPerAdGroup;
  // A list always costs one call, even when it comes back empty.
  return [shape.campaigns, adGroups, keywords].reduce(
    (pages, count) => pages + Math.max(1, ceilDiv(count, pageSize)),
    0,
  );
}

/** Sends of `messages` in SendMessageBatch calls of 10 (shared/messaging/producer.ts). */
const batchedSends = (messages: number) => ceilDiv(messages, 10);

/**
 * Receives while a backlog is drained: full batches of 10 (a lower bound; a thinly filled
 * queue returns fewer per receive). Deletes are one DeleteMessage per message, as QueueWorker
 * acknowledges each message on its own.
 */
function drainRequests(messages: number, sends: number): SqsRequests {
  return { sends, receives: ceilDiv(messages, 10), deletes: messages };
}

/** Tasks to sustain `callsPerSecond` given CPU per call and per message, and the slots it holds. */
function tasksFor(
  bounds: ServiceBounds,
  platform: PlatformAssumptions,
  cpuSecondsPerSecond: number,
  slotsHeld: number,
) {
  const tasksByCpu = Math.max(
    1,
    ceilDiv(cpuSecondsPerSecond, vcpuOf(bounds) * platform.cpuUtilisationTarget),
  );
  const tasksBySlots = Math.max(1, ceilDiv(slotsHeld, bounds.concurrency));
  return { tasksByCpu, tasksBySlots, tasksNeeded: Math.max(tasksByCpu, tasksBySlots) };
}

/**
 * Syncing every one of `profiles` profiles (SyncAllProfilesRequested → one SyncProfile per
 * profile). A sync holds one handler slot for its whole run and pulls its pages one after
 * another, at most at the profile's rate, so the client's rate is reached only with
 * clientRate / perSyncRate syncs running at once.
 */
export function profileSyncEstimate(
  profiles: number,
  mix: readonly ProfileShape[],
  rates: RateAssumptions,
  settings: FleetSettings,
  measured: Measurements,
  platform: PlatformAssumptions,
  bounds: ServiceBounds,
): WorkloadEstimate {
  const pagesPerProfile = mix.reduce(
    (sum, shape) => sum + shape.share * listPagesOf(shape, settings.listPageSize),
    0,
  );
  const largestPages = Math.max(...mix.map((shape) => listPagesOf(shape, settings.listPageSize)));
  // One profile list call on the fan-out, then every profile's pages.
  const adsRequests = 1 + Math.round(profiles * pagesPerProfile);
  // The floor is the rate limits' alone: the client's, and the largest profile at its own rate.
  const limitCap = Math.min(rates.clientRatePerSecond, profiles * rates.profileRatePerSecond);
  const byClient = adsRequests / limitCap;
  const byLargest = largestPages / rates.profileRatePerSecond;
  const floorSeconds = Math.max(byClient, byLargest);
  const floorLimit =
    byLargest >= byClient
      ? 'largest profile at its own rate'
      : limitCap === rates.clientRatePerSecond
        ? 'client rate'
        : 'profiles × per-profile rate';
  // What one sync really pulls: pages one after another, so never faster than 1 / page time.
  const perSyncRate = Math.min(rates.profileRatePerSecond, 1000 / measured.syncMsPerCall);
  const messages = profiles + 1;
  const tasksAt = (wantedRate: number) => {
    // Fewer profiles than slots cannot pull more than each one's own sync does.
    const requestRate = Math.min(wantedRate, profiles * perSyncRate);
    const messageRate = (requestRate / adsRequests) * messages;
    const cpu =
      (requestRate * measured.syncCpuMsPerCall + messageRate * measured.queueCpuMsPerMessage) / 1000;
    const slots = Math.min(profiles, Math.ceil(requestRate / perSyncRate));
    return tasksFor(bounds, platform, cpu, slots);
  };
  const deployedRate = Math.min(
    limitCap,
    bounds.maxTasks * bounds.concurrency * perSyncRate,
    (bounds.maxTasks * vcpuOf(bounds) * platform.cpuUtilisationTarget * 1000) /
      (measured.syncCpuMsPerCall + (messages / adsRequests) * measured.queueCpuMsPerMessage),
  );
  const objectiveSeconds = topology.queues['profile-sync'].maxMessageAgeSeconds;
  return {
    adsRequests,
    messages,
    // The bus delivers the fan-out event as one message; the fan-out sends the rest in batches.
    sqs: drainRequests(messages, 1 + batchedSends(profiles)),
    // SyncAllProfilesRequested, then one ProfileSynced per profile.
    eventBridgeEvents: 1 + profiles,
    floorSeconds,
    floorLimit,
    ...tasksAt(limitCap),
    wallSecondsAtMaxTasks: Math.max(adsRequests / deployedRate, largestPages / perSyncRate),
    objectiveSeconds,
    tasksForObjective: tasksAt(Math.min(limitCap, adsRequests / objectiveSeconds)).tasksNeeded,
  };
}

/**
 * One bulk job of `items` items spread evenly over `platform.bulkJobProfiles` profiles: one
 * PUT per batch, at most `bulkProfileInFlight` batches of a profile at once.
 */
export function bulkJobEstimate(
  items: number,
  rates: RateAssumptions,
  settings: FleetSettings,
  measured: Measurements,
  platform: PlatformAssumptions,
  bounds: ServiceBounds,
): WorkloadEstimate {
  const puts = ceilDiv(items, settings.bulkBatchSize);
  const perProfilePuts = ceilDiv(puts, platform.bulkJobProfiles);
  const perProfileRate = Math.min(
    rates.profileRatePerSecond,
    settings.bulkProfileInFlight * (1000 / measured.bulkMsPerPut),
  );
  const rateCap = Math.min(rates.clientRatePerSecond, platform.bulkJobProfiles * perProfileRate);
  const byClient = puts / rates.clientRatePerSecond;
  const byProfile = perProfilePuts / perProfileRate;
  const floorSeconds = Math.max(byClient, byProfile);
  const floorLimit =
    byClient >= byProfile
      ? 'client rate'
      : perProfileRate === rates.profileRatePerSecond
        ? 'per-profile rate'
        : 'batches in flight per profile';
  const messages = puts + 1;
  const tasksAt = (putRate: number) => {
    const cpu = (putRate * (measured.bulkCpuMsPerPut + measured.queueCpuMsPerMessage)) / 1000;
    // A slot is held for the PUT's duration; a deferred batch (profile busy) gives its slot back.
    const slots = Math.ceil(putRate * (measured.bulkMsPerPut / 1000));
    return tasksFor(bounds, platform, cpu, slots);
  };
  const tasks = tasksAt(rateCap);
  const objectiveSeconds = topology.queues['bulk-item'].maxMessageAgeSeconds;
  const deployedRate = Math.min(
    rateCap,
    (bounds.maxTasks * bounds.concurrency * 1000) / measured.bulkMsPerPut,
    (bounds.maxTasks * vcpuOf(bounds) * platform.cpuUtilisationTarget * 1000) /
      (measured.bulkCpuMsPerPut + measured.queueCpuMsPerMessage),
  );
  return {
    adsRequests: puts,
    messages,
    sqs: drainRequests(messages, 1 + batchedSends(puts)),
    // BulkJobSubmitted and BulkJobCompleted.
    eventBridgeEvents: 2,
    floorSeconds,
    floorLimit,
    ...tasks,
    wallSecondsAtMaxTasks: Math.max(puts / deployedRate, byProfile),
    objectiveSeconds,
    tasksForObjective: tasksAt(Math.min(rateCap, puts / objectiveSeconds)).tasksNeeded,
  };
}

/** A backfill of `rows` rows: no Ads calls; each chunk message sends the next one. */
export function backfillEstimate(
  rows: number,
  settings: FleetSettings,
  measured: Measurements,
  platform: PlatformAssumptions,
  bounds: ServiceBounds,
): WorkloadEstimate {
  const chunks = ceilDiv(rows, settings.backfillRowsPerChunk);
  const floorSeconds = rows / (platform.backfillRowsPerSecondPerPartition * platform.backfillPartitions);
  const messageRate = chunks / floorSeconds;
  // Only the chassis's share is measured here; the rows' own CPU is the database's.
  const cpu = (messageRate * measured.queueCpuMsPerMessage) / 1000;
  const tasks = tasksFor(bounds, platform, cpu, platform.backfillPartitions);
  const deployedPartitions = Math.min(platform.backfillPartitions, bounds.maxTasks * bounds.concurrency);
  return {
    adsRequests: 0,
    messages: chunks,
    // Each chunk is sent by its predecessor (the first by the CLI) and, a chain holding one
    // message at a time, received on its own.
    sqs: { sends: chunks, receives: chunks, deletes: chunks },
    eventBridgeEvents: 1,
    floorSeconds,
    floorLimit: 'database throughput per partition',
    ...tasks,
    wallSecondsAtMaxTasks: rows / (platform.backfillRowsPerSecondPerPartition * deployedPartitions),
    objectiveSeconds: undefined,
    tasksForObjective: undefined,
  };
}

/** Receives an idle service makes all month: every poller of every running task long-polls. */
export function idleReceivesPerMonth(
  bounds: ServiceBounds,
  settings: FleetSettings,
  platform: PlatformAssumptions,
): number {
  // QueueWorker runs ceil(concurrency / 10) + 1 pollers (shared/messaging/queue-worker.ts).
  const pollers = ceilDiv(bounds.concurrency, 10) + 1;
  return (bounds.minTasks * pollers * platform.hoursPerMonth * 3600) / settings.pollWaitSeconds;
}

export const fargateTaskHourPrice = (bounds: ServiceBounds, prices: Prices) =>
  vcpuOf(bounds) * prices.fargateVcpuHour + (bounds.memoryMiB / 1024) * prices.fargateGbHour;

export const sqsRequestTotal = (sqs: SqsRequests) => sqs.sends + sqs.receives + sqs.deletes;

export interface MonthlyCost {
  readonly fargate: number;
  readonly sqs: number;
  readonly eventBridge: number;
  readonly total: number;
  readonly sqsRequests: number;
  readonly taskHours: number;
}

/**
 * A month of a fleet: every service at minTasks all month (idle long polls included), plus,
 * for each run of a workload, the tasks above minTasks it needs for its wall time.
 */
export function monthlyCost(
  services: readonly {
    readonly bounds: ServiceBounds;
    readonly runs: readonly { readonly estimate: WorkloadEstimate; readonly perMonth: number }[];
  }[],
  settings: FleetSettings,
  platform: PlatformAssumptions,
  prices: Prices,
): MonthlyCost {
  let fargate = 0;
  let sqsRequests = 0;
  let events = 0;
  let taskHours = 0;
  for (const { bounds, runs } of services) {
    const price = fargateTaskHourPrice(bounds, prices);
    let hours = bounds.minTasks * platform.hoursPerMonth;
    sqsRequests += idleReceivesPerMonth(bounds, settings, platform);
    for (const { estimate, perMonth } of runs) {
      const tasks = Math.min(bounds.maxTasks, estimate.tasksNeeded);
      hours += perMonth * Math.max(0, tasks - bounds.minTasks) * (estimate.wallSecondsAtMaxTasks / 3600);
      sqsRequests += perMonth * sqsRequestTotal(estimate.sqs);
      events += perMonth * estimate.eventBridgeEvents;
    }
    taskHours += hours;
    fargate += hours * price;
  }
  const sqs = (sqsRequests / 1e6) * prices.sqsPerMillionRequests;
  const eventBridge = (events / 1e6) * prices.eventBridgePerMillionEvents;
  return { fargate, sqs, eventBridge, total: fargate + sqs + eventBridge, sqsRequests, taskHours };
}

// The fleet's defaults, read from the config schema itself so the model follows them.
const defaults = configSchema.parse({ DATABASE_URL: 'postgres://local/adfleet', REDIS_URL: 'redis://local' });

/** The assumptions docs/capacity.md states, each with where it comes from there. */
export const RATES: RateAssumptions = {
  profileRatePerSecond: 10,
  clientRatePerSecond: defaults.ADFLEET_ADS_CLIENT_RATE_LIMIT,
};
export const SETTINGS: FleetSettings = {
  listPageSize: 100,
  bulkBatchSize: defaults.ADFLEET_BULK_BATCH_SIZE,
  bulkProfileInFlight: defaults.ADFLEET_BULK_PROFILE_IN_FLIGHT,
  backfillRowsPerChunk: 1_000 * 20,
  pollWaitSeconds: defaults.ADFLEET_POLL_WAIT_SECONDS,
};
export const PLATFORM: PlatformAssumptions = {
  cpuUtilisationTarget: 0.7,
  bulkJobProfiles: 100,
  backfillRowsPerSecondPerPartition: 5_000,
  backfillPartitions: 4,
  syncsPerMonth: 30,
  hoursPerMonth: 730,
};
export const PRICES: Prices = {
  sqsPerMillionRequests: 0.4,
  eventBridgePerMillionEvents: 1.0,
  fargateVcpuHour: 0.04048,
  fargateGbHour: 0.004445,
};
