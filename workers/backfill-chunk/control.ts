import type pg from 'pg';
import type { BatchEntry } from '../../shared/messaging/producer.ts';
import type { Fleet } from '../../shared/worker.ts';
import {
  type BackfillJob,
  type BackfillPartition,
  createJob,
  requestCancel,
  requestPause,
  requestResume,
  type StartRequest,
  type Transition,
} from './jobs.ts';
import { type BackfillRequested, restartChunk } from './messages.ts';
import type { BackfillRegistry } from './registry.ts';

/**
 * Operator actions as the CLI (and tests) perform them: record, then message. Recording
 * first means a crash in between leaves a job the watchdog restarts, never a message for
 * a job that does not exist.
 */

export async function startBackfill(
  pool: pg.Pool,
  fleet: Fleet,
  registry: BackfillRegistry,
  request: StartRequest,
): Promise<{ job: BackfillJob; partitions: BackfillPartition[] }> {
  const created = await createJob(pool, registry, request);
  if (created.partitions.length > 0) {
    await fleet.publish('BackfillRequested', {
      jobId: created.job.id,
      name: created.job.name,
    } satisfies BackfillRequested);
  }
  return created;
}

export function pauseBackfill(pool: pg.Pool, jobId: string): Promise<Transition> {
  return requestPause(pool, jobId);
}

export function cancelBackfill(pool: pg.Pool, jobId: string): Promise<Transition> {
  return requestCancel(pool, jobId);
}

/** Resumes a paused (or failed) job: each unfinished partition's chain restarts from its durable cursor. */
export async function resumeBackfill(
  pool: pg.Pool,
  fleet: Fleet,
  jobId: string,
): Promise<Transition & { partitions: BackfillPartition[] }> {
  const resumed = await requestResume(pool, jobId);
  const entries: BatchEntry[] = resumed.partitions.map((partition) => ({
    type: 'BackfillChunk',
    payload: restartChunk(jobId, partition),
  }));
  if (entries.length > 0) await fleet.sendBatch('backfill-chunk', entries);
  return resumed;
}
