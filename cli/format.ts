/** How the CLI's screens (status, bulk, backfill, the dashboard) print numbers and durations. */

export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** An ETA or elapsed time: `45s`, `3m07s`, `2h05m`; `--` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}
