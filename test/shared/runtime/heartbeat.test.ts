import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import { fleetMessage, sendBody } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { WAIT } from '../../support/wait.ts';

interface HeartbeatRow {
  service: string;
  host: string;
  pid: number;
  version: string;
  started_at: Date;
  beat_at: Date;
  last_poll_at: Date | null;
  in_flight: number;
  handled: number;
  failed: number;
  ready: boolean;
  not_ready_reason: string | null;
}

describe('worker heartbeat', () => {
  let topology: TestTopology;
  let database: TestDatabase;

  beforeAll(async () => {
    [topology, database] = await Promise.all([
      createTestTopology('heartbeat'),
      createTestDatabase(stackEnv().DATABASE_URL as string),
    ]);
  });
  afterAll(async () => {
    await Promise.all([topology.destroy(), database.drop()]);
  });

  const rowsOf = async (pid: number) =>
    (await database.pool.query<HeartbeatRow>('SELECT * FROM worker_heartbeats WHERE pid = $1', [pid])).rows;

  it('beats with its counts while it runs and removes its row on a clean stop', async () => {
    const worker = spawnNode(
      'test/fixtures/chassis-worker.ts',
      workerEnv(topology.prefix, { DATABASE_URL: database.url, ADFLEET_HEARTBEAT_INTERVAL_MS: '300' }),
    );
    await worker.waitForLog((line) => line.msg === 'worker started');
    const pid = worker.child.pid as number;
    const queueUrl = topology.state.queues['bulk-item'].url;
    await sendBody(topology.clients.sqs, queueUrl, fleetMessage('Record', { marker: 'beat-ok' }));
    await sendBody(
      topology.clients.sqs,
      queueUrl,
      fleetMessage('Fail', { marker: 'beat-fatal', kind: 'fatal', times: 1 }),
    );

    const row = await vi.waitFor(async () => {
      const [found] = await rowsOf(pid);
      expect(found?.handled, 'messages the beat counts').toBe(2);
      return found as HeartbeatRow;
    }, WAIT);
    expect(row).toMatchObject({
      service: 'bulk-item',
      pid,
      version: '0.1.0',
      failed: 1,
      ready: true,
      in_flight: 0,
    });
    expect(row.not_ready_reason).toBeNull();
    expect(row.host.length).toBeGreaterThan(0);
    expect(row.last_poll_at).not.toBeNull();
    const first = row.beat_at.getTime();
    await vi.waitFor(async () => {
      const [later] = await rowsOf(pid);
      expect(later?.beat_at.getTime(), 'the next beat').toBeGreaterThan(first);
    }, WAIT);

    expect((await worker.stop('SIGTERM')).code).toBe(0);
    expect(await rowsOf(pid)).toEqual([]);
  });

  it('leaves its row behind when the process is killed, so the beat goes stale', async () => {
    const worker = spawnNode(
      'test/fixtures/chassis-worker.ts',
      workerEnv(topology.prefix, { DATABASE_URL: database.url, ADFLEET_HEARTBEAT_INTERVAL_MS: '300' }),
    );
    const pid = worker.child.pid as number;
    try {
      await worker.waitForLog((line) => line.msg === 'worker started');
      await vi.waitFor(async () => expect(await rowsOf(pid), 'a first beat').toHaveLength(1), WAIT);
    } finally {
      await worker.stop('SIGKILL');
    }
    const [left] = await rowsOf(pid);
    expect(left).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const [still] = await rowsOf(pid);
    expect(still?.beat_at.getTime()).toBe(left?.beat_at.getTime());
  });
});
