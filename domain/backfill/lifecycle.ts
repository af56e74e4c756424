import type pg from 'pg';
import type { Messenger } from '../../shared/messaging/messenger.ts';
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
import { restartChunk } from './messages.ts';
import type { BackfillRegistry } from './registry.ts';

/**
 * Operator actions as the CLI (and tests) perform them: record, then message. Recording
 * first means a crash in between leaves a job the watchdog restarts, never a message for
 * a job that does not exist.
 */

export async function startBackfill(
  pool: pg.Pool,
  messenger: Messenger,
  registry: BackfillRegistry,
  request: StartRequest,
): Promise<{ job: BackfillJob; partitions: BackfillPartition[] }> {
  const created = await createJob(pool, registry, request);
  if (created.partitions.length > 0) {
    await messenger.publish('BackfillRequested', {
      jobId: created.job.id,
      name: created.job.name,
    });
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
  messenger: Messenger,
  jobId: string,
): Promise<Transition & { partitions: BackfillPartition[] }> {
  const resumed = await requestResume(pool, jobId);
  const chunks = resumed.partitions.map((partition) => restartChunk(jobId, partition));
  if (chunks.length > 0) await messenger.sendBatch('BackfillChunk', chunks);
  return resumed;
}
