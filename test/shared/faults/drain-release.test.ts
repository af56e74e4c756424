import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import { fleetMessage, queueDepth, sendBody } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { deadLettered } from './support.ts';

/**
 * A drain releases without spending a receive: five SIGTERMs, each cutting the same long
 * handler short, and the sixth worker still handles the message. With releases by
 * visibility change, SQS would have moved it to the DLQ after the fifth receive
 * (bulk-item's maxReceiveCount), with no reason recorded.
 */
describe('drains and the dead-letter budget', () => {
  let topology: TestTopology;

  beforeAll(async () => {
    topology = await createTestTopology('drain-budget');
  });
  afterAll(async () => {
    await topology?.destroy();
  });

  it('survives five SIGTERMs during one long handler and still succeeds', async () => {
    const env = workerEnv(topology.prefix, {
      ADFLEET_DRAIN_TIMEOUT_MS: '800',
      ADFLEET_POLL_WAIT_SECONDS: '1',
    });
    const marker = `long-${Date.now()}`;
    await sendBody(
      topology.clients.sqs,
      topology.state.queues['bulk-item'].url,
      fleetMessage('Slow', { marker, ms: 5_000 }),
    );
    for (let stop = 1; stop <= 5; stop += 1) {
      const worker = spawnNode('test/fixtures/chassis-worker.ts', env);
      try {
        const started = await worker.waitForLog(
          (line) => line.msg === 'slow handler started' && line.marker === marker,
          30_000,
        );
        expect(started.releases).toBe(stop - 1);
        expect(started.receiveCount).toBe(1);
        expect((await worker.stop('SIGTERM')).code).toBe(0);
        expect(worker.logs.some((line) => line.msg === 'message released')).toBe(true);
      } finally {
        await worker.stop('SIGKILL');
      }
    }
    const last = spawnNode('test/fixtures/chassis-worker.ts', env);
    try {
      const handled = await last.waitForLog(
        (line) => line.msg === 'handled' && line.marker === marker,
        30_000,
      );
      expect(handled.releases).toBe(5);
      await vi.waitFor(
        async () => {
          const depth = await queueDepth(topology.clients.sqs, topology.state.queues['bulk-item'].url);
          expect(depth, 'messages left').toBe(0);
        },
        { timeout: 30_000, interval: 200 },
      );
      expect(await deadLettered(topology, 'bulk-item')).toBe(0);
    } finally {
      expect((await last.stop('SIGTERM')).code).toBe(0);
    }
  }, 180_000);
});
