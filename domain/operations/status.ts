import type { SQSClient } from '@aws-sdk/client-sqs';
import type pg from 'pg';
import { type Config, syncFreshnessSloSeconds } from '../../contract/config.ts';
import { QUEUE_NAMES, type QueueName } from '../../contract/topology.ts';
import type { QueueProducer } from '../../shared/messaging/producer.ts';
import { type BackfillDetail, type BackfillView, readBackfill, readBackfills } from './backfills.ts';
import { type BulkJobDetail, type BulkJobView, readBulkJob, readBulkJobs } from './bulk.ts';
import type { DeadLetterRecord } from './dead-letters.ts';
import { type ProfilesSummary, readProfiles } from './profiles.ts';
import { QueueReader, type QueueSnapshot } from './queues.ts';
import { readWorkers, type ServiceWorkers } from './workers.ts';

/**
 * THE operations read model: what runs, how fresh, what failed and why, what is stuck, and
 * when it will finish. `adfleet status` and `adfleet dashboard` both render what this
 * returns; neither queries anything itself.
 *
 * Findings are the facts past a threshold, most urgent first. A critical one needs a human
 * (status exits non-zero); a warning is worth a look.
 */

export const Severity = { Critical: 'critical', Warning: 'warning' } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

export interface Finding {
  readonly severity: Severity;
  readonly area: 'queue' | 'dead-letters' | 'workers' | 'backfill' | 'bulk' | 'profiles';
  /** What it is about: a queue, a service, a job id. */
  readonly subject: string;
  readonly message: string;
  /** The CLI command that acts on it (the dashboard is read-only). */
  readonly command?: string;
  readonly traceUrl?: string;
}

export interface OperationsStatus {
  readonly at: Date;
  readonly findings: readonly Finding[];
  readonly needsHuman: boolean;
  readonly queues: readonly QueueSnapshot[];
  readonly workers: readonly ServiceWorkers[];
  readonly backfills: readonly BackfillView[];
  readonly bulkJobs: readonly BulkJobView[];
  readonly profiles: ProfilesSummary;
}

export interface Thresholds {
  /** Oldest-message age past which a queue is not keeping up; default: the topology's per queue. */
  readonly maxMessageAgeSeconds?: number;
}

export interface OperationsReaderOptions {
  readonly config: Pick<
    Config,
    | 'AWS_ENDPOINT_URL'
    | 'AWS_REGION'
    | 'ADFLEET_RESOURCE_PREFIX'
    | 'ADFLEET_JAEGER_URL'
    | 'ADFLEET_SYNC_FRESHNESS_SLO_HOURS'
    | 'ADFLEET_SYNC_STALE_AFTER_SECONDS'
  >;
  readonly db: pg.Pool;
  readonly sqs: SQSClient;
  readonly producer: QueueProducer;
  readonly thresholds?: Thresholds;
}

export function traceUrl(jaegerUrl: string, traceId: string | null | undefined): string | undefined {
  return traceId === null || traceId === undefined || traceId === ''
    ? undefined
    : `${jaegerUrl.replace(/\/$/, '')}/trace/${traceId}`;
}

export function formatAge(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '--';
  const total = Math.round(seconds);
  if (total < 60) return `${total}s`;
  if (total < 3_600) return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, '0')}s`;
  if (total < 86_400)
    return `${Math.floor(total / 3_600)}h${String(Math.floor((total % 3_600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(total / 86_400)}d${String(Math.floor((total % 86_400) / 3_600)).padStart(2, '0')}h`;
}

function queueFindings(queue: QueueSnapshot, workers: ServiceWorkers | undefined): Finding[] {
  const found: Finding[] = [];
  if (queue.error !== undefined) {
    found.push({
      severity: Severity.Critical,
      area: 'queue',
      subject: queue.queue,
      message: `cannot read the queue: ${queue.error}`,
    });
  }
  if (queue.oldestAgeSeconds !== null && queue.oldestAgeSeconds > queue.maxMessageAgeSeconds) {
    found.push({
      severity: Severity.Critical,
      area: 'queue',
      subject: queue.queue,
      message: `oldest message is ${formatAge(queue.oldestAgeSeconds)} old (threshold ${formatAge(queue.maxMessageAgeSeconds)}); ${queue.visible} visible, ${queue.inFlight} in flight`,
    });
  }
  if (queue.deadLetters.count > 0) {
    const [top] = queue.deadLetters.topReasons;
    found.push({
      severity: Severity.Critical,
      area: 'dead-letters',
      subject: queue.queue,
      message: `${queue.deadLetters.count} dead letter(s)${top === undefined ? '' : `; top reason (${top.count}/${queue.deadLetters.sampled}): ${top.reason}`}`,
      command: `adfleet dlq list --queue ${queue.queue}  (then: adfleet dlq redrive --queue ${queue.queue})`,
    });
  }
  const waiting = queue.visible + queue.delayed;
  if (workers !== undefined && workers.alive === 0 && waiting > 0) {
    found.push({
      severity: Severity.Critical,
      area: 'workers',
      subject: queue.queue,
      message: `no live ${queue.queue} process while ${waiting} message(s) wait`,
    });
  }
  return found;
}

function workerFindings(service: ServiceWorkers): Finding[] {
  const found: Finding[] = [];
  const who = (process: ServiceWorkers['processes'][number]) =>
    `pid ${process.pid} on ${process.task ?? process.host}`;
  const stale = service.processes
    .filter((process) => process.stale)
    .sort((a, b) => a.beatAgeSeconds - b.beatAgeSeconds);
  const [newest] = stale;
  if (stale.length === 1 && newest !== undefined) {
    found.push({
      severity: Severity.Warning,
      area: 'workers',
      subject: service.service,
      message: `${who(newest)}: last heartbeat ${formatAge(newest.beatAgeSeconds)} ago — died without stopping (${newest.inFlight} in flight at its last beat)`,
    });
  } else if (stale.length > 1 && newest !== undefined) {
    // One line per service however many died: a crash loop must not push everything else off the screen.
    const named = stale.slice(0, 3).map(who).join(', ');
    found.push({
      severity: Severity.Warning,
      area: 'workers',
      subject: service.service,
      message: `${stale.length} processes died without stopping (last heartbeats ${formatAge(newest.beatAgeSeconds)} to ${formatAge(stale.at(-1)?.beatAgeSeconds)} ago): ${named}${stale.length > 3 ? `, and ${stale.length - 3} more` : ''}`,
    });
  }
  for (const process of service.processes) {
    if (!process.stale && !process.ready) {
      found.push({
        severity: Severity.Warning,
        area: 'workers',
        subject: service.service,
        message: `${who(process)} not ready: ${process.notReadyReason ?? 'no reason given'}`,
      });
    }
  }
  return found;
}

function backfillFindings(view: BackfillView, jaegerUrl: string): Finding[] {
  const { job } = view;
  const found: Finding[] = [];
  const trace = traceUrl(jaegerUrl, job.traceId);
  for (const chain of view.stalled) {
    found.push({
      severity: Severity.Critical,
      area: 'backfill',
      subject: `${job.name} ${job.id}`,
      message: `chain ${chain.partition} has made no progress for ${formatAge(chain.idleSeconds)} (stall limit ${formatAge(job.stallAfterMs / 1000)}): its worker died or its message was lost; the watchdog restarts it from its checkpoint`,
      command: `adfleet backfill status ${job.id}`,
      ...(trace === undefined ? {} : { traceUrl: trace }),
    });
  }
  if (job.status === 'failed') {
    found.push({
      severity: Severity.Critical,
      area: 'backfill',
      subject: `${job.name} ${job.id}`,
      message: `failed: ${job.error ?? 'no error recorded'}`,
      command: `adfleet backfill resume ${job.id}`,
      ...(trace === undefined ? {} : { traceUrl: trace }),
    });
  }
  return found;
}

function bulkFindings(view: BulkJobView, jaegerUrl: string): Finding[] {
  const { job, progress } = view;
  const found: Finding[] = [];
  const trace = traceUrl(jaegerUrl, job.traceId);
  const subject = `${job.fileName} ${job.id}`;
  if (view.stuck) {
    const { pending, running, retry, total } = job.counts;
    found.push({
      severity: Severity.Critical,
      area: 'bulk',
      subject,
      message: `${job.status}: no item has changed for ${formatAge(view.idleSeconds)} while ${total - progress.done} of ${total} are still to do (${pending} pending, ${running} running, ${retry} waiting to retry)`,
      command: `adfleet bulk status ${job.id}`,
      ...(trace === undefined ? {} : { traceUrl: trace }),
    });
  }
  if (job.counts.failed > 0) {
    const [top] = view.failures;
    found.push({
      severity: Severity.Warning,
      area: 'bulk',
      subject,
      message: `${job.counts.failed} of ${job.counts.total} item(s) failed${top === undefined ? '' : `; most often ${top.code} (${top.count}): ${top.example}`}`,
      command: `adfleet bulk report ${job.id} --failed  (after fixing: adfleet bulk retry-failed ${job.id})`,
      ...(trace === undefined ? {} : { traceUrl: trace }),
    });
  }
  return found;
}

/** A profile failing this long needs a person (credentials, a revoked grant), not more retries. */
export const FAILING_CRITICAL_SECONDS = 3_600;

function profileFindings(profiles: ProfilesSummary): Finding[] {
  const found: Finding[] = [];
  const now = Date.now();
  for (const profile of profiles.failingProfiles) {
    const failing = profile.failing;
    if (failing === undefined) continue;
    const forSeconds = (now - failing.since.getTime()) / 1000;
    found.push({
      severity: forSeconds > FAILING_CRITICAL_SECONDS ? Severity.Critical : Severity.Warning,
      area: 'profiles',
      subject: `profile ${profile.profileId} (${profile.accountName})`,
      message: `sync failing for ${formatAge(forSeconds)}, last good sync ${profile.lastGoodSyncAt === undefined ? 'never' : `${formatAge(profile.ageSeconds)} ago`}: ${failing.lastError}`,
      command: `adfleet sync runs --profile ${profile.profileId}  (after fixing: adfleet sync --profile ${profile.profileId})`,
    });
  }
  for (const profile of profiles.lostSyncs) {
    const running = profile.running;
    if (running === undefined) continue;
    found.push({
      severity: Severity.Critical,
      area: 'profiles',
      subject: `profile ${profile.profileId} (${profile.accountName})`,
      message: `sync run ${running.runId} has recorded no page for ${formatAge(running.heartbeatAt === undefined ? null : (now - running.heartbeatAt.getTime()) / 1000)} (${running.pages} pages so far): its worker died; the next request for the profile takes it over from its checkpoint`,
      command: `adfleet sync --profile ${profile.profileId}`,
    });
  }
  if (profiles.stale > 0) {
    found.push({
      severity: Severity.Warning,
      area: 'profiles',
      subject: 'profiles',
      message: `${profiles.stale} of ${profiles.total} profile(s) not synced within ${formatAge(profiles.freshnessObjectiveSeconds)}; oldest sync ${formatAge(profiles.oldestAgeSeconds)} ago`,
      command: 'adfleet sync-all',
    });
  }
  return found;
}

export class OperationsReader {
  readonly #options: OperationsReaderOptions;
  readonly #queues: QueueReader;

  constructor(options: OperationsReaderOptions) {
    this.#options = options;
    const maxAge = options.thresholds?.maxMessageAgeSeconds;
    this.#queues = new QueueReader({
      config: options.config,
      sqs: options.sqs,
      producer: options.producer,
      ...(maxAge === undefined
        ? {}
        : { maxMessageAgeSeconds: Object.fromEntries(QUEUE_NAMES.map((queue) => [queue, maxAge])) }),
    });
  }

  async status(): Promise<OperationsStatus> {
    const { db } = this.#options;
    const [queues, workers, backfills, bulkJobs, profiles] = await Promise.all([
      this.#queues.snapshot(),
      readWorkers(db),
      readBackfills(db),
      readBulkJobs(db),
      readProfiles(db, this.#profilesOptions(20)),
    ]);
    const jaeger = this.#options.config.ADFLEET_JAEGER_URL;
    const findings = [
      ...queues.flatMap((queue) =>
        queueFindings(
          queue,
          workers.find((w) => w.service === queue.queue),
        ),
      ),
      ...workers.flatMap(workerFindings),
      ...backfills.flatMap((view) => backfillFindings(view, jaeger)),
      ...bulkJobs.flatMap((view) => bulkFindings(view, jaeger)),
      ...profileFindings(profiles),
    ].sort((a, b) => (a.severity === b.severity ? 0 : a.severity === Severity.Critical ? -1 : 1));
    return {
      at: new Date(),
      findings,
      needsHuman: findings.some((finding) => finding.severity === Severity.Critical),
      queues,
      workers,
      backfills,
      bulkJobs,
      profiles,
    };
  }

  backfill(jobId: string): Promise<BackfillDetail | undefined> {
    return readBackfill(this.#options.db, jobId);
  }

  bulkJob(jobId: string): Promise<BulkJobDetail | undefined> {
    return readBulkJob(this.#options.db, jobId);
  }

  profiles(limit = 200): Promise<ProfilesSummary> {
    return readProfiles(this.#options.db, this.#profilesOptions(limit));
  }

  #profilesOptions(limit: number) {
    const { config } = this.#options;
    return {
      freshnessSeconds: syncFreshnessSloSeconds(config),
      staleAfterSeconds: config.ADFLEET_SYNC_STALE_AFTER_SECONDS,
      limit,
    };
  }

  deadLetters(queue: QueueName): Promise<{ records: DeadLetterRecord[]; count: number }> {
    return this.#queues.deadLetters(queue);
  }

  close(): void {
    this.#queues.close();
  }
}
