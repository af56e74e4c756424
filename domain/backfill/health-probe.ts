import type pg from 'pg';
import type { HealthReading } from './throttle.ts';

/**
 * How the database is doing, measured the way a backfill feels it:
 *
 *  - probe latency: a timed heartbeat write and commit (pt-heartbeat style). It rises with
 *    WAL flush time, I/O saturation, checkpoint stalls and lock queues — the things a
 *    write-heavy backfill makes worse and production writes suffer from first;
 *  - active connections: client backends running a statement right now, cluster-wide
 *    (gh-ost's Threads_running); a pile-up means the database is falling behind;
 *  - replication lag: replay lag of the slowest streaming replica, from the primary's
 *    pg_stat_replication; null where no replica is attached.
 *
 * One statement, one round trip; its wall time is the latency reading.
 */
const PROBE_SQL = `
  WITH beat AS (
    INSERT INTO backfill_heartbeats (job_id, partition, beat_at) VALUES ($1, $2, clock_timestamp())
    ON CONFLICT (job_id, partition) DO UPDATE SET beat_at = EXCLUDED.beat_at
  )
  SELECT (SELECT count(*) FROM pg_stat_activity
           WHERE state = 'active' AND backend_type = 'client backend'
             AND pid <> pg_backend_pid())::int AS active,
         (SELECT (extract(epoch FROM max(replay_lag)) * 1000)::float8 FROM pg_stat_replication) AS lag_ms`;

export type HealthProbe = (jobId: string, partition: number) => Promise<HealthReading>;

/**
 * The probe against `pool`. It runs between batches, so the chain's own connection is
 * idle then and not counted as active.
 */
export function createHealthProbe(pool: pg.Pool): HealthProbe {
  return async (jobId, partition) => {
    const client = await pool.connect();
    try {
      const started = performance.now();
      const { rows } = await client.query<{ active: number; lag_ms: number | null }>(PROBE_SQL, [
        jobId,
        partition,
      ]);
      const probeMs = performance.now() - started;
      return {
        probeMs,
        activeConnections: rows[0]?.active ?? 0,
        replicationLagMs: rows[0]?.lag_ms ?? null,
      };
    } finally {
      client.release();
    }
  };
}
