import { GetQueueAttributesCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FatalError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/logging.ts';
import { QueueProducer } from '../../../shared/messaging/producer.ts';
import { type HandledEvent, Outcome, QueueWorker } from '../../../shared/messaging/queue-worker.ts';
import { queueDepth } from '../../support/queues.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { WAIT } from '../../support/wait.ts';

/** QueueWorker in-process against the emulator: concurrency past one batch, and the heartbeat. */
describe('QueueWorker', () => {
  let topology: TestTopology;
  const logger = createLogger({ level: 'silent', name: 'test' });

  beforeAll(async () => {
    topology = await createTestTopology('queue-worker');
  });
  afterAll(async () => {
    await topology.destroy();
  });

  function worker(
    queue: 'bulk-item' | 'profile-sync',
    options: Partial<ConstructorParameters<typeof QueueWorker>[0]>,
  ) {
    const state = topology.state.queues[queue];
    return new QueueWorker({
      queueName: topology.names.queue(queue),
      queueUrl: state.url,
      deadLetterQueueUrl: state.deadLetterUrl,
      sqs: topology.clients.sqs,
      producer: new QueueProducer(topology.clients.sqs, topology.names),
      logger,
      visibilityTimeoutSeconds: 30,
      maxReceiveCount: 5,
      waitTimeSeconds: 1,
      dispatch: async () => {},
      ...options,
    });
  }

  async function sendMany(queueUrl: string, count: number) {
    for (let start = 0; start < count; start += 10) {
      await topology.clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: Array.from({ length: Math.min(10, count - start) }, (_, index) => ({
            Id: String(index),
            MessageBody: JSON.stringify({ type: 'T', payload: { n: start + index } }),
          })),
        }),
      );
    }
  }

  it('runs more than one batch of handlers at once, never more than its concurrency', async () => {
    const concurrency = 25;
    let running = 0;
    let peak = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const subject = worker('bulk-item', {
      concurrency,
      dispatch: async () => {
        running += 1;
        peak = Math.max(peak, running);
        await gate; // everybody waits until 25 run at the same time
        running -= 1;
      },
    });
    await sendMany(topology.state.queues['bulk-item'].url, 40);
    subject.start();
    try {
      await vi.waitFor(() => expect(running, 'handlers running at once').toBe(concurrency), WAIT);
      expect(peak).toBe(concurrency);
      release();
      await vi.waitFor(async () => {
        const depth = await queueDepth(topology.clients.sqs, topology.state.queues['bulk-item'].url);
        expect(depth, 'messages left').toBe(0);
      }, WAIT);
      expect(peak).toBe(concurrency);
    } finally {
      release();
      await subject.stop(5_000);
    }
  });

  it('extends visibility while a handler runs longer than the visibility timeout', async () => {
    const queueUrl = topology.state.queues['profile-sync'].url;
    let calls = 0;
    const subject = worker('profile-sync', {
      concurrency: 1,
      visibilityTimeoutSeconds: 3,
      dispatch: async () => {
        calls += 1;
        await new Promise((resolve) => setTimeout(resolve, 7_000));
      },
    });
    await sendMany(queueUrl, 1);
    subject.start();
    try {
      await vi.waitFor(() => expect(calls, 'handler calls').toBe(1), WAIT);
      // Past two visibility timeouts the message is still in flight, not visible again.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      const { Attributes = {} } = await topology.clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      expect(Number(Attributes.ApproximateNumberOfMessages)).toBe(0);
      expect(Number(Attributes.ApproximateNumberOfMessagesNotVisible)).toBe(1);
      await vi.waitFor(
        async () => expect(await queueDepth(topology.clients.sqs, queueUrl), 'messages left').toBe(0),
        WAIT,
      );
      expect(calls).toBe(1);
    } finally {
      await subject.stop(10_000);
    }
  });

  it('counts a dead-letter send that fails as send-failed, not as a success, and keeps the message', async () => {
    const events: HandledEvent[] = [];
    const state = topology.state.queues['profile-sync'];
    const missingDlq = `${state.deadLetterUrl}-missing`;
    const failing = worker('profile-sync', {
      deadLetterQueueUrl: missingDlq,
      dispatch: async () => {
        throw new FatalError('never handled');
      },
      onHandled: (event) => events.push(event),
    });
    await topology.clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: state.url,
        Entries: [{ Id: '1', MessageBody: JSON.stringify({ type: 'T', payload: {} }) }],
      }),
    );
    failing.start();
    try {
      await vi.waitFor(() => expect(events.length, 'messages handled').toBeGreaterThan(0), WAIT);
      expect(events[0]?.outcome).toBe(Outcome.SendFailed);
    } finally {
      await failing.stop(1_000);
    }
    // Not deleted: it is still in the queue (in flight until its visibility runs out).
    expect(await queueDepth(topology.clients.sqs, state.url)).toBe(1);
  });
});
