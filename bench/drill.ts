/**
 * `npm run drill [-- --minutes N] [-- --short]`: the fault drill. The three workers, two
 * processes each, under a supervisor that restarts what exits, on a mixed workload — a bulk
 * job submitted through `adfleet bulk submit` (5,000 items over 100 profiles; --short 300
 * over 10), a sync of every sandbox profile and a backfill of seeded campaigns — while
 * faults are injected at random times: SIGKILLs and SIGTERMs, poison messages of every
 * kind, Redis down, a Postgres outage (every connection cut and refused), an Ads 5xx storm,
 * refused credentials, a held row lock on the backfill's next batch and (full drill) the
 * emulator down. Every outage goes through the drill's own TCP proxies, never the shared
 * services; the Postgres "restart" is that proxy cutting the connections, not a restart of
 * the shared server. Tracing is on: every process exports to an in-process OTLP receiver,
 * and every span's attributes, events, status and resource are searched for the seeded
 * secrets, as are the log lines and the DLQ reasons. It ends with a table and exits 1 when
 * a figure misses. Recovery from an outage is every worker that was ready when it began
 * being ready again (the next fault waits for it); from a SIGKILL or SIGTERM, the stopped
 * worker's replacement being ready, measured while the next faults go on.
 *
 * Bulk items applied twice are counted in two rows: an item whose Ads call a SIGKILL cut off
 * after Amazon applied it is applied again (delivery is at least once; the value is the
 * same), which the drill reports on its own; any other second application is a miss.
 */
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { startBackfill } from '../domain/backfill/lifecycle.ts';
import { BACKFILLS } from '../domain/backfill/registry.ts';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import { seedCampaigns } from '../scripts/fixtures/seed-campaigns.ts';
import { AdsApiClient } from '../shared/ads/client.ts';
import { LwaTokenProvider } from '../shared/ads/lwa.ts';
import { migrate } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { FLEET_ATTRIBUTES } from '../shared/messaging/trace-context.ts';
import { checkResult, installWriteCounter } from '../test/support/backfill-result.ts';
import { createTestDatabase, ensureTemplate } from '../test/support/database.ts';
import { stackEnv, testConfig, workerEnv } from '../test/support/env.ts';
import { startOtlpReceiver } from '../test/support/otlp-receiver.ts';
import { type NodeProcess, spawnNode } from '../test/support/processes.ts';
import { freePort, startTcpProxy } from '../test/support/tcp-proxy.ts';
import { createTestTopology } from '../test/support/topology.ts';
import { checkBulkJob, itemsHeldBy, planBulkRows, writeBulkFile } from './drill-bulk.ts';
import { benchEnv } from './support.ts';

const args = process.argv.slice(2);
const short = args.includes('--short');
const minutesArg = args.indexOf('--minutes');
const minutes = minutesArg >= 0 ? Number(args[minutesArg + 1]) : short ? 1 : 5;
if (!Number.isFinite(minutes) || minutes <= 0)
  throw new Error(`--minutes takes a positive number, not ${args[minutesArg + 1]}`);

const SECRET = `drill-secret-${randomUUID()}`;
const REFRESH = `drill-refresh-${randomUUID()}`;
const CLIENT_ID = 'drill-client';
const WORKERS = ['profile-sync', 'bulk-item', 'backfill-chunk'] as const;
const sizes = short
  ? { profiles: 10, campaignsPerProfile: 2, adGroupsPerCampaign: 2, keywordsPerAdGroup: 10 }
  : { profiles: 100, campaignsPerProfile: 3, adGroupsPerCampaign: 2, keywordsPerAdGroup: 20 };
const CAMPAIGNS = short ? 5_000 : 200_000;
/** Bulk rows per sandbox profile (two campaign budgets, one id Amazon does not know, the rest keywords). */
const BULK_ROWS_PER_PROFILE = short ? 30 : 50;
/**
 * Every sandbox call takes this long, so a SIGKILL or SIGTERM finds bulk batches mid-call
 * and the job's batches spread over the faults instead of finishing before most of them.
 */
const SANDBOX_LATENCY = { latencyMs: short ? 50 : 250 } as const;

const drillStarted = Date.now();
const log = (message: string) =>
  process.stdout.write(`drill ${((Date.now() - drillStarted) / 1000).toFixed(1)} s: ${message}\n`);
benchEnv(); // the emulator's credentials into process.env, or a clear error when the stack is down
const env = stackEnv();
await ensureTemplate(env.DATABASE_URL as string, (url) => migrate(url));
const topology = await createTestTopology('drill');
const db = await createTestDatabase(env.DATABASE_URL as string);
const sandbox = await startAdsSandbox({
  sizes,
  credentials: { clientId: CLIENT_ID, clientSecret: SECRET, refreshToken: REFRESH },
});
const proxy = async (url: string) => {
  const parsed = new URL(url);
  const tcp = await startTcpProxy(Number(parsed.port), parsed.hostname);
  const through = new URL(url);
  through.host = `127.0.0.1:${tcp.port}`;
  return { tcp, url: through.toString() };
};
const receiver = await startOtlpReceiver();
const telemetry = { OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
const redis = await proxy(env.REDIS_URL as string);
const postgres = await proxy(db.url);
const emulator = await proxy(env.AWS_ENDPOINT_URL as string);

log('stack ready');
// The bulk file is planned from the sandbox before any fault (a client of its own, no fleet
// limiter), while the campaigns are seeded and the workers start.
const plannedBulkRows = planBulkRows(
  new AdsApiClient({
    baseUrl: sandbox.url,
    clientId: CLIENT_ID,
    tokens: new LwaTokenProvider({
      tokenUrl: `${sandbox.url}/auth/o2/token`,
      clientId: CLIENT_ID,
      clientSecret: SECRET,
      refreshToken: REFRESH,
    }),
  }),
  BULK_ROWS_PER_PROFILE,
);
await seedCampaigns(db.pool, { profiles: 50, campaigns: CAMPAIGNS });
await installWriteCounter(db.pool);
log(`${CAMPAIGNS} campaigns seeded`);

interface Slot {
  readonly name: (typeof WORKERS)[number];
  readonly healthPort: number;
  process: NodeProcess;
  expectedExit: boolean;
}
const allLogs: NodeProcess[] = [];
let crashes = 0;
// Node's compile cache keeps the compiled (and type-stripped) modules between the drill's
// many process starts: one measurement on this machine, a worker's imports took 2.2–2.4 CPU
// seconds with it against 2.6–3.3 without.
const compileCache = join(tmpdir(), 'adfleet-drill-compile-cache');
const fleetEnv = (overrides: Record<string, string>) =>
  workerEnv(topology.prefix, {
    NODE_COMPILE_CACHE: compileCache,
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    AWS_ENDPOINT_URL: emulator.url,
    ADFLEET_ADS_API_URL: sandbox.url,
    ADFLEET_ADS_CLIENT_ID: CLIENT_ID,
    ADFLEET_ADS_CLIENT_SECRET: SECRET,
    ADFLEET_ADS_REFRESH_TOKEN: REFRESH,
    ...telemetry,
    ...overrides,
  });
function spawnWorker(slot: Omit<Slot, 'process' | 'expectedExit'>): NodeProcess {
  const child = spawnNode(
    `workers/${slot.name}/main.ts`,
    fleetEnv({
      ADFLEET_HEALTH_PORT: String(slot.healthPort),
      ADFLEET_CONCURRENCY: '4',
      ADFLEET_POLL_WAIT_SECONDS: '1',
      ADFLEET_DRAIN_TIMEOUT_MS: '5000',
      // Small batches: the job is many Ads calls, so faults land in the middle of it.
      ADFLEET_BULK_BATCH_SIZE: '5',
      ADFLEET_BULK_SWEEP_INTERVAL_MS: '5000',
    }),
  );
  allLogs.push(child);
  return child;
}
const slots: Slot[] = [];
for (const name of WORKERS) {
  for (let copy = 0; copy < 2; copy += 1) {
    const base = { name, healthPort: await freePort() };
    slots.push({ ...base, process: spawnWorker(base), expectedExit: false });
  }
}
let supervising = true;
// A supervisor like ECS: a worker that exits is started again; an exit we did not cause is a crash.
const supervisor = (async () => {
  while (supervising) {
    for (const slot of slots) {
      if (slot.process.child.exitCode !== null || slot.process.child.signalCode !== null) {
        if (!slot.expectedExit) {
          crashes += 1;
          const { exitCode, signalCode } = slot.process.child;
          log(
            `${slot.name} exited unexpectedly (code ${exitCode}, signal ${signalCode}); last output:\n${slot.process.output.join('').slice(-1_500)}\n${slot.process.logs
              .slice(-5)
              .map((line) => JSON.stringify(line))
              .join('\n')}`,
          );
        }
        slot.expectedExit = false;
        slot.process = spawnWorker(slot);
      }
    }
    await sleep(500);
  }
})();

const bulkRows = await plannedBulkRows;
sandbox.admin.reset();
sandbox.admin.injectFaults(SANDBOX_LATENCY);
const config = testConfig({ ADFLEET_RESOURCE_PREFIX: topology.prefix, DATABASE_URL: db.url });
const { messenger } = createMessenger(topology.clients, config);
const startedAt = new Date();
// Through the operator's own command, while the workers start: the file checked, COPYed
// and published as BulkJobSubmitted.
const submit = spawnNode(
  'cli/main.ts',
  fleetEnv({
    DATABASE_URL: db.url,
    AWS_ENDPOINT_URL: env.AWS_ENDPOINT_URL as string,
    LOG_LEVEL: 'warn',
    OTEL_SERVICE_NAME: 'adfleet-cli',
  }),
  ['bulk', 'submit', await writeBulkFile(bulkRows), '--json'],
);
allLogs.push(submit);
await Promise.all(
  slots.map((slot) => slot.process.waitForLog((line) => line.msg === 'worker started', 120_000)),
);
log(`${slots.length} workers started`);
if ((await submit.exited).code !== 0) throw new Error(`bulk submit failed:\n${submit.output.join('')}`);
const bulkJobId = String(submit.logs.find((line) => typeof line.jobId === 'string')?.jobId);
log(`bulk job ${bulkJobId}: ${bulkRows.length} items`);
await messenger.publish('SyncAllProfilesRequested', { reason: 'drill' });
const { job } = await startBackfill(db.pool, messenger, BACKFILLS, {
  name: 'campaign-currency',
  batchSize: 1_000,
  parallel: 2,
  maxRate: short ? 2_000 : 5_000,
});

async function ready(slot: Slot): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${slot.healthPort}/readyz`, { signal: AbortSignal.timeout(1_000) }))
      .ok;
  } catch {
    return false;
  }
}
/** Until every one of `watched` answers ready; infinite past three minutes. */
async function recoveryMs(from: number, watched: readonly Slot[]): Promise<number> {
  while (Date.now() - from < 180_000) {
    if ((await Promise.all(watched.map(ready))).every(Boolean)) return Date.now() - from;
    await sleep(250);
  }
  return Number.POSITIVE_INFINITY;
}
async function readySlots(): Promise<Slot[]> {
  const states = await Promise.all(slots.map(ready));
  return slots.filter((_, index) => states[index]);
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

const poisonBodies = new Set<string>();
async function sendPoison(count: number) {
  const queues = WORKERS.map((name) => topology.state.queues[name].url);
  const kinds: Array<
    () => { body: string; attributes?: Record<string, { DataType: string; StringValue: string }> }
  > = [
    () => ({ body: `{not json ${randomUUID()}` }),
    () => ({ body: JSON.stringify({ type: 'NoSuchType', payload: { id: randomUUID() } }) }),
    () => ({
      body: JSON.stringify({ type: 'SyncProfile', payload: { profileId: 'x', drill: randomUUID() } }),
    }),
    () => ({
      body: JSON.stringify({ type: 'NoSuchType', payload: { id: randomUUID() } }),
      attributes: { [FLEET_ATTRIBUTES.traceparent]: { DataType: 'String', StringValue: 'garbage' } },
    }),
    () => ({
      body: JSON.stringify({ type: 'NoSuchType', payload: { id: randomUUID() } }),
      attributes: { [FLEET_ATTRIBUTES.traceparent]: { DataType: 'String', StringValue: 'x'.repeat(4_000) } },
    }),
    () => ({
      body: JSON.stringify({
        version: '0',
        'detail-type': 'SyncAllProfilesRequested',
        source: 'adfleet',
        id: randomUUID(),
        detail: 'not an object',
      }),
    }),
    () => ({
      body: JSON.stringify({
        type: 'NoSuchType',
        payload: { pad: 'p'.repeat(250 * 1024), id: randomUUID() },
      }),
    }),
  ];
  let next = 0;
  // Ten senders side by side: one at a time, a thousand sends took minutes on a busy machine.
  // One message per send, as a broken producer would: a 250 KiB body fits no batch.
  const sender = async () => {
    for (let index = next++; index < count; index = next++) {
      const { body, attributes } = kinds[index % kinds.length]?.() ?? { body: '' };
      poisonBodies.add(body);
      await topology.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: pick(queues),
          MessageBody: body,
          ...(attributes === undefined ? {} : { MessageAttributes: attributes }),
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: 10 }, sender));
}

const cutFor = async (tcp: { cut(): Promise<void>; restore(): Promise<void> }, ms: number) => {
  await tcp.cut();
  await sleep(ms);
  await tcp.restore();
};
/** SIGTERMed workers that did not exit 0. */
const failedStops: string[] = [];
/** Bulk items a SIGKILL caught mid-call (their Ads call may have reached Amazon). */
const heldByKilled = new Set<number>();
/** Faults that stop a worker, returning its slot (the supervisor starts a replacement). */
const stops: Record<string, () => Promise<Slot>> = {
  sigkill: async () => {
    const slot = pick(slots);
    const victim = slot.process;
    slot.expectedExit = true;
    victim.child.kill('SIGKILL');
    await victim.exited;
    if (slot.name === 'bulk-item' && victim.child.pid !== undefined) {
      for (const id of await itemsHeldBy(db.pool, victim.child.pid)) heldByKilled.add(id);
    }
    return slot;
  },
  sigterm: async () => {
    // A running worker: one still loading its modules has no drain to do yet (Node's default
    // SIGTERM ends it), which says nothing about the drain.
    const running = await readySlots();
    const slot = pick(running.length > 0 ? running : slots);
    slot.expectedExit = true;
    const { code, signal } = await slot.process.stop('SIGTERM');
    // A drain ends in exit 0 within the drain deadline; anything else is a failed stop.
    if (code !== 0) failedStops.push(`${slot.name}: code ${code}, signal ${signal}`);
    return slot;
  },
};
const outages: Record<string, () => Promise<unknown>> = {
  poison: () => sendPoison(short ? 14 : 1_000),
  'redis down': () => cutFor(redis.tcp, short ? 10_000 : 60_000),
  'postgres restart': () => cutFor(postgres.tcp, short ? 5_000 : 15_000),
  'ads 5xx storm': async () => {
    sandbox.admin.injectFaults({ ...SANDBOX_LATENCY, errorRate: 1, status: 503 });
    await sleep(short ? 6_000 : 30_000);
    sandbox.admin.injectFaults(SANDBOX_LATENCY);
  },
  'refused credentials': async () => {
    sandbox.admin.refuseCredentials(true);
    await sleep(short ? 6_000 : 30_000);
    sandbox.admin.refuseCredentials(false);
  },
  'held row lock': async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM campaigns WHERE currency_code IS NULL FOR UPDATE');
    await sleep(short ? 8_000 : 20_000);
    await holder.query('ROLLBACK');
    await holder.end();
  },
  ...(short ? {} : { 'emulator down': () => cutFor(emulator.tcp, 30_000) }),
};
const plan: string[] = short
  ? // No SIGKILL here: a killed worker's messages come back only after their visibility
    // timeout (up to 300 s), longer than a short drill runs; the full drill waits for them.
    ['sigterm', 'poison', 'redis down', 'postgres restart', 'ads 5xx storm', 'refused credentials']
  : [
      ...Array.from({ length: 20 }, () => 'sigkill'),
      ...Array.from({ length: 5 }, () => 'sigterm'),
      'poison',
      'redis down',
      'postgres restart',
      'ads 5xx storm',
      'refused credentials',
      'held row lock',
      'emulator down',
    ].sort(() => Math.random() - 0.5);
// The short drill's faults follow each other within a second or two: its time goes to the
// faults themselves and to the recoveries it measures, not to waiting between them.
const gapMs = short ? 1_000 : Math.max(1_000, (minutes * 60_000) / plan.length / 2);
/**
 * Recovery from a fault: every worker it hit is ready again. An outage hits the workers that
 * were ready when it began, and the next fault waits for them. A stopped worker's recovery
 * is its replacement starting, which the drill measures without waiting for it: a start is
 * seconds of CPU (TypeScript, OpenTelemetry and the AWS SDK loading) that a busy 2-core
 * machine stretches to a minute, and the next faults meet the fleet one worker short.
 */
const recovery: Array<{ fault: string; ms: number }> = [];
const restarts: Array<Promise<void>> = [];
for (const [index, name] of plan.entries()) {
  await sleep(Math.random() * gapMs);
  log(`fault: ${name}`);
  const watched = await readySlots();
  const stop = stops[name];
  let stopped: Slot | undefined;
  if (stop === undefined) await outages[name]?.();
  else stopped = await stop();
  const from = Date.now();
  const measured = recoveryMs(from, stopped === undefined ? watched : [stopped]).then((ms) => {
    recovery[index] = { fault: name, ms };
    log(`recovered from ${name} in ${ms} ms`);
  });
  if (stopped === undefined) await measured;
  else restarts.push(measured);
}
await Promise.all(restarts);

// Done when every profile synced since the start, the backfill completed and the bulk job is final.
const synced = async () =>
  Number(
    (
      await db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM profiles WHERE last_synced_at > $1',
        [startedAt],
      )
    ).rows[0]?.n,
  );
const status = async () =>
  (await db.pool.query<{ status: string }>('SELECT status FROM backfill_jobs WHERE id = $1', [job.id]))
    .rows[0]?.status;
// Long enough for messages a SIGKILL left invisible to come back (profile-sync's 300 s visibility).
const bulkStatus = async () =>
  (await db.pool.query<{ status: string }>('SELECT status FROM bulk_jobs WHERE id = $1', [bulkJobId])).rows[0]
    ?.status;
const bulkFinal = async () =>
  ['COMPLETED', 'COMPLETED_WITH_ERRORS', 'CANCELLED'].includes(`${await bulkStatus()}`);
const finishBy = Date.now() + (short ? 120_000 : 420_000);
while (
  Date.now() < finishBy &&
  ((await synced()) < sizes.profiles || (await status()) !== 'completed' || !(await bulkFinal()))
)
  await sleep(1_000);
log(`workload done ${Math.round((Date.now() - startedAt.getTime()) / 1000)} s after it started`);
supervising = false;
await supervisor;
await Promise.all(
  slots.map((slot) => {
    slot.expectedExit = true;
    return slot.process.stop('SIGTERM');
  }),
);

// Every DLQ, emptied and read (the three side by side).
const dead: Array<{ body: string; reason: string | undefined }> = [];
async function readDeadLetters(name: (typeof WORKERS)[number]) {
  for (;;) {
    const { Messages = [] } = await topology.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: topology.state.queues[name].deadLetterUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        MessageAttributeNames: ['All'],
      }),
    );
    if (Messages.length === 0) break;
    for (const message of Messages) {
      const record = message.MessageAttributes?.[FLEET_ATTRIBUTES.deadLetter]?.StringValue;
      dead.push({
        body: message.Body ?? '',
        reason: record === undefined ? undefined : (JSON.parse(record) as { reason?: string }).reason,
      });
      await topology.clients.sqs.send(
        new DeleteMessageCommand({
          QueueUrl: topology.state.queues[name].deadLetterUrl,
          ReceiptHandle: message.ReceiptHandle,
        }),
      );
    }
  }
}
await Promise.all(WORKERS.map(readDeadLetters));
const result = await checkResult(db.pool);
const bulk = await checkBulkJob(db.pool, sandbox.admin, bulkJobId, bulkRows, heldByKilled);
// Every worker flushed its spans before it exited (each export waits for the receiver's answer).
const spans = receiver.spans;
const services = new Set(spans.map((span) => span.service));
const spanText = (span: (typeof spans)[number]) =>
  JSON.stringify([span.name, span.attributes, span.events, span.statusMessage, span.resource]);
const secretSpans = spans.filter((span) => {
  const text = spanText(span);
  return text.includes(SECRET) || text.includes(REFRESH);
}).length;
const healthyDead = dead.filter((entry) => !poisonBodies.has(entry.body)).length;
const poisonWithReason = dead.filter(
  (entry) => poisonBodies.has(entry.body) && entry.reason !== undefined,
).length;
const everything = allLogs.flatMap((child) => [
  ...child.logs.map((line) => JSON.stringify(line)),
  ...child.output,
]);
const secretsFound =
  everything.filter((line) => line.includes(SECRET) || line.includes(REFRESH)).length +
  dead.filter((entry) => `${entry.reason}`.includes(SECRET) || `${entry.reason}`.includes(REFRESH)).length;

const rows: Array<[string, number | string, boolean]> = [
  ['profiles not synced (work lost)', sizes.profiles - (await synced()), (await synced()) === sizes.profiles],
  [
    'backfill rows not filled (work lost)',
    result.campaigns - result.filled,
    result.filled === result.campaigns,
  ],
  ['backfill rows with a wrong value', result.wrong, result.wrong === 0],
  ['backfill rows written twice', result.maxWrites > 1 ? result.writtenRows : 0, result.maxWrites <= 1],
  ['backfill job completed', (await status()) ?? 'missing', (await status()) === 'completed'],
  ['healthy messages dead-lettered', healthyDead, healthyDead === 0],
  [
    `poison dead-lettered with a reason (of ${poisonBodies.size})`,
    poisonWithReason,
    poisonWithReason === poisonBodies.size,
  ],
  ['crash loops (exits not caused by the drill)', crashes, crashes === 0],
  [
    `SIGTERMs not ending in exit 0 (of ${plan.filter((name) => name === 'sigterm').length})`,
    failedStops.length === 0 ? 0 : failedStops.join('; '),
    failedStops.length === 0,
  ],
  [
    `bulk job final (${bulk.items} items, ${bulk.ranSeconds === undefined ? '?' : Math.round(bulk.ranSeconds)} s submit to completion)`,
    bulk.jobStatus ?? 'missing',
    bulk.jobStatus === 'COMPLETED_WITH_ERRORS',
  ],
  ['bulk items stranded non-terminal', bulk.stranded, bulk.stranded === 0],
  ['bulk items not applied (work lost)', bulk.notApplied, bulk.notApplied === 0],
  ['bulk items applied with a wrong value', bulk.wrongValue, bulk.wrongValue === 0],
  ['bulk items applied twice (no SIGKILL mid-call)', bulk.appliedTwice, bulk.appliedTwice === 0],
  [
    `bulk items re-applied after a SIGKILL mid-call (at least once; of ${heldByKilled.size} held)`,
    bulk.reappliedAfterKill,
    true,
  ],
  [
    `bulk items Amazon refused, FAILED and unapplied (of ${bulk.refused})`,
    bulk.refusedAsPlanned,
    bulk.refusedAsPlanned === bulk.refused,
  ],
  ['seeded secrets in log lines or DLQ reasons', secretsFound, secretsFound === 0],
  [
    `spans received (services: ${[...services].sort().join(', ')})`,
    spans.length,
    WORKERS.every((name) => services.has(`adfleet-${name}`)),
  ],
  ['seeded secrets in span attributes, events or resources', secretSpans, secretSpans === 0],
  ...recovery.map(({ fault, ms }): [string, string, boolean] => [
    `recovery after ${fault} (ms)`,
    String(ms),
    Number.isFinite(ms),
  ]),
];
process.stdout.write('\nfault drill\n');
for (const [what, value, ok] of rows)
  process.stdout.write(`${ok ? 'ok  ' : 'MISS'}  ${what.padEnd(72)} ${value}\n`);
await sandbox.close();
await receiver.close();
for (const { tcp } of [redis, postgres, emulator]) await tcp.close();
await topology.destroy();
await db.drop();
process.exit(rows.every(([, , ok]) => ok) ? 0 : 1);
