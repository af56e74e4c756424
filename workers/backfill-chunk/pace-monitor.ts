import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import type { RateState } from '../../domain/backfill/checkpoint.ts';
import type { HealthProbe } from '../../domain/backfill/health-probe.ts';
import { LatencyController, type LatencyTargetPolicy } from '../../domain/backfill/latency-target.ts';
import type { BackfillJob } from '../../domain/backfill/records.ts';
import {
  decideLatencyThrottle,
  decideThrottle,
  type HealthReading,
  resolvePolicy,
  type ThrottleDecision,
  type ThrottlePolicy,
  ThrottleState,
} from '../../domain/backfill/throttle.ts';
import { describeError, RetryableError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { ProbeThreadData, ProbeThreadMessage } from './latency-probe-thread.ts';

/**
 * Probing off the batch path. Per job with chains in this process, loops beside the
 * batches keep the throttle's inputs fresh — the health probe every `probeEveryMs` and,
 * with a latency target, the production-like probe in its own thread — and a batch only
 * reads the latest decision from memory (`decide`, synchronous). A job's loops start with
 * its first chunk here and stop once no chunk of it ran for IDLE_STOP_MS, so an operator's
 * pause of less than that keeps feeding the latency baseline.
 */

const IDLE_STOP_MS = 60_000;
/** While the latency target learns its baseline, a chain looks again this often. */
const LEARNING_RECHECK_MS = 200;
const SAMPLE_FLUSH_MS = 50;
const FIRST_READING_MS = 10_000;

const clock = () => performance.timeOrigin + performance.now();

export interface PaceMonitorDeps {
  readonly pool: pg.Pool;
  readonly databaseUrl: string;
  readonly probe: HealthProbe;
  readonly logger: Logger;
}

/** One job's pace in this process: its inputs and the decisions its chains read. */
export class JobPace {
  private health: { reading: HealthReading; seq: number } | undefined;
  private readonly firstReading: Promise<void>;
  private readonly byPartition = new Map<number, { seq: number; decision: ThrottleDecision }>();
  private readonly latency: LatencyController | undefined;
  private thread: Worker | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private loggedRevision = -1;
  /** Rows this process's batches of the job committed. */
  private ownRows = 0;
  private othersLook: { at: number; jobRows: number; own: number } | undefined;
  users = 0;
  idleSince = clock();

  private readonly deps: PaceMonitorDeps;
  readonly job: BackfillJob;
  /** The job's policy over today's defaults (a job recorded before a setting existed lacks it). */
  readonly policy: ThrottlePolicy;

  constructor(deps: PaceMonitorDeps, job: BackfillJob) {
    this.deps = deps;
    this.job = job;
    const policy = resolvePolicy(job.throttlePolicy);
    this.policy = policy;
    if (policy.latencyTarget !== null) {
      this.latency = new LatencyController(policy.latencyTarget, job.batchSize, clock(), {
        tracksOthers: true,
      });
      this.startProbeThread(policy.latencyTarget);
    }
    let resolveFirst: () => void = () => {};
    this.firstReading = new Promise((resolve) => {
      resolveFirst = resolve;
    });
    const probeHealth = async () => {
      try {
        const reading = await deps.probe(job.id, 0);
        this.health = { reading, seq: (this.health?.seq ?? 0) + 1 };
        resolveFirst();
      } catch (error) {
        deps.logger.warn({ jobId: job.id, err: describeError(error) }, 'backfill health probe failed');
      }
      if (this.latency !== undefined) await this.checkOthers();
      if (!this.stopped) this.healthTimer = setTimeout(probeHealth, policy.probeEveryMs);
    };
    void probeHealth();
  }

  /**
   * The job's rows committed since the last look, less this process's own: the other
   * processes' batches, for the latency baseline (LatencyController.othersRan). Read with
   * the health probe, one indexed sum over the job's partitions.
   */
  private async checkOthers(): Promise<void> {
    const at = clock();
    const own = this.ownRows;
    try {
      const { rows } = await this.deps.pool.query<{ rows: number }>(
        'SELECT coalesce(sum(rows_processed), 0)::float8 AS rows FROM backfill_partitions WHERE job_id = $1',
        [this.job.id],
      );
      const jobRows = rows[0]?.rows ?? 0;
      const previous = this.othersLook;
      this.othersLook = { at, jobRows, own };
      if (previous !== undefined)
        (this.latency as LatencyController).othersRan(
          previous.at,
          at,
          jobRows - previous.jobRows - (own - previous.own),
        );
    } catch (error) {
      // No report: the controller keeps quiet samples waiting (and learns nothing) meanwhile.
      this.deps.logger.warn(
        { jobId: this.job.id, err: describeError(error) },
        'backfill progress read failed',
      );
    }
  }

  /** Resolves once the first health reading is in (a chain's first batch waits for it). */
  async ready(signal: AbortSignal): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.firstReading,
        new Promise<void>((_, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          timer = setTimeout(
            () =>
              reject(new RetryableError(`no health reading of the database within ${FIRST_READING_MS} ms`)),
            FIRST_READING_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The decision for the partition's next step, from memory. On health, one throttle step
   * per new reading (a batch between two readings keeps the partition's last decision);
   * on a latency target, the controller's current verdict.
   */
  decide(partition: number, rate: RateState, ceiling: number | null): ThrottleDecision {
    const health = this.health;
    if (health === undefined) throw new Error('decide before the first health reading');
    const { policy } = this;
    if (this.latency !== undefined && policy.latencyTarget !== null) {
      return decideLatencyThrottle(
        { ...policy, latencyTarget: policy.latencyTarget },
        { verdict: this.latency.advance(clock()), ceiling, reading: health.reading },
      );
    }
    const cached = this.byPartition.get(partition);
    if (cached !== undefined && cached.seq === health.seq) return cached.decision;
    const decision = decideThrottle(policy, {
      limit: rate.rateLimit,
      observedRate: rate.currentRate,
      ceiling,
      reading: health.reading,
    });
    this.byPartition.set(partition, { seq: health.seq, decision });
    return decision;
  }

  /** How long a decision that runs no batch holds the chain, ms. */
  holdMs(decision: ThrottleDecision): number {
    return decision.state === ThrottleState.Learning ? LEARNING_RECHECK_MS : this.policy.pauseMs;
  }

  /** Tells the latency controller how many chunks of the job run here (none: at rest). */
  chainsActive(): void {
    this.latency?.chainsActive(this.users, clock());
  }

  batchStarted(): void {
    this.latency?.batchStarted();
  }

  batchEnded(rows: number): void {
    this.ownRows += rows;
    this.latency?.batchEnded(clock(), rows);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.healthTimer !== undefined) clearTimeout(this.healthTimer);
    const thread = this.thread;
    this.thread = undefined;
    if (thread !== undefined) {
      thread.postMessage('stop');
      // The probe's query is short; past this, the thread is ended whatever it is doing.
      const exited = new Promise((resolve) => thread.once('exit', resolve));
      const timer = setTimeout(() => void thread.terminate(), 2_000);
      await exited;
      clearTimeout(timer);
    }
  }

  private startProbeThread(target: LatencyTargetPolicy) {
    const data: ProbeThreadData = {
      databaseUrl: this.deps.databaseUrl,
      sql: target.probeSql,
      lowId: this.job.lowId,
      highWaterId: this.job.highWaterId,
      everyMs: target.sampleEveryMs,
      flushEveryMs: SAMPLE_FLUSH_MS,
    };
    const thread = new Worker(new URL('./latency-probe-thread.ts', import.meta.url), { workerData: data });
    thread.unref();
    thread.on('message', (message: ProbeThreadMessage) => {
      if (message.kind === 'priority') {
        this.deps.logger.info(
          { jobId: this.job.id, probePriority: message.priority },
          'backfill latency probe started',
        );
        return;
      }
      if (message.kind === 'error') {
        this.deps.logger.warn({ jobId: this.job.id, err: message.message }, 'backfill latency probe failed');
        return;
      }
      const controller = this.latency as LatencyController;
      for (let index = 0; index + 1 < message.samples.length; index += 2) {
        controller.addSample(message.samples[index] as number, message.samples[index + 1] as number);
      }
      const verdict = controller.advance(clock());
      // Every change of pace at debug level: the trail to read when a pace looks wrong
      // (the throttle events keep only changes of state).
      if (verdict.revision !== this.loggedRevision) {
        this.loggedRevision = verdict.revision;
        this.deps.logger.debug({ jobId: this.job.id, ...verdict }, 'backfill latency verdict');
      }
    });
    thread.on('error', (error) => {
      this.deps.logger.error(
        { jobId: this.job.id, err: describeError(error) },
        'backfill latency probe thread died',
      );
    });
    this.thread = thread;
  }
}

/** The worker's JobPaces, by job id: started by a job's first chunk, stopped when idle or at teardown. */
export class PaceMonitor {
  private readonly jobs = new Map<string, JobPace>();
  private readonly sweeper: NodeJS.Timeout;

  private readonly deps: PaceMonitorDeps;

  constructor(deps: PaceMonitorDeps) {
    this.deps = deps;
    this.sweeper = setInterval(() => void this.sweep(), 5_000);
    this.sweeper.unref();
  }

  /** The job's pace for one chunk; `release` it when the chunk ends. */
  acquire(job: BackfillJob): JobPace {
    let pace = this.jobs.get(job.id);
    if (pace === undefined) {
      pace = new JobPace(this.deps, job);
      this.jobs.set(job.id, pace);
    }
    pace.users += 1;
    pace.chainsActive();
    return pace;
  }

  release(pace: JobPace): void {
    pace.users -= 1;
    pace.chainsActive();
    if (pace.users === 0) pace.idleSince = clock();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.jobs.values()];
    this.jobs.clear();
    await Promise.all(all.map((pace) => pace.stop()));
  }

  private async sweep() {
    for (const [jobId, pace] of this.jobs) {
      if (pace.users === 0 && clock() - pace.idleSince > IDLE_STOP_MS) {
        this.jobs.delete(jobId);
        await pace.stop();
      }
    }
  }
}
