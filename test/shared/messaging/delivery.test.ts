import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLEET_ATTRIBUTES } from '../../../shared/messaging/trace-context.ts';
import { workerEnv } from '../../support/env.ts';
import { type LogLine, type NodeProcess, spawnNode } from '../../support/processes.ts';
import { drainMessages, fleetMessage, queueDepth, sendBody } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';

/** What happens to good, poison, failing and throttled messages, through the real runtime. */
describe('message delivery rules', () => {
  let topology: TestTopology;
  let worker: NodeProcess;
  let queueUrl: string;
  let deadLetterUrl: string;

  beforeAll(async () => {
    topology = await createTestTopology('delivery');
    queueUrl = topology.state.queues['bulk-item'].url;
    deadLetterUrl = topology.state.queues['bulk-item'].deadLetterUrl;
    worker = spawnNode('test/fixtures/chassis-worker.ts', workerEnv(topology.prefix));
    await worker.waitForLog((line) => line.msg === 'worker started');
  });
  afterAll(async () => {
    await worker?.stop();
    await topology.destroy();
  });

  const handled = (marker: string) => (line: LogLine) => line.msg === 'handled' && line.marker === marker;

  it('dead-letters poison messages with their reason and keeps handling valid ones', async () => {
    const run = Date.now();
    const poison = [
      '{"type": "Record", "payload": ', // malformed JSON
      fleetMessage('NoSuchType', { marker: 'x' }),
      fleetMessage('Record', { marker: 42 }), // schema-invalid
    ];
    for (const [index, body] of poison.entries()) {
      await sendBody(
        topology.clients.sqs,
        queueUrl,
        fleetMessage('Record', { marker: `valid-${run}-${index}` }),
      );
      await sendBody(topology.clients.sqs, queueUrl, body);
    }
    await sendBody(topology.clients.sqs, queueUrl, fleetMessage('Record', { marker: `valid-${run}-last` }));

    for (const marker of [0, 1, 2, 'last'].map((suffix) => `valid-${run}-${suffix}`)) {
      await worker.waitForLog(handled(marker));
    }
    const dead = await drainMessages(topology.clients.sqs, deadLetterUrl, 3);
    const reasons = dead.map((message) => {
      const record = JSON.parse(
        message.MessageAttributes?.[FLEET_ATTRIBUTES.deadLetter]?.StringValue ?? '{}',
      );
      expect(record.queue).toBe(topology.names.queue('bulk-item'));
      expect(record.receiveCount).toBe(1);
      return { body: message.Body, reason: String(record.reason) };
    });
    expect(reasons.find((r) => r.body === poison[0])?.reason).toMatch(/not JSON/);
    expect(reasons.find((r) => r.body === poison[1])?.reason).toMatch(/unknown message type "NoSuchType"/);
    expect(reasons.find((r) => r.body === poison[2])?.reason).toMatch(/invalid Record.*marker/);
    expect(worker.child.exitCode).toBeNull();
  });

  it('retries a retryable failure with growing delays until it succeeds', async () => {
    const marker = `retry-${Date.now()}`;
    await sendBody(
      topology.clients.sqs,
      queueUrl,
      fleetMessage('Fail', { marker, kind: 'retryable', times: 3 }),
    );
    const success = await worker.waitForLog(handled(marker), 45_000);
    expect(success.receiveCount).toBe(4);
    const retries = worker.logs.filter(
      (line) => line.msg === 'handler failed: will retry' && String(line.reason).includes(marker),
    );
    const delays = retries.map((line) => Number(line.retryInSeconds));
    expect(delays).toHaveLength(3);
    for (let index = 1; index < delays.length; index += 1) {
      expect(delays[index]).toBeGreaterThanOrEqual(delays[index - 1] as number);
    }
    expect(delays[2]).toBeGreaterThan(delays[0] as number);
  });

  it('dead-letters a fatal failure at once, without retries', async () => {
    const marker = `fatal-${Date.now()}`;
    await sendBody(
      topology.clients.sqs,
      queueUrl,
      fleetMessage('Fail', { marker, kind: 'fatal', times: 99 }),
    );
    const [dead] = await drainMessages(topology.clients.sqs, deadLetterUrl, 1);
    const record = JSON.parse(dead?.MessageAttributes?.[FLEET_ATTRIBUTES.deadLetter]?.StringValue ?? '{}');
    expect(record.reason).toBe(`FatalError: cannot ever handle ${marker}`);
    expect(record.receiveCount).toBe(1);
    expect(
      worker.logs.some(
        (line) => line.msg === 'handler failed: will retry' && String(line.reason).includes(marker),
      ),
    ).toBe(false);
  });

  it('defers a throttled message past maxReceiveCount without dead-lettering it', async () => {
    const marker = `throttled-${Date.now()}`;
    const times = 7; // bulk-item's maxReceiveCount is 5
    await sendBody(
      topology.clients.sqs,
      queueUrl,
      fleetMessage('Fail', { marker, kind: 'throttled', times }),
    );
    const success = await worker.waitForLog(handled(marker), 60_000);
    expect(success.deferrals).toBe(times);
    expect(success.receiveCount).toBe(1); // each deferral is a fresh message
    expect(await queueDepth(topology.clients.sqs, deadLetterUrl)).toBe(0);
  });
});
