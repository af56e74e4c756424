import type pg from 'pg';
import { QUEUE_NAMES, type QueueName } from '../../contract/topology.ts';

/** Worker processes from their heartbeat rows (shared/runtime/heartbeat.ts). */

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Beats a process may miss before it counts as dead: one late beat is a slow database, three are not. */
export const STALE_AFTER_BEATS = 3;

export interface WorkerProcess {
  readonly instanceId: string;
  readonly service: string;
  readonly host: string;
  readonly task: string | null;
  readonly pid: number;
  readonly version: string;
  readonly startedAt: Date;
  readonly beatAt: Date;
  readonly beatAgeSeconds: number;
  readonly lastPollAt: Date | null;
  readonly inFlight: number;
  readonly handled: number;
  readonly failed: number;
  readonly ready: boolean;
  readonly notReadyReason: string | null;
  /** No beat for STALE_AFTER_BEATS of its own intervals: the process died without stopping. */
  readonly stale: boolean;
}

export interface ServiceWorkers {
  readonly service: QueueName;
  readonly alive: number;
  readonly ready: number;
  readonly stale: number;
  readonly processes: readonly WorkerProcess[];
}

export async function readWorkers(db: Queryable): Promise<ServiceWorkers[]> {
  // Rows a day old are swept by the next worker to start; until then they are history.
  const { rows } = await db.query<WorkerProcess>(
    `SELECT instance_id AS "instanceId", service, host, task, pid, version, started_at AS "startedAt",
            beat_at AS "beatAt", extract(epoch FROM now() - beat_at)::float8 AS "beatAgeSeconds",
            last_poll_at AS "lastPollAt", in_flight AS "inFlight", handled, failed, ready,
            not_ready_reason AS "notReadyReason",
            beat_at < now() - make_interval(secs => $1 * interval_ms / 1000.0) AS stale
       FROM worker_heartbeats
      WHERE beat_at > now() - interval '1 day'
      ORDER BY service, stale DESC, started_at`,
    [STALE_AFTER_BEATS],
  );
  return QUEUE_NAMES.map((service) => {
    const processes = rows.filter((row) => row.service === service);
    const alive = processes.filter((row) => !row.stale);
    return {
      service,
      alive: alive.length,
      ready: alive.filter((row) => row.ready).length,
      stale: processes.length - alive.length,
      processes,
    };
  });
}
