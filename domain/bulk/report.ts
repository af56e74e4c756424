import type pg from 'pg';
import type { ItemStatus } from './status.ts';

/** `bulk report`: one row per item with Amazon's answer, read in pages by id (streamed, any size). */

export interface ReportRow {
  readonly itemId: number;
  readonly line: number;
  readonly profileId: number;
  readonly entityType: string;
  readonly entityId: string;
  readonly change: Record<string, unknown>;
  readonly status: ItemStatus;
  readonly attempts: number;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly response: unknown;
  readonly finishedAt: Date | null;
}

export const REPORT_PAGE_ITEMS = 5_000;

export async function* reportRows(
  pool: pg.Pool,
  jobId: string,
  options: { readonly failedOnly?: boolean } = {},
): AsyncGenerator<ReportRow> {
  let after = 0;
  for (;;) {
    const { rows } = await pool.query<{
      id: number;
      line: number;
      profile_id: number;
      entity_type: string;
      entity_id: string;
      change: Record<string, unknown>;
      status: ItemStatus;
      attempts: number;
      error_code: string | null;
      error_message: string | null;
      response: unknown;
      finished_at: Date | null;
    }>(
      `SELECT id, line, profile_id, entity_type, entity_id::text AS entity_id, change, status, attempts, error_code,
              error_message, response, finished_at
         FROM bulk_items
        WHERE job_id = $1 AND id > $2 AND ($3::boolean IS FALSE OR status = 'FAILED')
        ORDER BY id LIMIT $4`,
      [jobId, after, options.failedOnly === true, REPORT_PAGE_ITEMS],
    );
    for (const row of rows) {
      yield {
        itemId: row.id,
        line: row.line,
        profileId: row.profile_id,
        entityType: row.entity_type,
        entityId: row.entity_id,
        change: row.change,
        status: row.status,
        attempts: row.attempts,
        errorCode: row.error_code,
        errorMessage: row.error_message,
        response: row.response,
        finishedAt: row.finished_at,
      };
    }
    const last = rows.at(-1);
    if (last === undefined || rows.length < REPORT_PAGE_ITEMS) return;
    after = last.id;
  }
}

/** Failures grouped by Amazon's code, most frequent first (the report's summary). */
export async function failureSummary(
  pool: pg.Pool,
  jobId: string,
): Promise<{ code: string; count: number; example: string }[]> {
  const { rows } = await pool.query<{ code: string; count: number; example: string }>(
    `SELECT coalesce(error_code, '-') AS code, count(*)::int AS count, min(error_message) AS example
       FROM bulk_items WHERE job_id = $1 AND status = 'FAILED'
      GROUP BY error_code ORDER BY count DESC`,
    [jobId],
  );
  return rows;
}
