import type pg from 'pg';
import { createHealthProbe, type HealthProbe } from '../../domain/backfill/health-probe.ts';
import { loadJob, markStarted } from '../../domain/backfill/jobs.ts';
import { restartChunk } from '../../domain/backfill/messages.ts';
import { loadPartitions } from '../../domain/backfill/partitions.ts';
import { BACKFILLS, type BackfillRegistry } from '../../domain/backfill/registry.ts';
import { JobStatus, PartitionStatus } from '../../domain/backfill/status.ts';
import { createPool } from '../../shared/db.ts';
import { FatalError } from '../../shared/errors.ts';
import { defineWorker, type WorkerSpec } from '../../shared/worker.ts';
import { type ChainDeps, DEFAULT_TRACE_CHUNK_BUDGET, runChunk } from './chain.ts';
import { PaceMonitor } from './pace-monitor.ts';
import { startWatchdog, type Watchdog } from './watchdog.ts';

/**
 * backfill-chunk: runs production-safe backfills. `BackfillRequested` starts one chain of
 * `BackfillChunk` messages per partition; each chunk runs a few throttled, checkpointed
 * batches and sends the next (chain.ts, over domain/backfill/checkpoint.ts). A watchdog
 * restarts chains whose message was lost (watchdog.ts).
 */

export interface BackfillWorkerOptions {
  readonly registry?: BackfillRegistry;
  /** Replaces the database health probe (tests). */
  readonly probe?: (pool: pg.Pool) => HealthProbe;
  readonly traceChunkBudget?: number;
  readonly beforeSendNext?: ChainDeps['beforeSendNext'];
  /** @defaultValue true */
  readonly watchdog?: boolean;
}

interface Deps extends ChainDeps {
  readonly watchdog: Watchdog | undefined;
}

export function createBackfillChunkWorker(options: BackfillWorkerOptions = {}): WorkerSpec<Deps> {
  return defineWorker<'backfill-chunk', Deps>({
    queue: 'backfill-chunk',
    async setup({ config, logger, messenger }) {
      // One batch transaction per chain at a time and one health probe per job: a few
      // connections go far. The latency probe has a connection of its own (pace-monitor.ts).
      const pool = createPool(config.DATABASE_URL, {
        max: Math.min(10, config.ADFLEET_CONCURRENCY + 2),
        applicationName: 'adfleet-backfill-chunk',
      });
      await pool.query('SELECT 1');
      return {
        pool,
        registry: options.registry ?? BACKFILLS,
        paces: new PaceMonitor({
          pool,
          databaseUrl: config.DATABASE_URL,
          probe: (options.probe ?? createHealthProbe)(pool),
          logger,
        }),
        traceChunkBudget: options.traceChunkBudget ?? DEFAULT_TRACE_CHUNK_BUDGET,
        ...(options.beforeSendNext === undefined ? {} : { beforeSendNext: options.beforeSendNext }),
        watchdog: options.watchdog === false ? undefined : startWatchdog(pool, messenger, logger),
      };
    },
    probes: ({ pool }) => ({ postgres: () => pool.query('SELECT 1') }),
    async teardown(deps) {
      await deps.watchdog?.stop();
      await deps.paces.stop();
      await deps.pool.end();
    },
    handlers: {
      BackfillRequested: async ({ jobId }, { deps, messenger, logger }) => {
        const job = await loadJob(deps.pool, jobId);
        if (job === undefined) throw new FatalError(`no backfill job ${jobId}`);
        if (job.status !== JobStatus.Running) {
          logger.info({ jobId, status: job.status }, 'backfill requested but not running: nothing to start');
          return;
        }
        await markStarted(deps.pool, jobId);
        // Only partitions that never ran: a duplicate event after progress starts nothing,
        // one before progress races the first chunk and loses the compare-and-set.
        const fresh = (await loadPartitions(deps.pool, jobId)).filter(
          (partition) =>
            partition.status === PartitionStatus.Running &&
            partition.batches === 0 &&
            partition.cursor === partition.rangeStart,
        );
        await messenger.sendBatch(
          'BackfillChunk',
          fresh.map((partition) => restartChunk(jobId, partition)),
        );
        logger.info({ jobId, backfill: job.name, partitions: fresh.length }, 'backfill started');
      },
      BackfillChunk: async (chunk, { deps, messenger, logger, signal, message }) => {
        await runChunk(deps, chunk, { messageId: message.id, messenger, logger, signal });
      },
    },
  });
}

export const backfillChunkWorker = createBackfillChunkWorker();
