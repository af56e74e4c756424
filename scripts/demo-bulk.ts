/**
 * The bulk part of `npm run demo`: a real file of a few hundred bid and state changes over
 * the synced profiles — some of which Amazon refuses (archived keywords, ids that do not
 * exist) — submitted through the operator CLI while the sandbox answers with 429s and
 * 503s; then the job's report summary and its failures, as an operator would read them.
 * Assumes the workers run against the same environment and the profiles were synced first.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxAdmin } from '../sandbox/ads-api/server.ts';
import { marketplaceOf } from '../shared/ads/marketplaces.ts';
import { createPool } from '../shared/db.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const VALID_ROWS = 270;
const INVALID_ROWS = 30;

function runCli(args: readonly string[], capture: boolean): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'bulk', ...args], {
      cwd: ROOT,
      env: { ...process.env, OTEL_SERVICE_NAME: 'adfleet-cli' },
      stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'],
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`adfleet bulk ${args.join(' ')} exited ${code}`)),
    );
  });
}

export interface DemoBulkResult {
  readonly jobId: string;
  readonly traceId: string;
  readonly status: string;
  readonly succeeded: number;
  readonly failed: number;
}

export async function demoBulk(databaseUrl: string, sandbox: SandboxAdmin): Promise<DemoBulkResult> {
  const pool = createPool(databaseUrl, { max: 2, applicationName: 'adfleet-demo' });
  try {
    const { rows: keywords } = await pool.query<{
      id: string;
      profile_id: string;
      bid: string;
      state: string;
      country_code: string;
    }>(
      `SELECT k.id::text, k.profile_id::text, k.bid::text, k.state, p.country_code
         FROM keywords k JOIN profiles p ON p.id = k.profile_id ORDER BY k.id`,
    );
    const live = keywords.filter((k) => k.state !== 'ARCHIVED');
    const archived = keywords.filter((k) => k.state === 'ARCHIVED');
    if (live.length < VALID_ROWS || archived.length < INVALID_ROWS / 2) {
      throw new Error('demo: too few synced keywords for the bulk file (did the sync run?)');
    }
    const lines = ['profile_id,entity_type,entity_id,bid,budget,state'];
    const step = Math.floor(live.length / VALID_ROWS);
    for (let i = 0; i < VALID_ROWS; i += 1) {
      const keyword = live[i * step] as (typeof live)[number];
      const { min } = marketplaceOf(keyword.country_code).bid;
      const bid = Number((min * (5 + (i % 40))).toFixed(2));
      const state = i % 9 === 0 ? (keyword.state === 'PAUSED' ? 'ENABLED' : 'PAUSED') : '';
      lines.push(`${keyword.profile_id},keyword,${keyword.id},${bid},,${state}`);
    }
    for (let i = 0; i < INVALID_ROWS; i += 1) {
      const keyword = archived[i % archived.length] as (typeof archived)[number];
      const { min } = marketplaceOf(keyword.country_code).bid;
      // Half archived keywords (Amazon: entityStateError), half ids Amazon does not know.
      lines.push(
        i % 2 === 0
          ? `${keyword.profile_id},keyword,${keyword.id},${(min * 3).toFixed(2)},,`
          : `${keyword.profile_id},keyword,${9_000_000_000_000 + i},${(min * 3).toFixed(2)},,`,
      );
    }
    const file = join(ROOT, '.stack', 'demo-bulk.csv');
    await writeFile(file, `${lines.join('\n')}\n`);

    // Amazon at 2 a.m.: the first calls are throttled, then one call in ten fails with 503.
    sandbox.injectFaults({ failNext: 8, status: 429 });
    const submitted = JSON.parse(
      await runCli(['submit', file, '--json', '--submitted-by', 'demo'], true),
    ) as {
      jobId: string;
      traceId: string;
    };
    setTimeout(() => sandbox.injectFaults({ errorRate: 0.1, status: 503 }), 1_500).unref();
    process.stdout.write(`demo: bulk job ${submitted.jobId} submitted from ${file}\n`);
    await runCli(['status', submitted.jobId, '--watch'], false);
    sandbox.injectFaults({});
    process.stdout.write(await runCli(['report', submitted.jobId, '--summary'], true));
    const failed = await runCli(['report', submitted.jobId, '--failed'], true);
    const failedLines = failed.trim().split('\n');
    process.stdout.write(
      `demo: failed items (${failedLines.length - 1}), first five:\n${failedLines.slice(0, 6).join('\n')}\n`,
    );
    const { rows } = await pool.query<{ status: string; succeeded: number; failed: number }>(
      'SELECT status, succeeded, failed FROM bulk_jobs WHERE id = $1',
      [submitted.jobId],
    );
    const job = rows[0] as { status: string; succeeded: number; failed: number };
    return { jobId: submitted.jobId, traceId: submitted.traceId, ...job };
  } finally {
    await pool.end();
  }
}
