import { describe, expect, it, vi } from 'vitest';
import { DependencyBreakers } from '../../shared/breakers.ts';
import { createLogger } from '../../shared/logging.ts';

describe('DependencyBreakers', () => {
  const logger = createLogger({ level: 'silent', name: 'test' });

  it('opens after the threshold of consecutive outages, reports why, and closes when a half-open probe succeeds', async () => {
    let postgresUp = false;
    const breakers = new DependencyBreakers(
      {
        postgres: async () => {
          if (!postgresUp) throw new Error('ECONNREFUSED');
        },
      },
      logger,
    );
    const changes: boolean[] = [];
    breakers.onChange((open) => changes.push(open));
    breakers.start();
    try {
      breakers.recordFailure('postgres', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      breakers.recordFailure('postgres', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      // An SQS answer in between says nothing about Postgres.
      breakers.recordSuccess('sqs');
      expect(breakers.anyOpen).toBe(false);
      breakers.recordFailure('postgres', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      await vi.waitFor(() => expect(breakers.anyOpen).toBe(true));
      expect(breakers.open).toEqual([
        expect.objectContaining({ dependency: 'postgres', reason: expect.stringContaining('ECONNREFUSED') }),
      ]);
      expect(changes).toEqual([true]);
      // The probe fails while Postgres is down: still open after the first half-open attempt.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(breakers.anyOpen).toBe(true);
      postgresUp = true;
      await vi.waitFor(() => expect(breakers.anyOpen).toBe(false), { timeout: 10_000, interval: 100 });
      expect(changes).toEqual([true, false]);
    } finally {
      breakers.stop();
    }
  });

  it('resets the count on a handled message: scattered outages of a healthy dependency never open it', () => {
    const breakers = new DependencyBreakers({ 'ads-api': async () => {} }, logger);
    for (let round = 0; round < 10; round += 1) {
      breakers.recordFailure('ads-api', new Error('503'));
      breakers.recordSuccess();
    }
    expect(breakers.anyOpen).toBe(false);
  });
});
