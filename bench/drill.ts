/**
 * `npm run drill [-- --minutes N] [-- --short]`: the fault drill. The three workers, two
 * processes each, on a mixed workload — a sync of every sandbox profile and a backfill of
 * seeded campaigns — while faults are injected at random times: SIGKILLs and SIGTERMs,
 * poison messages of every kind, Redis down, a Postgres restart, an Ads 5xx storm, refused
 * credentials, a held row lock on the backfill's next batch and (full drill) the emulator
 * down. Every outage goes through the drill's own TCP proxies, never the shared services.
 * It ends with a table and exits 1 when a figure misses.
 *
 * Partial: the bulk-item workers run but no bulk job is part of the workload yet, and span
 * attributes are not searched for secrets (tracing is off in the drill).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { startBackfill } from '../domain/backfill/lifecycle.ts';
import { BACKFILLS } from '../domain/backfill/registry.ts';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import { seedCampaigns } from '../scripts/fixtures/seed-campaigns.ts';
import { migrate } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { FLEET_ATTRIBUTES } from '../shared/messaging/trace-context.ts';
import { checkResult, installWriteCounter } from '../test/support/backfill-result.ts';
import { createTestDatabase, ensureTemplate } from '../test/support/database.ts';
import { stackEnv, testConfig, workerEnv } from '../test/support/env.ts';
import { type NodeProcess, spawnNode } from '../test/support/processes.ts';
import { freePort, startTcpProxy } from '../test/support/tcp-proxy.ts';
import { createTestTopology } from '../test/support/topology.ts';
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

const log = (message: string) => process.stdout.write(`drill: ${message}\n`);
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
const redis = await proxy(env.REDIS_URL as string);
const postgres = await proxy(db.url);
const emulator = await proxy(env.AWS_ENDPOINT_URL as string);

await seedCampaigns(db.pool, { profiles: 50, campaigns: CAMPAIGNS });
await installWriteCounter(db.pool);

interface Slot {
  readonly name: (typeof WORKERS)[number];
  readonly healthPort: number;
  process: NodeProcess;
  expectedExit: boolean;
}
const allLogs: NodeProcess[] = [];
let crashes = 0;
function spawnWorker(slot: Omit<Slot, 'process' | 'expectedExit'>): NodeProcess {
  const child = spawnNode(
    `workers/${slot.name}/main.ts`,
    workerEnv(topology.prefix, {
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      AWS_ENDPOINT_URL: emulator.url,
      ADFLEET_ADS_API_URL: sandbox.url,
      ADFLEET_ADS_CLIENT_ID: CLIENT_ID,
      ADFLEET_ADS_CLIENT_SECRET: SECRET,
      ADFLEET_ADS_REFRESH_TOKEN: REFRESH,
      ADFLEET_HEALTH_PORT: String(slot.healthPort),
      ADFLEET_CONCURRENCY: '4',
      ADFLEET_POLL_WAIT_SECONDS: '1',
      ADFLEET_DRAIN_TIMEOUT_MS: '5000',
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
        if (!slot.expectedExit) crashes += 1;
        slot.expectedExit = false;
        slot.process = spawnWorker(slot);
      }
    }
    await sleep(500);
  }
})();
await Promise.all(
  slots.map((slot) => slot.process.waitForLog((line) => line.msg === 'worker started', 120_000)),
);
log(`${slots.length} workers started`);

const config = testConfig({ ADFLEET_RESOURCE_PREFIX: topology.prefix, DATABASE_URL: db.url });
const { messenger } = createMessenger(topology.clients, config);
const startedAt = new Date();
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
async function recoveryMs(from: number): Promise<number> {
  while (Date.now() - from < 180_000) {
    if ((await Promise.all(slots.map(ready))).every(Boolean)) return Date.now() - from;
    await sleep(250);
  }
  return Number.POSITIVE_INFINITY;
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
  for (let index = 0; index < count; index += 1) {
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
}

const cutFor = async (tcp: { cut(): Promise<void>; restore(): Promise<void> }, ms: number) => {
  await tcp.cut();
  await sleep(ms);
  await tcp.restore();
};
const faults: Record<string, () => Promise<void>> = {
  sigkill: async () => {
    const slot = pick(slots);
    slot.expectedExit = true;
    slot.process.child.kill('SIGKILL');
  },
  sigterm: async () => {
    const slot = pick(slots);
    slot.expectedExit = true;
    await slot.process.stop('SIGTERM');
  },
  poison: () => sendPoison(short ? 14 : 1_000),
  'redis down': () => cutFor(redis.tcp, short ? 10_000 : 60_000),
  'postgres restart': () => cutFor(postgres.tcp, short ? 5_000 : 15_000),
  'ads 5xx storm': async () => {
    sandbox.admin.injectFaults({ errorRate: 1, status: 503 });
    await sleep(short ? 8_000 : 30_000);
    sandbox.admin.injectFaults({ errorRate: 0 });
  },
  'refused credentials': async () => {
    sandbox.admin.refuseCredentials(true);
    await sleep(short ? 8_000 : 30_000);
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
    ['sigterm', 'poison', 'redis down', 'postgres restart', 'refused credentials']
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
const gapMs = Math.max(1_000, (minutes * 60_000) / plan.length / 2);
const recovery: Array<{ fault: string; ms: number }> = [];
for (const name of plan) {
  await sleep(Math.random() * gapMs);
  log(`fault: ${name}`);
  await faults[name]?.();
  const ms = await recoveryMs(Date.now());
  recovery.push({ fault: name, ms });
  log(`recovered from ${name} in ${ms} ms`);
}

// Done when every profile synced since the start and the backfill completed.
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
const finishBy = Date.now() + (short ? 120_000 : 420_000);
while (Date.now() < finishBy && ((await synced()) < sizes.profiles || (await status()) !== 'completed'))
  await sleep(1_000);
supervising = false;
await supervisor;
for (const slot of slots) {
  slot.expectedExit = true;
  await slot.process.stop('SIGTERM');
}

// Every DLQ, emptied and read.
const dead: Array<{ body: string; reason: string | undefined }> = [];
for (const name of WORKERS) {
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
const result = await checkResult(db.pool);
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
  ['seeded secrets in log lines or DLQ reasons', secretsFound, secretsFound === 0],
  ...recovery.map(({ fault, ms }): [string, string, boolean] => [
    `recovery after ${fault} (ms)`,
    String(ms),
    Number.isFinite(ms),
  ]),
];
process.stdout.write('\nfault drill\n');
for (const [what, value, ok] of rows)
  process.stdout.write(`${ok ? 'ok  ' : 'MISS'}  ${what.padEnd(52)} ${value}\n`);
await sandbox.close();
for (const { tcp } of [redis, postgres, emulator]) await tcp.close();
await topology.destroy();
await db.drop();
process.exit(rows.every(([, , ok]) => ok) ? 0 : 1);
