import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FLEET_ATTRIBUTES } from '../../shared/messaging/trace-context.ts';
import { workerEnv } from '../support/env.ts';
import { spawnNode } from '../support/processes.ts';
import { drainMessages, fleetMessage, queueDepth } from '../support/queues.ts';
import { createTestTopology, type TestTopology } from '../support/topology.ts';

describe('adfleet dlq', () => {
  let topology: TestTopology;

  beforeAll(async () => {
    topology = await createTestTopology('cli-dlq');
  });
  afterAll(async () => {
    await topology.destroy();
  });

  async function cli(...args: string[]) {
    const run = spawnNode('cli/main.ts', workerEnv(topology.prefix), args);
    const exit = await run.exited;
    return { code: exit.code, output: run.output.join('') };
  }

  it('lists dead letters with their reasons and redrives them to their queue', async () => {
    const { url, deadLetterUrl } = topology.state.queues['bulk-item'];
    const body = fleetMessage('Record', { marker: 'redrive-me' });
    const record = { reason: 'FatalError: downstream said no', queue: 'q', type: 'Record', receiveCount: 1 };
    await topology.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: deadLetterUrl,
        MessageBody: body,
        MessageAttributes: {
          [FLEET_ATTRIBUTES.deadLetter]: { DataType: 'String', StringValue: JSON.stringify(record) },
          tenant: { DataType: 'String', StringValue: 'acme' },
        },
      }),
    );

    const listed = await cli('dlq', 'list', '--queue', 'bulk-item');
    expect(listed.code).toBe(0);
    expect(listed.output).toContain('FatalError: downstream said no');

    const redriven = await cli('dlq', 'redrive', '--queue', 'bulk-item');
    expect(redriven.code).toBe(0);
    expect(redriven.output).toContain('1 message(s) sent back to bulk-item');

    const [back] = await drainMessages(topology.clients.sqs, url, 1);
    expect(back?.Body).toBe(body);
    expect(back?.MessageAttributes?.tenant?.StringValue).toBe('acme');
    expect(back?.MessageAttributes?.[FLEET_ATTRIBUTES.deadLetter]).toBeUndefined();
  });

  it('redrives only what was there when it started, and returns while a worker dead-letters it again', async () => {
    const { url, deadLetterUrl } = topology.state.queues['bulk-item'];
    const poison = 40;
    for (let index = 0; index < poison; index += 1) {
      await topology.clients.sqs.send(
        new SendMessageCommand({
          QueueUrl: deadLetterUrl,
          MessageBody: fleetMessage('Fail', { marker: `poison-${index}`, kind: 'fatal', times: 1_000 }),
        }),
      );
    }
    // A worker that dead-letters every one of them again at once: the cause is not fixed.
    const worker = spawnNode(
      'test/fixtures/chassis-worker.ts',
      workerEnv(topology.prefix, { ADFLEET_POLL_WAIT_SECONDS: '1' }),
    );
    try {
      await worker.waitForLog((line) => line.msg === 'worker started');
      const started = Date.now();
      const redriven = await cli('dlq', 'redrive', '--queue', 'bulk-item');
      expect(redriven.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(redriven.output).toContain(`${poison} message(s) sent back to bulk-item`);
      // Whatever came back while it ran was reported with its reason, not sent round again.
      if (redriven.output.includes('came back')) expect(redriven.output).toContain('cannot ever handle');
      await vi.waitFor(
        async () =>
          expect(await queueDepth(topology.clients.sqs, deadLetterUrl), 'dead letters back').toBe(poison),
        { timeout: 60_000, interval: 500 },
      );
      expect(await queueDepth(topology.clients.sqs, url)).toBe(0);
    } finally {
      await worker.stop('SIGKILL');
    }
  }, 180_000);

  it('rejects an unknown queue with a clear message', async () => {
    const result = await cli('dlq', 'list', '--queue', 'nope');
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/Allowed choices are profile-sync, bulk-item, backfill-chunk/);
  });
});
