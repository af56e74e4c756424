/**
 * One `bulk submit` of a file into a database, in a process of its own so that its peak RSS
 * is the submit's alone: `node bench/bulk-submit-child.ts <databaseUrl> <file>`. Prints
 * one JSON line: rows, milliseconds, peak RSS in MiB.
 */
import { submitBulkFile } from '../domain/bulk/submit.ts';
import { createPool } from '../shared/db.ts';

const [databaseUrl, file] = process.argv.slice(2);
if (databaseUrl === undefined || file === undefined)
  throw new Error('usage: bulk-submit-child.ts <databaseUrl> <file>');
const pool = createPool(databaseUrl, { max: 2 });
const started = performance.now();
const result = await submitBulkFile(pool, { path: file, submittedBy: 'bench' });
const ms = performance.now() - started;
await pool.end();
if (!result.ok) throw new Error(`submit refused the file: ${JSON.stringify(result.errors.slice(0, 5))}`);
process.stdout.write(
  `${JSON.stringify({ rows: result.rows, ms, peakRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`,
);
