/**
 * The backfill part of `npm run demo`: seeds the advertising data if there is none, starts
 * `campaign-currency` through the operator CLI (`adfleet backfill start`) and watches it
 * with the CLI's progress bar (`adfleet backfill status --watch`) until it completes.
 * Assumes a backfill-chunk worker runs against the same environment (the demo starts the
 * workers first). Standalone: `node scripts/demo-backfill.ts` with .stack/env loaded.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createPool } from '../shared/db.ts';
import { SEED_CAMPAIGN_ID_BASE, seedCampaigns } from './fixtures/seed-campaigns.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const DEMO_SEED = { profiles: 2_000, campaigns: 200_000 } as const;

function runCli(args: readonly string[], env: Record<string, string | undefined>, capture: boolean) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'backfill', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'],
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`adfleet backfill ${args.join(' ')} exited ${code}`)),
    );
  });
}

export async function demoBackfill(
  env: Record<string, string | undefined> = process.env,
): Promise<{ jobId: string; traceId: string; rows: number }> {
  const databaseUrl = env.DATABASE_URL;
  if (databaseUrl === undefined) throw new Error('DATABASE_URL is not set: load .stack/env');
  const pool = createPool(databaseUrl, { max: 2, applicationName: 'adfleet-demo' });
  try {
    // Seeded rows, not any rows: the demo's nightly sync writes a few hundred of its own.
    const { rows } = await pool.query<{ seeded: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM campaigns WHERE id > $1) AS seeded',
      [SEED_CAMPAIGN_ID_BASE],
    );
    if (rows[0]?.seeded !== true) {
      process.stdout.write(
        `seeding ${DEMO_SEED.profiles.toLocaleString('en-US')} profiles and ${DEMO_SEED.campaigns.toLocaleString('en-US')} campaigns\n`,
      );
      await seedCampaigns(pool, DEMO_SEED);
    }
    // A finished backfill leaves nothing to do: clear the column so the demo shows real work.
    await pool.query(
      'UPDATE campaigns SET currency_code = NULL WHERE id > $1 AND currency_code IS NOT NULL',
      [SEED_CAMPAIGN_ID_BASE],
    );
  } finally {
    await pool.end();
  }
  const started = JSON.parse(
    (await runCli(['start', 'campaign-currency', '--parallel', '2', '--json'], env, true)).trim(),
  ) as { jobId: string; traceId: string };
  process.stdout.write(`backfill campaign-currency: job ${started.jobId}, trace ${started.traceId}\n`);
  await runCli(['status', started.jobId, '--watch'], env, false);
  const status = JSON.parse(await runCli(['status', started.jobId, '--json'], env, true)) as {
    job: { status: string; rowsProcessed: number };
  };
  if (status.job.status !== 'completed') {
    throw new Error(`backfill ${started.jobId} ended ${status.job.status}, not completed`);
  }
  return { jobId: started.jobId, traceId: started.traceId, rows: status.job.rowsProcessed };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await demoBackfill();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
