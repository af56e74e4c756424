import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../contract/config.ts';
import { resourceNames } from '../contract/topology.ts';
import { OperationsReader } from '../domain/operations/status.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { createPool, databaseUrlFor, migrate, runAdminStatement } from '../shared/db.ts';
import { createMessenger } from '../shared/messaging/messenger.ts';
import { benchEnv, median, percentile, printTable } from './support.ts';

/**
 * `adfleet status` on a big database against an empty one, side by side: 1,000,000 bulk
 * items (200 jobs of 5,000, a few live, a quarter with failures), 10,000 profiles, 30
 * worker heartbeats, a few backfills. Sync run records are seeded as well where their
 * table exists (100,000 runs). Measured twice: the read model in this process (what the
 * dashboard pays per refresh) and the whole `adfleet status --json` process (what an
 * operator waits for, Node's start included).
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = 10;

async function seedBig(url: string): Promise<string[]> {
  // Seeding a million rows is one long statement: a plain client, without the pool's deadlines.
  const db = new pg.Client({ connectionString: url, application_name: 'bench-status-seed' });
  await db.connect();
  const seeded: string[] = [];
  try {
    await db.query(
      `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name, last_synced_at)
       SELECT 1000000 + n, 'US', 'USD', 'ATVPDKIKX0DER', 'Account ' || n,
              CASE WHEN n % 50 = 0 THEN NULL ELSE now() - (n % 40) * interval '1 hour' END
         FROM generate_series(1, 10000) AS n`,
    );
    seeded.push('10,000 profiles');
    await db.query(
      `INSERT INTO bulk_jobs (status, file_name, submitted_by, total, pending, succeeded, failed, created_at,
         dispatched_at, updated_at, finished_at)
       SELECT CASE WHEN n <= 5 THEN 'RUNNING' ELSE CASE WHEN n % 4 = 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED' END END,
              'bench-' || n || '.csv', 'bench', 5000,
              CASE WHEN n <= 5 THEN 2500 ELSE 0 END,
              CASE WHEN n <= 5 THEN 2500 WHEN n % 4 = 0 THEN 4900 ELSE 5000 END,
              CASE WHEN n % 4 = 0 AND n > 5 THEN 100 ELSE 0 END,
              now() - n * interval '5 minutes', now() - n * interval '5 minutes', now() - n * interval '4 minutes',
              CASE WHEN n <= 5 THEN NULL ELSE now() - n * interval '4 minutes' END
         FROM generate_series(1, 200) AS n`,
    );
    await db.query(
      `INSERT INTO bulk_items (job_id, job_seq, line, profile_id, entity_type, entity_id, change, status,
         attempts, error_code, error_message, finished_at)
       SELECT j.id, j.seq, i + 1, 1000000 + (i % 10000), 'keyword', j.seq * 10000 + i, '{"bid": 1.25}',
              CASE WHEN j.status = 'RUNNING' AND i > 2500 THEN 'PENDING'
                   WHEN j.failed > 0 AND i <= 100 THEN 'FAILED' ELSE 'SUCCEEDED' END,
              1,
              CASE WHEN j.failed > 0 AND i <= 100 THEN 'INVALID_ARGUMENT' END,
              CASE WHEN j.failed > 0 AND i <= 100 THEN 'bid above the marketplace maximum' END,
              CASE WHEN j.status = 'RUNNING' AND i > 2500 THEN NULL ELSE j.updated_at END
         FROM bulk_jobs j, generate_series(1, 5000) AS i`,
    );
    seeded.push('1,000,000 bulk items in 200 jobs');
    await db.query(
      `INSERT INTO worker_heartbeats (instance_id, service, host, pid, version, started_at, beat_at, interval_ms,
         last_poll_at, in_flight, handled, failed, ready)
       SELECT gen_random_uuid(), (ARRAY['profile-sync', 'bulk-item', 'backfill-chunk'])[1 + n % 3], 'host-' || n,
              10000 + n, '0.1.0', now() - interval '1 hour', now() - CASE WHEN n % 10 = 0 THEN interval '10 minutes' ELSE interval '0' END,
              5000, now(), n % 5, n * 100, n, true
         FROM generate_series(1, 30) AS n`,
    );
    seeded.push('30 worker heartbeats');
    const { rows } = await db.query<{ present: boolean }>(
      `SELECT to_regclass('sync_runs') IS NOT NULL AS present`,
    );
    if (rows[0]?.present === true) {
      await db.query(
        `INSERT INTO sync_runs (profile_id, request_id, requested_at, trigger, status, started_at, finished_at)
         SELECT 1000001 + (n % 10000), gen_random_uuid(), now() - n * interval '10 seconds', 'schedule',
                CASE WHEN n % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
                now() - n * interval '10 seconds', now() - n * interval '10 seconds' + interval '5 seconds'
           FROM generate_series(1, 100000) AS n`,
      );
      seeded.push('100,000 sync runs');
    }
    await db.query('ANALYZE');
  } finally {
    await db.end();
  }
  return seeded;
}

function timeProcess(args: string[], env: Record<string, string>): number {
  const started = performance.now();
  try {
    execFileSync(process.execPath, ['cli/main.ts', ...args], { cwd: ROOT, env, stdio: 'ignore' });
  } catch {
    // `status` exits 2 when something needs a human; the time is what counts here.
  }
  return performance.now() - started;
}

export async function runStatusBench(): Promise<void> {
  const env = benchEnv();
  const base = env.DATABASE_URL as string;
  const prefix = 'bench-status';
  const clients = createAwsClients({
    AWS_REGION: env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL: env.AWS_ENDPOINT_URL,
  });
  await bootstrapTopology(clients, resourceNames(prefix));

  const results: string[][] = [
    ['database', 'read model p50', 'read model p95', 'adfleet status --json (process)'],
  ];
  let seededWith: string[] = [];
  let cliStartMs = 0;
  for (const size of ['empty', 'big'] as const) {
    const name = `adfleet_bench_status_${size}`;
    await runAdminStatement(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await runAdminStatement(base, `CREATE DATABASE ${name}`);
    const url = databaseUrlFor(base, name);
    await migrate(url);
    if (size === 'big') {
      const seeding = Date.now();
      seededWith = await seedBig(url);
      process.stdout.write(
        `status bench: seeded ${seededWith.join(', ')} in ${((Date.now() - seeding) / 1000).toFixed(0)} s\n`,
      );
    }
    const config = loadConfig({ ...env, DATABASE_URL: url, ADFLEET_RESOURCE_PREFIX: prefix });
    const db = createPool(url, { max: 2, applicationName: 'bench-status' });
    const { producer } = createMessenger(clients, config);
    const reader = new OperationsReader({ config, db, sqs: clients.sqs, producer });
    try {
      await reader.status(); // warm: connections, queue URLs
      const times: number[] = [];
      for (let round = 0; round < ROUNDS; round += 1) {
        const started = performance.now();
        await reader.status();
        times.push(performance.now() - started);
      }
      const processEnv = {
        ...process.env,
        ...env,
        DATABASE_URL: url,
        ADFLEET_RESOURCE_PREFIX: prefix,
        OTEL_SDK_DISABLED: 'true',
      } as Record<string, string>;
      const processTimes = [0, 1, 2].map(() => timeProcess(['status', '--json'], processEnv));
      if (size === 'big') cliStartMs = median([0, 1, 2].map(() => timeProcess(['--help'], processEnv)));
      results.push([
        size,
        `${median(times).toFixed(0)} ms`,
        `${percentile(times, 95).toFixed(0)} ms`,
        `${(median(processTimes) / 1000).toFixed(2)} s`,
      ]);
    } finally {
      reader.close();
      await db.end();
      await runAdminStatement(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  }
  clients.destroy();
  printTable(`adfleet status (big: ${seededWith.join(', ')}; ${ROUNDS} rounds)`, results);
  const [, empty, big] = results;
  process.stdout.write(
    `  big / empty read model p50: ${(Number.parseFloat(big?.[1] ?? '0') / Math.max(1, Number.parseFloat(empty?.[1] ?? '1'))).toFixed(2)}x; ` +
      `the CLI process alone (adfleet --help) takes ${(cliStartMs / 1000).toFixed(2)} s on this machine now\n`,
  );
}
