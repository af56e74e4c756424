import { setTimeout as sleep } from 'node:timers/promises';
import { trace } from '@opentelemetry/api';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import type pg from 'pg';
import { findJob, listJobs, loadJob } from '../../domain/backfill/jobs.ts';
import {
  cancelBackfill,
  pauseBackfill,
  resumeBackfill,
  startBackfill,
  type Transition,
} from '../../domain/backfill/lifecycle.ts';
import { loadPartitions, loadPartitionsOf } from '../../domain/backfill/partitions.ts';
import { type Progress, progressOf } from '../../domain/backfill/progress.ts';
import type { BackfillJob, BackfillPartition } from '../../domain/backfill/records.ts';
import { BACKFILLS } from '../../domain/backfill/registry.ts';
import { isTerminal, JobStatus } from '../../domain/backfill/status.ts';
import { positiveInt, runCommand } from '../context.ts';
import { formatCount, formatDuration } from '../format.ts';

/**
 * `adfleet backfill …`: start, pause, resume, cancel, status [--watch], list. Jobs are
 * named by id or by backfill name (its latest job). Every command records first and
 * messages after (domain/backfill/lifecycle.ts).
 */

function positiveNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('must be a positive number');
  return parsed;
}

function latencyRatio(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 1) {
    throw new InvalidArgumentError('must be a number above 1 (1.5: p99 at most 1.5 x idle)');
  }
  return parsed;
}

async function jobOrThrow(db: pg.Pool, idOrName: string): Promise<BackfillJob> {
  const job = await findJob(db, idOrName);
  if (job === undefined) throw new Error(`no backfill job "${idOrName}"`);
  return job;
}

function describeThrottle(progress: Progress): string {
  const decision = progress.throttle;
  if (decision === null) return 'no decision yet';
  const limit =
    decision.effectiveLimit === null ? 'unlimited' : `${formatCount(decision.effectiveLimit)} rows/s`;
  const batch = decision.batchSize === null ? '' : `; batch ${formatCount(decision.batchSize)} rows`;
  return `${decision.state} (${decision.reason}; limit ${limit}${batch}; probe ${decision.reading.probeMs.toFixed(1)}ms, ${decision.reading.activeConnections} active${
    decision.reading.replicationLagMs === null
      ? ''
      : `, lag ${Math.round(decision.reading.replicationLagMs)}ms`
  })`;
}

/** The latency target's line: the target, what it learned, what it sees now. */
function describeLatency(job: BackfillJob, progress: Progress): string | undefined {
  const target = job.throttlePolicy.latencyTarget ?? null;
  if (target === null) return undefined;
  const seen = progress.throttle?.latency ?? null;
  const ms = (value: number | null | undefined) =>
    value === null || value === undefined ? '-' : `${value.toFixed(2)}ms`;
  const ratio =
    seen?.probeP99Ms != null && seen.baselineP99Ms != null && seen.baselineP99Ms > 0
      ? `  (${(seen.probeP99Ms / seen.baselineP99Ms).toFixed(2)}x)`
      : '';
  return `  latency    target p99 <= ${target.maxRatio}x baseline  baseline p99 ${ms(seen?.baselineP99Ms)}  probe p99 ${ms(seen?.probeP99Ms)}${ratio}  over ${seen?.samples ?? 0} samples${seen?.exceeding === undefined ? '' : `, ${seen.exceeding} slower than the target (over at ${seen.overAt}${seen.allowed !== undefined && seen.allowed > 0.01 ? `; rest itself is ${(100 * seen.allowed).toFixed(1)} %` : ''})`} (source: read probe)`;
}

function renderStatus(job: BackfillJob, partitions: readonly BackfillPartition[]): string {
  const progress = progressOf(job, partitions);
  const lines = [
    `backfill ${job.name}  ${job.id}`,
    `  status     ${job.status}${job.error === null ? '' : `  error: ${job.error}`}`,
    `  progress   ${(progress.fraction * 100).toFixed(1)}%  ${formatCount(progress.rowsProcessed)} rows of ~${formatCount(job.rowsEstimate)}  ids (${job.lowId}, ${job.highWaterId}]`,
    `  rate       ${formatCount(progress.rate)} rows/s  ETA ${formatDuration(progress.etaSeconds)}${job.maxRate === null ? '' : `  ceiling ${formatCount(job.maxRate)} rows/s`}`,
    `  throttle   ${describeThrottle(progress)}`,
    ...[describeLatency(job, progress)].filter((line) => line !== undefined),
    `  batches    ${job.batchSize} rows x ${job.batchesPerChunk} per chunk, ${progress.partitions.running}/${progress.partitions.total} chains running`,
    `  trace      ${job.traceId ?? '-'}`,
    `  started    ${job.createdAt.toISOString()}${job.finishedAt === null ? '' : `  finished ${job.finishedAt.toISOString()}`}`,
  ];
  if (partitions.length > 1) {
    for (const partition of partitions) {
      const span = partition.rangeEnd - partition.rangeStart;
      const share = span === 0 ? 100 : ((partition.cursor - partition.rangeStart) / span) * 100;
      lines.push(
        `  [${partition.partition}] ${partition.status.padEnd(9)} ${share.toFixed(1).padStart(5)}%  ${formatCount(partition.rowsProcessed)} rows  ${formatCount(partition.currentRate)} rows/s  ${partition.throttleState}`,
      );
    }
  }
  return lines.join('\n');
}

/** Polls the job and draws a progress bar until it is finished (or paused, with --until-rest). */
async function watchJob(db: pg.Pool, jobId: string, options: { intervalMs?: number } = {}) {
  const bar = new cliProgress.SingleBar(
    {
      format:
        '{name} |{bar}| {percentage}% | {rows} rows | {rate} rows/s | ETA {eta_text} | {status} | throttle {throttle}',
      barsize: 30,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2_000,
      etaBuffer: 1,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  for (;;) {
    const job = await loadJob(db, jobId);
    if (job === undefined) throw new Error(`no backfill job ${jobId}`);
    const progress = progressOf(job, await loadPartitions(db, jobId));
    const payload = {
      name: job.name,
      rows: formatCount(progress.rowsProcessed),
      rate: formatCount(progress.rate),
      eta_text: formatDuration(progress.etaSeconds),
      status: job.status,
      throttle: progress.throttle?.state ?? '-',
    };
    const value = Math.round(progress.fraction * 1000);
    if (!started) {
      bar.start(1000, value, payload);
      started = true;
    } else bar.update(value, payload);
    if (isTerminal(job.status) || job.status === JobStatus.Paused) {
      bar.update(value, payload);
      bar.stop();
      return job;
    }
    await sleep(options.intervalMs ?? 500);
  }
}

function transitionMessage(verb: string, transition: Transition): string {
  const { job, changed } = transition;
  return changed
    ? `backfill ${job.name} ${job.id}: ${verb} (now ${job.status})`
    : `backfill ${job.name} ${job.id} is ${job.status}: nothing to ${verb.replace(/ed$/, '')}`;
}

export function backfillCommand(): Command {
  const command = new Command('backfill').description(
    'Production-safe backfills: start, pause, resume, cancel, status, list',
  );

  command
    .command('start')
    .argument('<name>', `backfill to run (${[...BACKFILLS.keys()].join(', ')})`)
    .description('Record a backfill job over the current id range and start its chains')
    .option('--batch-size <rows>', 'rows per batch (one transaction each)', positiveInt)
    .option('--batches-per-chunk <n>', 'batches per chunk message', positiveInt)
    .option('--max-rate <rows/s>', 'ceiling for the whole job, rows per second', positiveNumber)
    .option(
      '--max-latency-ratio <ratio>',
      "pace by production latency: the probe's p99 may be at most this many times its idle p99 (e.g. 1.5)",
      latencyRatio,
    )
    .option('--parallel <n>', 'split the id range into N partitions, one chain each', positiveInt, 1)
    .option('--stall-after <ms>', 'restart a chain that shows no progress for this long', positiveInt)
    .option('--json', 'print the job as JSON')
    .action((name: string, options) =>
      runCommand('backfill start', async ({ db, messenger, traceId }) => {
        const spanId = trace.getActiveSpan()?.spanContext().spanId;
        const { job, partitions } = await startBackfill(db(), messenger, BACKFILLS, {
          name,
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
          ...(options.batchesPerChunk === undefined ? {} : { batchesPerChunk: options.batchesPerChunk }),
          ...(options.maxRate === undefined ? {} : { maxRate: options.maxRate }),
          ...(options.maxLatencyRatio === undefined ? {} : { maxLatencyRatio: options.maxLatencyRatio }),
          ...(options.stallAfter === undefined ? {} : { stallAfterMs: options.stallAfter }),
          parallel: options.parallel,
          traceId,
          ...(spanId === undefined ? {} : { spanId }),
        });
        if (options.json === true) {
          return JSON.stringify({
            jobId: job.id,
            name: job.name,
            status: job.status,
            traceId,
            partitions: partitions.length,
            rowsEstimate: job.rowsEstimate,
          });
        }
        return [
          `backfill ${job.name} started: job ${job.id}`,
          `  ids (${job.lowId}, ${job.highWaterId}], ~${formatCount(job.rowsEstimate)} rows, ${partitions.length} chain(s), ${job.batchSize} rows x ${job.batchesPerChunk} per chunk`,
          `  trace ${traceId}`,
          `  watch: adfleet backfill status ${job.id} --watch`,
        ].join('\n');
      }),
    );

  command
    .command('pause')
    .argument('<job>', 'job id, or backfill name for its latest job')
    .description('Stop the chains at their next batch; the job settles to paused')
    .action((idOrName: string) =>
      runCommand('backfill pause', async ({ db }) => {
        const job = await jobOrThrow(db(), idOrName);
        return transitionMessage('paused', await pauseBackfill(db(), job.id));
      }),
    );

  command
    .command('resume')
    .argument('<job>', 'job id, or backfill name for its latest job')
    .description('Restart every unfinished chain from its durable checkpoint')
    .action((idOrName: string) =>
      runCommand('backfill resume', async ({ db, messenger }) => {
        const job = await jobOrThrow(db(), idOrName);
        const resumed = await resumeBackfill(db(), messenger, job.id);
        return `${transitionMessage('resumed', resumed)}${resumed.changed ? `, ${resumed.partitions.length} chain(s) restarted` : ''}`;
      }),
    );

  command
    .command('cancel')
    .argument('<job>', 'job id, or backfill name for its latest job')
    .description('Stop for good; rows already written stay written')
    .action((idOrName: string) =>
      runCommand('backfill cancel', async ({ db }) => {
        const job = await jobOrThrow(db(), idOrName);
        return transitionMessage('cancelled', await cancelBackfill(db(), job.id));
      }),
    );

  command
    .command('status')
    .argument('<job>', 'job id, or backfill name for its latest job')
    .description('Progress, rate, ETA and throttle state')
    .option('--watch', 'draw a progress bar until the job finishes or pauses')
    .option('--json', 'print the job and its partitions as JSON')
    .action((idOrName: string, options: { watch?: boolean; json?: boolean }) =>
      runCommand('backfill status', async ({ db }) => {
        let job = await jobOrThrow(db(), idOrName);
        if (options.watch === true) job = await watchJob(db(), job.id);
        const partitions = await loadPartitions(db(), job.id);
        if (options.json === true) {
          return JSON.stringify({ job, partitions, progress: progressOf(job, partitions) }, null, 2);
        }
        return renderStatus(job, partitions);
      }),
    );

  command
    .command('list')
    .description('Recent backfill jobs, and the backfills there are')
    .option('--limit <n>', 'jobs to show', positiveInt, 20)
    .action((options: { limit: number }) =>
      runCommand('backfill list', async ({ db }) => {
        const jobs = await listJobs(db(), options.limit);
        const lines = ['backfills:'];
        for (const definition of BACKFILLS.values())
          lines.push(`  ${definition.name.padEnd(24)} ${definition.description}`);
        lines.push('', 'jobs:');
        if (jobs.length === 0) lines.push('  (none)');
        const partitions = await loadPartitionsOf(
          db(),
          jobs.map((job) => job.id),
        );
        for (const job of jobs) {
          const progress = progressOf(job, partitions.get(job.id) ?? []);
          lines.push(
            `  ${job.id}  ${job.name.padEnd(20)} ${job.status.padEnd(10)} ${(progress.fraction * 100).toFixed(1).padStart(5)}%  ${formatCount(progress.rowsProcessed).padStart(12)} rows  ${job.createdAt.toISOString()}`,
          );
        }
        return lines.join('\n');
      }),
    );

  return command;
}
