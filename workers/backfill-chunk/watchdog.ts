import { SpanKind } from '@opentelemetry/api';
import type pg from 'pg';
import { shortestLiveStallMs, unsettledJobIds } from '../../domain/backfill/jobs.ts';
import { settleJob } from '../../domain/backfill/lifecycle.ts';
import { restartChunk } from '../../domain/backfill/messages.ts';
import { claimStalledPartitions } from '../../domain/backfill/partitions.ts';
import { describeError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Messenger } from '../../shared/messaging/messenger.ts';
import { inNewTrace, linkTo } from '../../shared/telemetry/new-trace.ts';

/**
 * Restarts chains that lost their message. A chain's message can be gone for good — dead-
 * lettered after a long database outage, or held invisible for the queue's visibility
 * timeout by a worker that was killed — while its partition still says `running`. Every
 * batch pushes the partition's stall deadline forward (and a delayed chunk pushes it past
 * its delay); a partition past its deadline is claimed here (one worker wins the UPDATE)
 * and sent a new chunk from its durable cursor. If the old message turns up after all,
 * the compare-and-set lets only one of the two go on.
 *
 * It gives up on a chain restarted MAX_REVIVALS times without committing a batch in between
 * (domain/backfill/partitions.ts): the partition fails with that reason and the job settles.
 *
 * It also settles jobs left in pausing/cancelling/running with no chain running (a worker
 * killed between stopping its chain and settling the job).
 */

/** One pass; returns the shortest stall timeout among live jobs, ms (undefined: none is live). */
async function runWatchdogPass(
  pool: pg.Pool,
  messenger: Messenger,
  logger: Logger,
): Promise<number | undefined> {
  for (const partition of await claimStalledPartitions(pool)) {
    if (partition.gaveUp) {
      logger.error(
        { jobId: partition.jobId, partition: partition.partition, revivals: partition.revivals },
        'backfill chain kept stalling: partition failed, watchdog gave up',
      );
      await settleJob(pool, partition.jobId);
      continue;
    }
    const next = restartChunk(partition.jobId, partition);
    await inNewTrace(
      `backfill ${partition.name} restart stalled chain`,
      {
        kind: SpanKind.PRODUCER,
        links: [linkTo(partition.traceId, partition.spanId, { 'adfleet.link': 'backfill job' })],
        attributes: {
          'adfleet.backfill.job_id': partition.jobId,
          'adfleet.backfill.partition': partition.partition,
        },
      },
      () => messenger.send('BackfillChunk', next),
    );
    logger.warn(
      { jobId: partition.jobId, partition: partition.partition, cursor: partition.cursor },
      'backfill chain stalled: restarted from its checkpoint',
    );
  }
  for (const id of await unsettledJobIds(pool)) await settleJob(pool, id);
  return shortestLiveStallMs(pool);
}

export interface Watchdog {
  stop(): Promise<void>;
}

/**
 * Runs a pass now and then: every half of the shortest live stall timeout, between 0.5 s
 * and 10 s. Failures are logged and the next pass tries again.
 */
export function startWatchdog(pool: pg.Pool, messenger: Messenger, logger: Logger): Watchdog {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass();
    }, delayMs);
    timer.unref();
  };
  const pass = async () => {
    let next = 10_000;
    try {
      const shortestStallMs = await runWatchdogPass(pool, messenger, logger);
      if (shortestStallMs !== undefined) next = Math.min(10_000, Math.max(500, shortestStallMs / 2));
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'backfill watchdog pass failed');
    }
    schedule(next);
  };
  schedule(1_000);
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
