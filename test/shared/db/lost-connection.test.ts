import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../../shared/db.ts';
import { classifyError, ErrorKind } from '../../../shared/errors.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';
import { proxyFor } from '../faults/support.ts';

/**
 * A connection lost while a client is checked out (a probe or transaction between two
 * queries when Postgres restarts) is emitted on that client, where pg-pool does not listen
 * while it is checked out: unheard, it ends the process. Every pool client has its own
 * listener, so the loss surfaces only as the failed query, classed as a Postgres outage.
 */
describe('a pool client whose connection is lost while checked out', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('fails its next query as an outage instead of crashing the process, and the pool recovers', async () => {
    const { proxy, url } = await proxyFor(database.url);
    const pool = createPool(url, { max: 2 });
    const unheard: unknown[] = [];
    const onUncaught = (error: unknown) => unheard.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const client = await pool.connect();
      expect(client.listenerCount('error'), 'listeners on a checked-out client').toBeGreaterThan(0);
      await proxy.cut();
      await sleep(300);
      const failure = await client.query('SELECT 1').catch((error: unknown) => error);
      expect(classifyError(failure).kind).toBe(ErrorKind.Unavailable);
      client.release();
      await proxy.restore();
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      expect(unheard).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await pool.end();
      await proxy.close();
    }
  });
});
