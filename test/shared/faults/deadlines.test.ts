import { createServer, type Server } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../../shared/db.ts';
import { classifyError, ErrorKind } from '../../../shared/errors.ts';
import { createRedis } from '../../../shared/redis.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import { fleetMessage, sendBody } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';

describe('deadlines', () => {
  let topology: TestTopology;
  let database: TestDatabase;

  beforeAll(async () => {
    topology = await createTestTopology('deadlines');
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
  });
  afterAll(async () => {
    await topology?.destroy();
    await database?.drop();
  });

  it('ends a hung handler at its deadline and counts it as a failed receive, never heartbeating it forever', async () => {
    const worker = spawnNode(
      'test/fixtures/chassis-worker.ts',
      workerEnv(topology.prefix, { FIXTURE_HANG_DEADLINE_MS: '1500', ADFLEET_POLL_WAIT_SECONDS: '1' }),
    );
    try {
      await worker.waitForLog((line) => line.msg === 'worker started');
      const marker = `hang-${Date.now()}`;
      await sendBody(
        topology.clients.sqs,
        topology.state.queues['bulk-item'].url,
        fleetMessage('Hang', { marker }),
      );
      const failed = await worker.waitForLog((line) => line.msg === 'handler failed: will retry', 20_000);
      expect(String(failed.reason)).toContain('passed its deadline');
      // The same message again, one receive further: the deadline spent a receive.
      const again = await worker.waitForLog(
        (line) => line.msg === 'hanging handler started' && line.marker === marker && line.receiveCount === 2,
        20_000,
      );
      expect(again.receiveCount).toBe(2);
    } finally {
      await worker.stop('SIGKILL');
    }
  });

  it('gives every pool statement, lock and idle-in-transaction timeouts', async () => {
    const pool = createPool(database.url, { max: 2 });
    try {
      const { rows } = await pool.query<Record<string, string>>(
        `SELECT current_setting('statement_timeout') AS statement,
                current_setting('lock_timeout') AS lock,
                current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      expect(rows[0]).toEqual({ statement: '30s', lock: '10s', idle: '1min' });
    } finally {
      await pool.end();
    }
  });

  it('ends a wait for a held row lock with lock_timeout, as a retryable failure of the message', async () => {
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    const pool = createPool(database.url, { max: 2, lockTimeoutMs: 300 });
    try {
      await holder.query('CREATE TABLE lock_probe (id int PRIMARY KEY); INSERT INTO lock_probe VALUES (1)');
      await holder.query('BEGIN');
      await holder.query('SELECT * FROM lock_probe WHERE id = 1 FOR UPDATE');
      const started = Date.now();
      const error = await pool
        .query('UPDATE lock_probe SET id = 1 WHERE id = 1')
        .catch((caught: unknown) => caught);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((error as { code?: string }).code).toBe('55P03');
      expect(classifyError(error).kind).toBe(ErrorKind.Retryable);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await pool.end();
    }
  });

  it('ends a Redis command that gets no answer within the command timeout', async () => {
    // A "Redis" that accepts connections and never answers: a black-holed network path.
    const sockets = new Set<import('node:net').Socket>();
    const blackHole: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const { port } = blackHole.address() as import('node:net').AddressInfo;
    const redis = createRedis(`redis://127.0.0.1:${port}`);
    try {
      const started = Date.now();
      const error = await redis.get('anything').catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(Error);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      redis.disconnect();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
    }
  });
});
