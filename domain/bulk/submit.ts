import { once } from 'node:events';
import { basename } from 'node:path';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { MARKETPLACES, type Marketplace } from '../../shared/ads/marketplaces.ts';
import {
  type BulkRow,
  isRowError,
  type MarketplaceOf,
  type RawRecord,
  type RowError,
  RowValidator,
  readRecords,
} from './rows.ts';

/**
 * `bulk submit`: one pass over the file, streaming. Every row is checked (rows.ts); valid
 * rows go straight into a COPY of bulk_items inside the transaction that also holds the job
 * row, so a million-row file is never in memory. At the end, a file with any bad row is
 * rolled back (nothing is written, every bad line is reported) and a clean one committed
 * whole. A dry run checks the same way and writes nothing at all.
 */

export interface SubmitOptions {
  readonly path: string;
  readonly submittedBy: string;
  readonly dryRun?: boolean;
  readonly traceId?: string;
  /** The submit span's W3C carrier, kept on the job. */
  readonly traceCarrier?: Readonly<Record<string, string>>;
  /** Bad rows reported by line; the rest are counted. @defaultValue 1000 */
  readonly maxReportedErrors?: number;
  /** Called every 10,000 rows read. */
  readonly onProgress?: (rows: number) => void;
}

export interface SubmitSummary {
  readonly rows: number;
  readonly profiles: number;
  readonly keywords: number;
  readonly campaigns: number;
}

export type SubmitResult =
  | ({ readonly ok: true; readonly jobId: string | undefined } & SubmitSummary)
  | {
      readonly ok: false;
      readonly errors: readonly RowError[];
      readonly errorCount: number;
      readonly rows: number;
    };

/** Longest a submit's COPY may take (a million rows take seconds). */
const COPY_DEADLINE_MS = 60 * 60_000;

/** The marketplace of every profile the fleet has synced (their bounds apply to the rows). */
export async function loadMarketplaces(pool: pg.Pool): Promise<MarketplaceOf> {
  const { rows } = await pool.query<{ id: number; country_code: string }>(
    'SELECT id, country_code FROM profiles',
  );
  const byCountry = new Map<string, Marketplace>(MARKETPLACES.map((m) => [m.countryCode, m]));
  const byProfile = new Map<number, Marketplace>();
  for (const row of rows) {
    const marketplace = byCountry.get(row.country_code);
    if (marketplace !== undefined) byProfile.set(row.id, marketplace);
  }
  return (profileId) => byProfile.get(profileId);
}

/** COPY text format: the values are digits, fixed words and JSON of numbers, never tabs or backslashes. */
function copyLine(jobColumns: string, row: BulkRow): string {
  return `${jobColumns}${row.line}\t${row.profileId}\t${row.entityType}\t${row.entityId}\t${JSON.stringify(row.change)}\n`;
}

/**
 * COPY data, written into buffers of this size and handed to the COPY a buffer at a time:
 * one write per row cost a socket write and a CopyData message per row, and one string
 * grown by `+=` across a chunk of the file lived long enough for the collector to promote
 * its pieces, which grew the heap by about 100 MiB over a million rows.
 */
const COPY_BUFFER_BYTES = 256 * 1024;

class CopyBuffers {
  private buffer = Buffer.allocUnsafe(COPY_BUFFER_BYTES);
  private used = 0;
  private full: Buffer[] = [];

  /** `line` is ASCII (copyLine), so its length is its size in bytes. */
  add(line: string): void {
    if (this.used + line.length > this.buffer.length) {
      this.full.push(this.buffer.subarray(0, this.used));
      this.buffer = Buffer.allocUnsafe(Math.max(COPY_BUFFER_BYTES, line.length));
      this.used = 0;
    }
    this.used += this.buffer.write(line, this.used, 'latin1');
  }

  /** Whole buffers waiting to be sent. */
  get fullBuffers(): number {
    return this.full.length;
  }

  /** Takes the full buffers, and with `all` the partly filled one as well. */
  take(all: boolean): Buffer[] {
    const taken = this.full;
    this.full = [];
    if (all && this.used > 0) {
      taken.push(this.buffer.subarray(0, this.used));
      this.buffer = Buffer.allocUnsafe(COPY_BUFFER_BYTES);
      this.used = 0;
    }
    return taken;
  }
}

export async function submitBulkFile(pool: pg.Pool, options: SubmitOptions): Promise<SubmitResult> {
  const validator = new RowValidator(await loadMarketplaces(pool));
  const maxReported = options.maxReportedErrors ?? 1_000;
  const errors: RowError[] = [];
  let errorCount = 0;
  let rows = 0;
  let keywords = 0;
  const profiles = new Set<number>();

  const client = options.dryRun === true ? undefined : await pool.connect();
  let copy: ReturnType<typeof copyFrom> | undefined;
  let job: { id: string; seq: number } | undefined;
  let copyError: Error | undefined;
  let failed = false;
  let jobColumns = '';
  const pending = new CopyBuffers();
  const flush = async (all: boolean) => {
    if (copy === undefined) return;
    for (const buffer of pending.take(all)) {
      if (copyError !== undefined) throw copyError;
      if (!copy.write(buffer)) await once(copy, 'drain');
    }
  };
  try {
    if (client !== undefined) {
      await client.query('BEGIN');
      // The COPY of a whole file is one statement: the pool's per-statement limit, meant for
      // queries, would cut a large file off half-way. Its length is bounded by the file.
      await client.query('SET LOCAL statement_timeout = 0');
      const inserted = await client.query<{ id: string; seq: number }>(
        `INSERT INTO bulk_jobs (file_name, submitted_by, trace_id, trace_carrier)
         VALUES ($1, $2, $3, $4) RETURNING id, seq`,
        [basename(options.path), options.submittedBy, options.traceId ?? null, options.traceCarrier ?? {}],
      );
      job = inserted.rows[0] as { id: string; seq: number };
      jobColumns = `${job.id}\t${job.seq}\t`;
      const stream = copyFrom(
        'COPY bulk_items (job_id, job_seq, line, profile_id, entity_type, entity_id, change) FROM STDIN',
      );
      // Likewise the pool's client-side read deadline: pg takes a query's own `query_timeout`
      // before the connection's, so the COPY gets one sized for a file, not for a query.
      Object.assign(stream, { query_timeout: COPY_DEADLINE_MS });
      copy = client.query(stream);
      // Kept here and rethrown below: an 'error' event without a listener would end the process.
      copy.on('error', (error: Error) => {
        copyError ??= error;
      });
    }
    const visit = (record: RawRecord | RowError) => {
      const checked = isRowError(record) ? record : validator.check(record);
      if (isRowError(checked)) {
        errorCount += 1;
        if (errors.length < maxReported) errors.push(checked);
        return;
      }
      rows += 1;
      if (rows % 10_000 === 0) options.onProgress?.(rows);
      profiles.add(checked.profileId);
      if (checked.entityType === 'keyword') keywords += 1;
      // Once a row is bad the transaction will be rolled back: stop feeding the COPY.
      if (copy !== undefined && errorCount === 0) pending.add(copyLine(jobColumns, checked));
    };
    await readRecords(options.path, visit, async () => {
      if (pending.fullBuffers > 0) await flush(false);
    });
    if (rows === 0 && errorCount === 0) {
      errorCount = 1;
      errors.push({ line: 1, reason: 'the file has no rows' });
    }
    if (copy !== undefined) {
      if (errorCount === 0) await flush(true);
      copy.end();
      await finished(copy);
      if (copyError !== undefined) throw copyError;
    }
    if (errorCount > 0) {
      await client?.query('ROLLBACK');
      return { ok: false, errors, errorCount, rows };
    }
    if (client !== undefined && job !== undefined) {
      await client.query('UPDATE bulk_jobs SET total = $2, pending = $2 WHERE id = $1', [job.id, rows]);
      await client.query('COMMIT');
    }
    return {
      ok: true,
      jobId: job?.id,
      rows,
      profiles: profiles.size,
      keywords,
      campaigns: rows - keywords,
    };
  } catch (error) {
    failed = true;
    copy?.destroy();
    await client?.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    // A connection whose COPY broke off is not given back to the pool.
    client?.release(failed);
  }
}
