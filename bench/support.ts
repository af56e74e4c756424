import { readStackEnv } from '../scripts/stack-env.ts';

/**
 * The local stack's environment (`npm run stack` writes it), under the caller's own; also
 * filled into process.env so in-process AWS clients find the emulator's credentials.
 */
export function benchEnv(): Record<string, string> {
  const fromFile = readStackEnv();
  if (Object.keys(fromFile).length === 0)
    throw new Error('the local stack is not up: run `npm run stack` first');
  const env = Object.fromEntries(
    Object.entries(fromFile).map(([key, value]) => [key, process.env[key] ?? value]),
  );
  for (const [key, value] of Object.entries(env)) process.env[key] ??= value;
  return env;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** Prints rows as an aligned table under a title. */
export function printTable(title: string, rows: readonly (readonly string[])[]) {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  process.stdout.write(`\n${title}\n`);
  for (const row of rows) {
    process.stdout.write(`  ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')}\n`);
  }
}
