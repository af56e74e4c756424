import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type pg from 'pg';
import { createPool } from '../db.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { type HandledEvent, Outcome } from '../messaging/queue-worker.ts';

/**
 * The process's row in `worker_heartbeats`: who it is (service, host or ECS task, pid,
 * version), how it is doing (last poll, in flight, handled and failed counts, ready or not
 * and why), upserted every interval and deleted on a clean stop. A row that stops moving
 * is a process that died without stopping; the operations read model
 * (domain/operations/) marks it stale.
 *
 * A heartbeat that cannot be written (the database is down) is logged and tried again at
 * the next interval: it never stops the worker or delays its start.
 */

export interface HeartbeatState {
  readonly ready: boolean;
  readonly notReadyReason: string | null;
  readonly inFlight: number;
  readonly lastPollAt: Date | null;
}

export interface HeartbeatOptions {
  readonly databaseUrl: string;
  readonly service: string;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Read at every beat. */
  readonly state: () => HeartbeatState;
}

const VERSION = (() => {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    return String(manifest.version ?? 'unknown');
  } catch {
    return 'unknown';
  }
})();

/** The ECS task ARN from the task metadata endpoint; undefined outside ECS or when it does not answer. */
async function ecsTaskArn(): Promise<string | undefined> {
  const base = process.env.ECS_CONTAINER_METADATA_URI_V4;
  if (base === undefined || base === '') return undefined;
  try {
    const response = await fetch(`${base}/task`, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return undefined;
    const task = (await response.json()) as { TaskARN?: string };
    return task.TaskARN;
  } catch {
    return undefined;
  }
}

export class Heartbeat {
  readonly instanceId = randomUUID();
  readonly #options: HeartbeatOptions;
  readonly #pool: pg.Pool;
  readonly #startedAt = new Date();
  #task: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #stopped = false;
  #handled = 0;
  #failed = 0;
  #override: Partial<HeartbeatState> | undefined;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.#pool = createPool(options.databaseUrl, {
      max: 1,
      applicationName: `adfleet-heartbeat-${options.service}`,
    });
  }

  /** Counts a handled message (released ones are not handled: they come back). */
  record(event: HandledEvent): void {
    if (event.outcome === Outcome.Released) return;
    this.#handled += 1;
    if (event.outcome === Outcome.Retried || event.outcome === Outcome.DeadLettered) this.#failed += 1;
  }

  /** First beat at once (not awaited by the worker's start), then every interval. */
  start(): void {
    void (async () => {
      this.#task = await ecsTaskArn();
      await this.beat();
      // Rows of processes dead for a day are history, not news: the first beat sweeps them.
      await this.#pool
        .query(`DELETE FROM worker_heartbeats WHERE beat_at < now() - interval '1 day'`)
        .catch(() => {});
    })();
    this.#timer = setInterval(() => void this.beat(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Writes the row now; a beat still under way is not doubled. */
  beat(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#beating ??= this.#write().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  /** Says "draining" in the row (not ready) while the worker drains. */
  async draining(): Promise<void> {
    this.#override = { ready: false, notReadyReason: 'draining: stopping' };
    await this.beat();
  }

  /** Deletes the row: a clean stop leaves nothing that looks like a dead process. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#beating;
    try {
      await this.#pool.query('DELETE FROM worker_heartbeats WHERE instance_id = $1', [this.instanceId]);
    } catch (error) {
      this.#options.logger.warn({ err: describeError(error) }, 'could not remove heartbeat row');
    }
    await this.#pool.end();
  }

  async #write(): Promise<void> {
    const state = { ...this.#options.state(), ...this.#override };
    try {
      await this.#pool.query(
        `INSERT INTO worker_heartbeats (instance_id, service, host, task, pid, version, started_at, beat_at,
           interval_ms, last_poll_at, in_flight, handled, failed, ready, not_ready_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (instance_id) DO UPDATE SET
           task = EXCLUDED.task, beat_at = now(), last_poll_at = EXCLUDED.last_poll_at,
           in_flight = EXCLUDED.in_flight, handled = EXCLUDED.handled, failed = EXCLUDED.failed,
           ready = EXCLUDED.ready, not_ready_reason = EXCLUDED.not_ready_reason`,
        [
          this.instanceId,
          this.#options.service,
          hostname(),
          this.#task ?? null,
          process.pid,
          VERSION,
          this.#startedAt,
          this.#options.intervalMs,
          state.lastPollAt,
          state.inFlight,
          this.#handled,
          this.#failed,
          state.ready,
          state.ready ? null : (state.notReadyReason ?? 'not ready'),
        ],
      );
    } catch (error) {
      this.#options.logger.warn(
        { err: describeError(error) },
        'heartbeat not written; next try at the next interval',
      );
    }
  }
}
