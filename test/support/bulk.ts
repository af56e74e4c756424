import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { submitBulkFile } from '../../domain/bulk/submit.ts';

/**
 * A bulk job of keyword bid rows (`profile_id,entity_type,entity_id,bid` lines, without the
 * header) as dispatch leaves it: submitted through `submitBulkFile`, running, every item due.
 * Returns its id.
 */
export async function submitDueJob(pool: pg.Pool, rows: readonly string[], label: string): Promise<string> {
  const path = join(tmpdir(), `${label}-${process.pid}.csv`);
  await writeFile(path, `${['profile_id,entity_type,entity_id,bid', ...rows].join('\n')}\n`);
  const submitted = await submitBulkFile(pool, { path, submittedBy: 'test' });
  if (!submitted.ok) throw new Error(JSON.stringify(submitted.errors));
  const jobId = submitted.jobId as string;
  await pool.query(`UPDATE bulk_jobs SET status = 'RUNNING', dispatched_at = now() WHERE id = $1`, [jobId]);
  await pool.query('UPDATE bulk_items SET due_at = now() WHERE job_id = $1', [jobId]);
  return jobId;
}
