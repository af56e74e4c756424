import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import type pg from 'pg';
import { cancelJob, retryFailed } from '../../domain/bulk/control.ts';
import { type BulkJob, findJob, listJobs, loadJob, progressOf } from '../../domain/bulk/jobs.ts';
import { failureSummary, type ReportRow, reportRows } from '../../domain/bulk/report.ts';
import { TERMINAL_JOB_STATUSES } from '../../domain/bulk/status.ts';
import { submitBulkFile } from '../../domain/bulk/submit.ts';
import { currentCarrier } from '../../shared/messaging/trace-context.ts';
import { positiveInt, runCommand } from '../context.ts';
import { formatCount, formatDuration } from '../format.ts';

/**
 * `adfleet bulk …`: submit, status [--watch], report, retry-failed, cancel, list. Jobs are
 * named by id or a unique prefix of it (8+ characters). Read commands take --json.
 */

const SUBMIT_HELP = `
File format (CSV with a header line, JSON Lines, or a JSON array of objects):
  profile_id   Amazon Ads profile id (required)
  entity_type  keyword | campaign (required)
  entity_id    Amazon's id of the keyword or campaign (required)
               (ids are whole numbers up to 9007199254740991, 2^53 - 1)
  bid          keywords: new bid, at most 2 decimals, within the marketplace's bounds
  budget       campaigns: new daily budget, at most 2 decimals, within the marketplace's bounds
  state        ENABLED | PAUSED
Each row changes at least one of bid/budget/state; an entity may appear once per file.
Every row is checked before anything is written: one bad row refuses the whole file,
naming each bad line.

Example:
  profile_id,entity_type,entity_id,bid,budget,state
  1000000000000,keyword,5000000000000000,1.25,,
  1000000000000,campaign,3000000000000,,50.00,PAUSED`;

async function jobOrThrow(db: pg.Pool, idOrPrefix: string): Promise<BulkJob> {
  const job = await findJob(db, idOrPrefix);
  if (job === undefined) throw new Error(`no bulk job "${idOrPrefix}" (give its id or a unique prefix)`);
  return job;
}

export function renderStatus(job: BulkJob): string {
  const progress = progressOf(job);
  const { counts } = job;
  return [
    `bulk job ${job.id}  ${job.fileName}`,
    `  status     ${job.status}${job.error === null ? '' : `  error: ${job.error}`}`,
    `  progress   ${(progress.fraction * 100).toFixed(1)}%  ${formatCount(progress.done)} of ${formatCount(counts.total)} items final`,
    `  items      succeeded ${formatCount(counts.succeeded)}  failed ${formatCount(counts.failed)}  cancelled ${formatCount(counts.cancelled)}  pending ${formatCount(counts.pending)}  running ${formatCount(counts.running)}  retry ${formatCount(counts.retry)}`,
    `  rate       ${progress.itemsPerSecond.toFixed(1)} items/s  ETA ${formatDuration(progress.etaSeconds)}  retries waiting ${formatCount(progress.retriesWaiting)}`,
    `  trace      ${job.traceId ?? '-'}`,
    `  submitted  ${job.createdAt.toISOString()} by ${job.submittedBy}${job.finishedAt === null ? '' : `  finished ${job.finishedAt.toISOString()}`}`,
  ].join('\n');
}

async function watchJob(db: pg.Pool, jobId: string): Promise<BulkJob> {
  const bar = new cliProgress.SingleBar(
    {
      format:
        'bulk |{bar}| {percentage}% | {value}/{total} items | ok {succeeded} failed {failed} retry {retry} | {rate} items/s | ETA {eta_text} | {status}',
      barsize: 30,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2_000,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  for (;;) {
    const job = await loadJob(db, jobId);
    if (job === undefined) throw new Error(`no bulk job ${jobId}`);
    const progress = progressOf(job);
    const payload = {
      succeeded: job.counts.succeeded,
      failed: job.counts.failed,
      retry: job.counts.retry,
      rate: progress.itemsPerSecond.toFixed(1),
      eta_text: formatDuration(progress.etaSeconds),
      status: job.status,
    };
    if (!started) {
      bar.start(job.counts.total, progress.done, payload);
      started = true;
    } else bar.update(progress.done, payload);
    if (TERMINAL_JOB_STATUSES.includes(job.status)) {
      bar.stop();
      return job;
    }
    await sleep(500);
  }
}

/** The report's CSV columns; the dashboard's download writes the same file. */
export const REPORT_CSV_COLUMNS = [
  'item_id',
  'line',
  'profile_id',
  'entity_type',
  'entity_id',
  'change',
  'status',
  'attempts',
  'error_code',
  'error_message',
  'response',
] as const;

function csvField(value: unknown): string {
  const text =
    value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function reportCsvLine(row: ReportRow): string {
  return `${[
    row.itemId,
    row.line,
    row.profileId,
    row.entityType,
    row.entityId,
    row.change,
    row.status,
    row.attempts,
    row.errorCode,
    row.errorMessage,
    row.response,
  ]
    .map(csvField)
    .join(',')}\n`;
}

/** Writes to stdout, waiting when the pipe is full, so a report of any size streams. */
async function write(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
}

function reportFormat(value: string): 'csv' | 'json' {
  if (value !== 'csv' && value !== 'json') throw new InvalidArgumentError('must be csv or json');
  return value;
}

export function bulkCommand(): Command {
  const command = new Command('bulk').description(
    'Bulk bid, budget and state changes: submit, status, report, retry-failed, cancel, list',
  );

  command
    .command('submit')
    .argument('<file>', 'a .csv, .json or .jsonl file of changes (columns below)')
    .description('Check every row, record the job and its items, and start it')
    .option('--dry-run', 'check the file only; write nothing')
    .option('--submitted-by <name>', 'who submits (recorded on the job)', userInfo().username)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', SUBMIT_HELP)
    .action((file: string, options: { dryRun?: boolean; submittedBy: string; json?: boolean }) =>
      runCommand('bulk submit', async ({ db, messenger, traceId }) => {
        const result = await submitBulkFile(db(), {
          path: file,
          submittedBy: options.submittedBy,
          dryRun: options.dryRun === true,
          // All zeros: tracing is off, there is no trace to name.
          ...(/^0+$/.test(traceId) ? {} : { traceId }),
          traceCarrier: currentCarrier(),
        });
        if (!result.ok) {
          const lines = result.errors.map((error) => `  line ${error.line}: ${error.reason}`);
          if (result.errorCount > result.errors.length) {
            lines.push(`  … and ${formatCount(result.errorCount - result.errors.length)} more`);
          }
          throw new Error(
            `${file}: ${formatCount(result.errorCount)} bad row(s), nothing was written:\n${lines.join('\n')}`,
          );
        }
        if (result.jobId !== undefined) await messenger.publish('BulkJobSubmitted', { jobId: result.jobId });
        if (options.json === true)
          return JSON.stringify({ ...result, dryRun: options.dryRun === true, traceId });
        const what = `${formatCount(result.rows)} items (${formatCount(result.keywords)} keywords, ${formatCount(result.campaigns)} campaigns) over ${formatCount(result.profiles)} profiles`;
        if (result.jobId === undefined) return `${file}: valid, ${what} (dry run: nothing written)`;
        return [
          `bulk job ${result.jobId} submitted: ${what}`,
          `  trace ${traceId}`,
          `  watch: adfleet bulk status ${result.jobId} --watch`,
        ].join('\n');
      }),
    );

  command
    .command('status')
    .argument('<job>', 'job id or a unique prefix')
    .description('Counts per status, progress, items/s, ETA, retries waiting')
    .option('--watch', 'draw a progress bar until the job is final')
    .option('--json', 'print the job as JSON')
    .action((idOrPrefix: string, options: { watch?: boolean; json?: boolean }) =>
      runCommand('bulk status', async ({ db }) => {
        let job = await jobOrThrow(db(), idOrPrefix);
        if (options.watch === true) job = await watchJob(db(), job.id);
        if (options.json === true) return JSON.stringify({ job, progress: progressOf(job) }, null, 2);
        return renderStatus(job);
      }),
    );

  command
    .command('report')
    .argument('<job>', 'job id or a unique prefix')
    .description("One row per item with Amazon's answer, in file order (streamed)")
    .option('--failed', 'only FAILED items')
    .option('--format <format>', 'csv or json (JSON Lines, one item per line)', reportFormat, 'csv')
    .option('--json', 'same as --format json')
    .option('--summary', "counts and failures grouped by Amazon's code instead of the items")
    .action(
      (
        idOrPrefix: string,
        options: { failed?: boolean; format: 'csv' | 'json'; json?: boolean; summary?: boolean },
      ) =>
        runCommand('bulk report', async ({ db }) => {
          const job = await jobOrThrow(db(), idOrPrefix);
          const format = options.json === true ? 'json' : options.format;
          if (options.summary === true) {
            const failures = await failureSummary(db(), job.id);
            if (format === 'json') return JSON.stringify({ job, failures }, null, 2);
            return [
              renderStatus(job),
              '  failures by code:',
              ...(failures.length === 0
                ? ['    (none)']
                : failures.map((f) => `    ${String(f.count).padStart(7)}  ${f.code}  e.g. ${f.example}`)),
            ].join('\n');
          }
          if (format === 'csv') await write(`${REPORT_CSV_COLUMNS.join(',')}\n`);
          for await (const row of reportRows(db(), job.id, { failedOnly: options.failed === true })) {
            await write(format === 'csv' ? reportCsvLine(row) : `${JSON.stringify(row)}\n`);
          }
          return undefined;
        }),
    );

  command
    .command('retry-failed')
    .argument('<job>', 'job id or a unique prefix')
    .description('Send the FAILED items again (attempts start over)')
    .action((idOrPrefix: string) =>
      runCommand('bulk retry-failed', async ({ db, messenger }) => {
        const job = await jobOrThrow(db(), idOrPrefix);
        const result = await retryFailed(db(), messenger, job.id);
        return result.changed
          ? `bulk job ${job.id}: ${formatCount(result.items)} failed item(s) sent again (now ${result.status})`
          : `bulk job ${job.id} is ${job.status} with ${job.counts.failed} failed item(s): nothing to retry`;
      }),
    );

  command
    .command('cancel')
    .argument('<job>', 'job id or a unique prefix')
    .description('Items not yet applied end CANCELLED; batches in flight finish')
    .action((idOrPrefix: string) =>
      runCommand('bulk cancel', async ({ db, messenger }) => {
        const job = await jobOrThrow(db(), idOrPrefix);
        const result = await cancelJob(db(), messenger, job.id);
        return result.changed
          ? `bulk job ${job.id}: ${formatCount(result.items)} item(s) cancelled (now ${result.status})`
          : `bulk job ${job.id} is ${job.status}: nothing to cancel`;
      }),
    );

  command
    .command('list')
    .description('Recent bulk jobs')
    .option('--limit <n>', 'jobs to show', positiveInt, 20)
    .option('--json', 'print the jobs as JSON')
    .action((options: { limit: number; json?: boolean }) =>
      runCommand('bulk list', async ({ db }) => {
        const jobs = await listJobs(db(), options.limit);
        if (options.json === true) return JSON.stringify(jobs, null, 2);
        if (jobs.length === 0) return 'no bulk jobs';
        return jobs
          .map((job) => {
            const { counts } = job;
            return `${job.id}  ${job.status.padEnd(21)} ${formatCount(counts.total).padStart(9)} items  ok ${formatCount(counts.succeeded)}  failed ${formatCount(counts.failed)}  cancelled ${formatCount(counts.cancelled)}  ${job.createdAt.toISOString()}  ${job.fileName}`;
          })
          .join('\n');
      }),
    );

  return command;
}
