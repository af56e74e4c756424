import { DescribeRuleCommand, ListTargetsByRuleCommand, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetScheduleCommand } from '@aws-sdk/client-scheduler';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterQueueAttributes,
  EVENT_SOURCE,
  eventPattern,
  QUEUE_NAMES,
  queueAttributes,
  topology,
} from '../../contract/topology.ts';
import { bootstrapTopology } from '../../shared/bootstrap.ts';
import { drainMessages } from '../support/queues.ts';
import { createTestTopology, type TestTopology } from '../support/topology.ts';

describe('topology bootstrap', () => {
  let subject: TestTopology;

  beforeAll(async () => {
    subject = await createTestTopology('topology');
  });
  afterAll(async () => {
    await subject.destroy();
  });

  it('is idempotent: a second bootstrap yields the same topology without error', async () => {
    const again = await bootstrapTopology(subject.clients, subject.names);
    expect(again).toEqual(subject.state);
  });

  it('gives every queue the attributes and dead-letter queue the definition asks for', async () => {
    for (const queue of QUEUE_NAMES) {
      const spec = topology.queues[queue];
      const { url, deadLetterArn, deadLetterUrl } = subject.state.queues[queue];
      const { Attributes: live = {} } = await subject.clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }),
      );
      const expected = queueAttributes(spec, deadLetterArn);
      expect(Number(live.VisibilityTimeout)).toBe(expected.VisibilityTimeout);
      expect(Number(live.MessageRetentionPeriod)).toBe(expected.MessageRetentionPeriod);
      expect(Number(live.ReceiveMessageWaitTimeSeconds)).toBe(expected.ReceiveMessageWaitTimeSeconds);
      const redrive = JSON.parse(live.RedrivePolicy ?? '{}');
      expect(redrive.deadLetterTargetArn).toBe(deadLetterArn);
      expect(Number(redrive.maxReceiveCount)).toBe(spec.maxReceiveCount);

      const { Attributes: dlq = {} } = await subject.clients.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: deadLetterUrl, AttributeNames: ['All'] }),
      );
      expect(Number(dlq.MessageRetentionPeriod)).toBe(deadLetterQueueAttributes(spec).MessageRetentionPeriod);
      expect(dlq.RedrivePolicy).toBeUndefined();
    }
  });

  it('routes each rule to the queue the definition names', async () => {
    for (const rule of topology.rules) {
      const described = await subject.clients.events.send(
        new DescribeRuleCommand({ Name: subject.names.rule(rule), EventBusName: subject.names.bus }),
      );
      expect(JSON.parse(described.EventPattern ?? '{}')).toEqual(eventPattern(rule));
      const { Targets = [] } = await subject.clients.events.send(
        new ListTargetsByRuleCommand({ Rule: subject.names.rule(rule), EventBusName: subject.names.bus }),
      );
      expect(Targets.map((target) => target.Arn)).toEqual([subject.state.queues[rule.target].arn]);
    }
  });

  it('declares the nightly schedule as an event on the fleet bus', async () => {
    for (const schedule of topology.schedules) {
      const live = await subject.clients.scheduler.send(
        new GetScheduleCommand({ Name: subject.names.schedule(schedule) }),
      );
      expect(live.ScheduleExpression).toBe(schedule.expression);
      expect(live.Target?.Arn).toBe(subject.state.busArn);
      expect(live.Target?.EventBridgeParameters?.DetailType).toBe(schedule.detailType);
    }
  });

  it('delivers an event that matches a rule to that rule’s queue', async () => {
    const rule = topology.rules.find((candidate) => candidate.name === 'backfill-requested');
    if (rule === undefined) throw new Error('rule missing from topology');
    const marker = `marker-${Date.now()}`;
    const put = await subject.clients.events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: subject.names.bus,
            Source: EVENT_SOURCE,
            DetailType: rule.detailTypes[0],
            Detail: JSON.stringify({ marker }),
          },
        ],
      }),
    );
    expect(put.FailedEntryCount ?? 0).toBe(0);

    // LocalStack delivers asynchronously; this topology is the test's own, so the queue
    // holds only this event.
    const queueUrl = subject.state.queues[rule.target].url;
    const [message] = await drainMessages(subject.clients.sqs, queueUrl, 1, 20_000);
    const body: { 'detail-type'?: string; detail?: { marker?: string } } = JSON.parse(message?.Body ?? '{}');
    expect(body?.['detail-type']).toBe('BackfillRequested');
    expect(body?.detail?.marker).toBe(marker);
  });
});
