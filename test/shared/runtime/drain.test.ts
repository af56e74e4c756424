import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { workerEnv } from '../../support/env.ts';
import { type LogLine, spawnNode } from '../../support/processes.ts';
import { fleetMessage, queueDepth, sendBody } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { WAIT } from '../../support/wait.ts';

describe('SIGTERM drains', () => {
  let topology: TestTopology;

  beforeAll(async () => {
    topology = await createTestTopology('drain');
  });
  afterAll(async () => {
    await topology.destroy();
  });

  it('finishes the slow handler, releases the unstarted message, and exits 0 within the deadline', async () => {
    const queueUrl = topology.state.queues['bulk-item'].url;
    // One handler slot: the second message is received (prefetched) but cannot start.
    const env = workerEnv(topology.prefix, { ADFLEET_CONCURRENCY: '1', ADFLEET_DRAIN_TIMEOUT_MS: '8000' });
    const first = spawnNode('test/fixtures/chassis-worker.ts', env);
    await first.waitForLog((line) => line.msg === 'worker started');

    const slow = `slow-${Date.now()}`;
    const queued = `queued-${Date.now()}`;
    await sendBody(topology.clients.sqs, queueUrl, fleetMessage('Slow', { marker: slow, ms: 3_000 }));
    await first.waitForLog((line) => line.msg === 'slow handler started' && line.marker === slow);
    await sendBody(topology.clients.sqs, queueUrl, fleetMessage('Record', { marker: queued }));
    // Let the prefetching poller pick the second message up while the slot is busy.
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    const stopAt = Date.now();
    const exit = await first.stop('SIGTERM');
    const stopMs = Date.now() - stopAt;
    expect(exit.code).toBe(0);
    expect(stopMs).toBeLessThan(8_000 + 2_000 + 3_000); // drain deadline + one short poll + slack
    const handledBy = (logs: LogLine[], marker: string) =>
      logs.filter((line) => line.msg === 'handled' && line.marker === marker).length;
    expect(handledBy(first.logs, slow)).toBe(1);
    expect(handledBy(first.logs, queued)).toBe(0);

    // The released message is handled by the next worker within seconds (a copy delayed by
    // the poll wait + 1 s, not a 300 s visibility timeout);
    // the slow one was deleted and never comes back.
    const second = spawnNode('test/fixtures/chassis-worker.ts', env);
    try {
      await second.waitForLog((line) => line.msg === 'handled' && line.marker === queued, 20_000);
      await vi.waitFor(
        async () => expect(await queueDepth(topology.clients.sqs, queueUrl), 'messages left').toBe(0),
        WAIT,
      );
      expect(handledBy(second.logs, slow)).toBe(0);
    } finally {
      expect((await second.stop('SIGTERM')).code).toBe(0);
    }
  });
});
