import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPartitions } from '../../../domain/backfill/partitions.ts';
import { JobStatus } from '../../../domain/backfill/status.ts';
import {
  type BackfillWorld,
  checkResult,
  createBackfillWorld,
  rowsProcessed,
  waitForJob,
} from '../../support/backfill.ts';

const CAMPAIGNS = 30_000;

/**
 * Synthetic load that raises the probe's latency: a session that keeps taking a lock the
 * heartbeat write must wait for (as a WAL or lock-queue stall would), 150 ms at a time.
 */
function startProbeLoad(databaseUrl: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  let running = true;
  const done = (async () => {
    await client.connect();
    while (running) {
      await client.query('BEGIN');
      await client.query('LOCK TABLE backfill_heartbeats IN EXCLUSIVE MODE');
      await client.query('SELECT pg_sleep(0.15)');
      await client.query('COMMIT');
    }
    await client.end();
  })();
  return {
    async stop() {
      running = false;
      await done;
    },
  };
}

async function rateOver(world: BackfillWorld, jobId: string, ms: number): Promise<number> {
  const before = await rowsProcessed(world.db.pool, jobId);
  const started = Date.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ((await rowsProcessed(world.db.pool, jobId)) - before) / ((Date.now() - started) / 1000);
}

describe('backfill throttle on database health', { timeout: 120_000 }, () => {
  let world: BackfillWorld;

  beforeAll(async () => {
    world = await createBackfillWorld('backfill-throttle', { profiles: 100, campaigns: CAMPAIGNS });
    await world.startWorker({ watchdog: false });
  });
  afterAll(async () => {
    await world.close();
  });

  it('slows down while the probe latency is high, records why, and recovers when the load stops', async () => {
    const { job } = await world.startCurrencyBackfill({
      batchSize: 200,
      batchesPerChunk: 10,
      maxRate: 2_000,
      throttle: {
        // Above what a busy shared test machine's heartbeat alone takes (the probe now runs
        // beside the batches, not between them), well below the load's 150 ms.
        probeLatencyMs: { slow: 100, pause: 60_000 },
        activeConnections: { slow: 1_000, pause: 2_000 },
        minRowsPerSecond: 100,
      },
    });
    await waitForJob(world.db.pool, job.id, (j) => j.rowsProcessed >= 1_000, 'progress');
    const healthy = await rateOver(world, job.id, 1_500);
    expect(healthy).toBeGreaterThan(1_000);

    const load = startProbeLoad(world.db.url);
    let loaded: number;
    try {
      await waitForJob(
        world.db.pool,
        job.id,
        (j) => j.lastThrottle?.state === 'slowed' && (j.lastThrottle.limit ?? Infinity) <= 200,
        'slowed to the floor',
        20_000,
      );
      loaded = await rateOver(world, job.id, 2_000);
    } finally {
      await load.stop();
    }
    // The probe's own wait would still allow ~1,300 rows/s; the throttle holds it far lower.
    expect(loaded).toBeLessThan(400);
    expect(loaded).toBeLessThan(healthy / 4);
    const [partition] = await loadPartitions(world.db.pool, job.id);
    expect(partition?.throttledMs).toBeGreaterThan(0);
    const { rows: events } = await world.db.pool.query<{ state: string; reason: string; probe_ms: number }>(
      'SELECT state, reason, probe_ms FROM backfill_throttle_events WHERE job_id = $1 ORDER BY id',
      [job.id],
    );
    const slowed = events.find((event) => event.state === 'slowed');
    expect(slowed?.reason).toMatch(/probe latency \d+(\.\d)?ms > 100ms/);
    expect(slowed?.probe_ms).toBeGreaterThan(100);

    // Load gone: back to the ceiling within a few batches, and on to the end.
    await waitForJob(
      world.db.pool,
      job.id,
      (j) => j.status === JobStatus.Completed || j.lastThrottle?.state === 'ceiling',
      'recovery',
      20_000,
    );
    const remaining = CAMPAIGNS - (await rowsProcessed(world.db.pool, job.id));
    const recovered = await rateOver(world, job.id, 1_000);
    // Back at full speed: several times the loaded rate — unless it ran out of rows inside
    // the one-second window, which takes full speed too.
    if (remaining > loaded * 3) expect(recovered).toBeGreaterThan(loaded * 3);
    await waitForJob(world.db.pool, job.id, (j) => j.status === JobStatus.Completed, 'completion', 60_000);
    const { rows: after } = await world.db.pool.query<{ state: string }>(
      'SELECT state FROM backfill_throttle_events WHERE job_id = $1 ORDER BY id',
      [job.id],
    );
    expect(after.map((event) => event.state)).toContain('slowed');
    expect(after.at(-1)?.state).toBe('ceiling');
    const result = await checkResult(world.db.pool);
    expect(result.filled).toBe(CAMPAIGNS);
    expect(result.maxWrites).toBe(1);
  });
});
