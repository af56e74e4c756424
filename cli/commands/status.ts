import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import {
  type Finding,
  formatAge,
  OperationsReader,
  type OperationsStatus,
  Severity,
} from '../../domain/operations/status.ts';
import { type CommandContext, runCommand } from '../context.ts';
import { formatCount as count } from '../format.ts';

/**
 * `adfleet status`: the operations read model (domain/operations/) on one terminal screen.
 * Findings past a threshold come first; exit code 2 when one of them needs a human, so a
 * script or a cron job can page on it.
 */

export const NEEDS_HUMAN_EXIT_CODE = 2;

function pad(value: string, width: number): string {
  return value.length >= width ? value : value + ' '.repeat(width - value.length);
}

function padStart(value: string, width: number): string {
  return value.length >= width ? value : ' '.repeat(width - value.length) + value;
}

function findingLine(finding: Finding): string[] {
  const mark = finding.severity === Severity.Critical ? '!! CRIT' : ' ! WARN';
  const lines = [`${mark}  ${pad(finding.area, 12)} ${finding.subject}: ${finding.message}`];
  if (finding.command !== undefined) lines.push(`         ${''.padEnd(12)} → ${finding.command}`);
  if (finding.traceUrl !== undefined) lines.push(`         ${''.padEnd(12)}   trace ${finding.traceUrl}`);
  return lines;
}

export function renderStatus(status: OperationsStatus): string {
  const critical = status.findings.filter((finding) => finding.severity === Severity.Critical).length;
  const warnings = status.findings.length - critical;
  const lines = [
    `adfleet status  ${status.at.toISOString()}  ${
      status.needsHuman
        ? `NEEDS A HUMAN: ${critical} critical, ${warnings} warning(s)`
        : warnings > 0
          ? `ok, ${warnings} warning(s)`
          : 'all clear'
    }`,
  ];
  if (status.findings.length > 0) {
    lines.push('', 'ATTENTION (past a threshold)');
    for (const finding of status.findings) lines.push(...findingLine(finding));
  }

  lines.push(
    '',
    `QUEUES          ${padStart('visible', 8)} ${padStart('in flight', 9)} ${padStart('delayed', 8)} ${padStart('oldest', 9)}  ${padStart('DLQ', 5)}  top dead-letter reason`,
  );
  for (const queue of status.queues) {
    const tooOld = queue.oldestAgeSeconds !== null && queue.oldestAgeSeconds > queue.maxMessageAgeSeconds;
    const age =
      queue.oldestAgeSeconds === null
        ? queue.oldestAgeSource === 'unavailable' && queue.visible + queue.inFlight > 0
          ? 'n/a'
          : '--'
        : `${tooOld ? '!' : ''}${formatAge(queue.oldestAgeSeconds)}`;
    const dead = queue.deadLetters.count;
    const [top] = queue.deadLetters.topReasons;
    lines.push(
      `  ${pad(queue.queue, 14)}${padStart(count(queue.visible), 8)} ${padStart(count(queue.inFlight), 9)} ${padStart(count(queue.delayed), 8)} ${padStart(age, 9)}  ${padStart(dead > 0 ? `!${dead}` : '0', 5)}  ${
        queue.error !== undefined
          ? `(cannot read: ${queue.error})`
          : top === undefined
            ? ''
            : `${top.count}× ${top.reason.slice(0, 70)}`
      }`,
    );
  }

  lines.push('', 'WORKERS         alive  ready  stale  in flight  handled  failed');
  for (const service of status.workers) {
    const live = service.processes.filter((process) => !process.stale);
    const sum = (pick: (process: (typeof live)[number]) => number) =>
      live.reduce((total, process) => total + pick(process), 0);
    lines.push(
      `  ${pad(service.service, 14)}${padStart(String(service.alive), 5)}  ${padStart(String(service.ready), 5)}  ${padStart(service.stale > 0 ? `!${service.stale}` : '0', 5)}  ${padStart(count(sum((p) => p.inFlight)), 9)}  ${padStart(count(sum((p) => p.handled)), 7)}  ${padStart(count(sum((p) => p.failed)), 6)}`,
    );
  }

  lines.push('', 'BACKFILLS');
  if (status.backfills.length === 0) lines.push('  (none live or finished in the last day)');
  for (const { job, progress, stalled } of status.backfills) {
    lines.push(
      `  ${pad(job.name, 20)} ${job.id}  ${pad(job.status, 10)} ${padStart((progress.fraction * 100).toFixed(1), 5)}%  ${count(progress.rowsProcessed)} of ~${count(job.rowsEstimate)} rows  ${count(progress.rate)} rows/s  ETA ${formatAge(progress.etaSeconds)}  throttle ${progress.throttle?.state ?? '-'}${
        stalled.length > 0 ? `  !${stalled.length} chain(s) stalled` : ''
      }`,
    );
  }

  lines.push('', 'BULK JOBS');
  if (status.bulkJobs.length === 0) lines.push('  (none live or finished in the last day)');
  for (const { job, progress, stuck, idleSeconds } of status.bulkJobs) {
    lines.push(
      `  ${pad(job.fileName.slice(0, 28), 28)} ${job.id}  ${pad(job.status, 21)} ${padStart((progress.fraction * 100).toFixed(1), 5)}%  ${count(progress.done)} of ${count(job.counts.total)} items  ${job.counts.failed > 0 ? '!' : ''}${count(job.counts.failed)} failed  ${progress.itemsPerSecond.toFixed(1)} items/s  ETA ${formatAge(progress.etaSeconds)}${
        stuck ? `  !no change for ${formatAge(idleSeconds)}` : ''
      }`,
    );
  }

  const { profiles } = status;
  lines.push(
    '',
    `PROFILES  ${count(profiles.total)} total, ${profiles.stale > 0 ? '!' : ''}${count(profiles.stale)} not synced within ${formatAge(profiles.freshnessObjectiveSeconds)}, ${profiles.failing > 0 ? '!' : ''}${count(profiles.failing)} failing, ${count(profiles.running)} syncing, oldest sync ${formatAge(profiles.oldestAgeSeconds)} ago`,
  );
  const shown = [
    ...profiles.failingProfiles,
    ...profiles.stalest.filter((profile) => profile.pastSlo && profile.failing === undefined),
  ].slice(0, 5);
  for (const profile of shown) {
    lines.push(
      `  ${padStart(String(profile.profileId), 16)}  ${pad(profile.accountName.slice(0, 30), 30)} ${profile.lastGoodSyncAt === undefined ? 'never synced' : `synced ${formatAge(profile.ageSeconds)} ago`}${
        profile.failing === undefined ? '' : `  !failing: ${profile.failing.lastError.slice(0, 60)}`
      }`,
    );
  }
  return lines.join('\n');
}

function positiveSeconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0)
    throw new InvalidArgumentError('must be a positive number of seconds');
  return parsed;
}

interface StatusOptions {
  json?: boolean;
  watch?: boolean;
  interval: number;
  maxMessageAge?: number;
}

export function createReader(context: CommandContext, options: { maxMessageAge?: number }): OperationsReader {
  return new OperationsReader({
    config: context.config,
    db: context.db(),
    sqs: context.clients.sqs,
    producer: context.producer,
    ...(options.maxMessageAge === undefined
      ? {}
      : { thresholds: { maxMessageAgeSeconds: options.maxMessageAge } }),
  });
}

export function statusCommand(): Command {
  return new Command('status')
    .description(
      'What runs, how fresh, what failed and why, what is stuck, when it finishes (exit 2: needs a human)',
    )
    .option('--json', 'the whole read model as JSON')
    .option('--watch', 'redraw in place until Ctrl-C')
    .option('--interval <seconds>', 'redraw interval with --watch', positiveSeconds, 2)
    .option(
      '--max-message-age <seconds>',
      "oldest-message age past which a queue is flagged (default: each queue's own, from the topology)",
      positiveSeconds,
    )
    .action((options: StatusOptions) =>
      runCommand('status', async (context) => {
        const reader = createReader(context, options);
        try {
          if (options.watch === true) {
            for (;;) {
              const status = await reader.status();
              // Home and clear, then the screen: redrawn in place, no scrollback of old screens.
              process.stdout.write(
                `\x1b[H\x1b[2J${renderStatus(status)}\n\n(every ${options.interval}s; Ctrl-C to stop)\n`,
              );
              await sleep(options.interval * 1000);
            }
          }
          const status = await reader.status();
          return {
            // One line of JSON: what jq and log shippers take best.
            output: options.json === true ? JSON.stringify(status) : renderStatus(status),
            exitCode: status.needsHuman ? NEEDS_HUMAN_EXIT_CODE : 0,
          };
        } finally {
          reader.close();
        }
      }),
    );
}
