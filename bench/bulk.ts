/**
 * Bulk benchmark (`npm run bench -- bulk`).
 *
 *   submit 1,000,000 rows   `bulk submit` of a generated CSV (keyword bid changes over
 *                           1,000 profiles) into a fresh database, in its own process:
 *                           rows/s and peak RSS. Targets: ≥ 50,000 rows/s, < 256 MiB.
 *   fairness                a 10,000-item job on one profile submitted together with a
 *                           500-item job over 50 other profiles, against the small job
 *                           alone; two bulk-item worker processes, an in-process sandbox
 *                           with 5 requests/s per profile, 100 items per batch. Target: the
 *                           small job finishes within 1.5× its time alone.
 *
 * Not measured here yet: the 50,000-item run over 500 profiles (share of the sandbox's
 * capacity, lost and wrong items, re-sends after a crash).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { resourceNames } from '../contract/topology.ts';
import { loadJob } from '../domain/bulk/jobs.ts';
import { TERMINAL_JOB_STATUSES } from '../domain/bulk/status.ts';
import { submitBulkFile } from '../domain/bulk/submit.ts';
import { startAdsSandbox } from '../sandbox/ads-api/server.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { createPool, databaseUrlFor, migrate, runAdminStatement } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { benchEnv, printTable } from './support.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SUBMIT_ROWS = 1_000_000;

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
  const workers = [1, 2].map(() =>
    spawn(process.execPath, [join(ROOT, 'workers/bulk-item/main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...config,
        LOG_LEVEL: 'warn',
        OTEL_SDK_DISABLED: 'true',
        ADFLEET_POLL_WAIT_SECONDS: '1',
        ADFLEET_CONCURRENCY: '20',
        ADFLEET_BULK_BATCH_SIZE: '100',
      },
      stdio: 'ignore',
    }),
  );
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
    const [alone] = await run([await jobFile('small-a', smallRows(0))]);
    const [bigTogether, smallTogether] = await run([
      await jobFile('big', bigRows),
      await jobFile('small-b', smallRows(1)),
    ]);
    printTable('fairness: 500 items over 50 profiles, alone and next to 10,000 items on one profile', [
      ['small alone', 'small next to big', 'slowdown', 'target', 'big job'],
      [
        `${(alone as number).toFixed(1)} s`,
        `${(smallTogether as number).toFixed(1)} s`,
        `${((smallTogether as number) / (alone as number)).toFixed(2)}×`,
        '≤ 1.5×',
        `${(bigTogether as number).toFixed(1)} s`,
      ],
    ]);
  } finally {
    for (const worker of workers) worker.kill('SIGTERM');
    await pool.end();
    await sandbox.close();
    clients.destroy();
    await database.drop();
  }
}

/** `ADFLEET_BENCH_BULK=submit` or `=fairness` runs one part only. */
export async function runBulkBench() {
  const env = benchEnv();
  const only = process.env.ADFLEET_BENCH_BULK;
  if (only === undefined || only === 'submit') await benchSubmit(env);
  if (only === undefined || only === 'fairness') await benchFairness(env);
}
