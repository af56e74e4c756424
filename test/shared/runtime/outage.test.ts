import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import { fleetMessage, sendBody } from '../../support/queues.ts';
import { freePort, startTcpProxy } from '../../support/tcp-proxy.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { WAIT } from '../../support/wait.ts';

async function probe(port: number, path: string): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

describe('an SQS outage', () => {
  let topology: TestTopology;

  beforeAll(async () => {
    topology = await createTestTopology('outage');
  });
  afterAll(async () => {
    await topology.destroy();
  });

  it('makes the worker back off and report not ready, then recover by itself', async () => {
    const emulatorPort = Number(new URL(stackEnv().AWS_ENDPOINT_URL as string).port);
    const proxy = await startTcpProxy(emulatorPort);
    const healthPort = await freePort();
    const worker = spawnNode(
      'test/fixtures/chassis-worker.ts',
      workerEnv(topology.prefix, {
        AWS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`,
        ADFLEET_HEALTH_PORT: String(healthPort),
        ADFLEET_POLL_WAIT_SECONDS: '1',
      }),
    );
    try {
      await worker.waitForLog((line) => line.msg === 'worker started');
      await vi.waitFor(async () => expect(await probe(healthPort, '/readyz'), 'GET /readyz').toBe(200), WAIT);

      await proxy.cut();
      const failures = () => worker.logs.filter((line) => line.msg === 'receiving from SQS failed');
      await vi.waitFor(() => expect(failures().length, 'failed receives').toBeGreaterThanOrEqual(3), WAIT);
      const delays = failures().map((line) => Number(line.retryInMs));
      expect(delays[2]).toBeGreaterThan(delays[0] as number);
      expect(await probe(healthPort, '/readyz')).toBe(503);
      expect(await probe(healthPort, '/healthz')).toBe(200);
      expect(worker.child.exitCode).toBeNull();

      // A long poll cut mid-flight may still be open on the server side for up to its wait
      // time, and would take (and hide for a visibility timeout) a message sent now.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const marker = `after-outage-${Date.now()}`;
      await sendBody(
        topology.clients.sqs,
        topology.state.queues['bulk-item'].url,
        fleetMessage('Record', { marker }),
      );
      await proxy.restore();
      await worker.waitForLog((line) => line.msg === 'queue reachable again', 45_000);
      await worker.waitForLog((line) => line.msg === 'handled' && line.marker === marker, 30_000);
      await vi.waitFor(async () => expect(await probe(healthPort, '/readyz'), 'GET /readyz').toBe(200), WAIT);
      expect((await worker.stop('SIGTERM')).code).toBe(0);
    } finally {
      await worker.stop('SIGKILL');
      await proxy.close();
    }
  });
});
