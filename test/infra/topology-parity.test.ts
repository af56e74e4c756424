import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetterQueueAttributes,
  EVENT_SOURCE,
  eventPattern,
  QUEUE_NAMES,
  queueAttributes,
  resourceNames,
  scheduleTargetParameters,
  topology,
} from '../../contract/topology.ts';
import {
  getAtt,
  onlyResource,
  queueByName,
  referencedId,
  resourcesOf,
  synthesizeFleet,
} from './fleet-template.ts';

/**
 * The synthesized topology equals what the local bootstrap creates: both are computed from
 * `contract/topology.ts` by the same functions (`queueAttributes`, `deadLetterQueueAttributes`,
 * `eventPattern`, `scheduleTargetParameters`), and the bootstrap's own test checks the
 * emulator against those functions. Anything the template adds on top is listed here.
 */

const names = resourceNames('adfleet');
/** What deployment adds to a queue beyond the shared attributes. */
const DEPLOY_ONLY_QUEUE_PROPERTIES = ['QueueName', 'SqsManagedSseEnabled', 'Tags'];

let template: Template;
beforeAll(() => {
  ({ template } = synthesizeFleet());
});

describe('queues', () => {
  it('are exactly the topology queues and their dead-letter queues', () => {
    const synthesized = Object.values(resourcesOf(template, 'AWS::SQS::Queue')).map(
      (queue) => queue.Properties.QueueName,
    );
    const expected = QUEUE_NAMES.flatMap((queue) => [names.queue(queue), names.deadLetterQueue(queue)]);
    expect(synthesized.sort()).toEqual(expected.sort());
  });

  it.each(QUEUE_NAMES)(
    '%s has the attributes queueAttributes() gives the bootstrap, redriving to its DLQ',
    (queue) => {
      const [dlqId] = queueByName(template, names.deadLetterQueue(queue));
      const [, resource] = queueByName(template, names.queue(queue));
      // In a template the DLQ's ARN is a GetAtt on the DLQ resource.
      const expected = queueAttributes(topology.queues[queue], getAtt(dlqId) as unknown as string);
      const { QueueName, SqsManagedSseEnabled, Tags, ...shared } = resource.Properties;
      expect(shared).toEqual(expected);
      expect(Tags).toEqual([{ Key: 'application', Value: 'adfleet' }]);
      expect(QueueName).toBe(names.queue(queue));
      expect(SqsManagedSseEnabled).toBe(true);
      expect(Object.keys(resource.Properties).sort()).toEqual(
        [...Object.keys(expected), ...DEPLOY_ONLY_QUEUE_PROPERTIES].sort(),
      );
    },
  );

  it.each(QUEUE_NAMES)(
    '%s dead-letter queue has the attributes deadLetterQueueAttributes() gives, encrypted',
    (queue) => {
      const [, resource] = queueByName(template, names.deadLetterQueue(queue));
      const { QueueName, SqsManagedSseEnabled, Tags, ...shared } = resource.Properties;
      expect(shared).toEqual(deadLetterQueueAttributes(topology.queues[queue]));
      expect(Tags).toEqual([{ Key: 'application', Value: 'adfleet' }]);
      expect(QueueName).toBe(names.deadLetterQueue(queue));
      expect(SqsManagedSseEnabled).toBe(true);
    },
  );

  it('refuse unencrypted transport on every queue', () => {
    for (const [queueId] of Object.entries(resourcesOf(template, 'AWS::SQS::Queue'))) {
      const policies = Object.values(resourcesOf(template, 'AWS::SQS::QueuePolicy')).filter((policy) =>
        (policy.Properties.Queues as unknown[]).some((queue) => referencedId(queue) === queueId),
      );
      const statements = policies.flatMap(
        (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
      );
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 'sqs:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });
});

describe('event bus and rules', () => {
  it('has the one fleet bus', () => {
    template.resourceCountIs('AWS::Events::EventBus', 1);
    template.hasResourceProperties('AWS::Events::EventBus', { Name: names.bus });
  });

  it('has exactly one rule per topology rule', () => {
    const synthesized = Object.values(resourcesOf(template, 'AWS::Events::Rule')).map(
      (rule) => rule.Properties.Name,
    );
    expect(synthesized.sort()).toEqual(topology.rules.map((rule) => names.rule(rule)).sort());
  });

  it.each(topology.rules.map((rule) => [rule.name, rule] as const))(
    'rule %s matches eventPattern() on the fleet bus and targets the queue the topology names',
    (_name, rule) => {
      const [, resource] = onlyResource(template, 'AWS::Events::Rule', (p) => p.Name === names.rule(rule));
      const [busId] = onlyResource(template, 'AWS::Events::EventBus', (p) => p.Name === names.bus);
      const [queueId] = queueByName(template, names.queue(rule.target));
      expect(resource.Properties).toMatchObject({
        EventPattern: eventPattern(rule),
        Description: rule.description,
        State: 'ENABLED',
        EventBusName: { Ref: busId },
      });
      const targets = resource.Properties.Targets as { Arn: unknown }[];
      expect(targets).toHaveLength(1);
      expect(targets[0]?.Arn).toEqual(getAtt(queueId));
    },
  );

  it.each(QUEUE_NAMES)('only the rules that target %s may send to it', (queue) => {
    const [queueId] = queueByName(template, names.queue(queue));
    const ruleIds = Object.entries(resourcesOf(template, 'AWS::Events::Rule'))
      .filter(([, rule]) =>
        topology.rules.some((r) => r.target === queue && names.rule(r) === rule.Properties.Name),
      )
      .map(([id]) => id);
    const statements = Object.values(resourcesOf(template, 'AWS::SQS::QueuePolicy'))
      .filter((policy) => (policy.Properties.Queues as unknown[]).some((q) => referencedId(q) === queueId))
      .flatMap(
        (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
      )
      .filter((statement) => statement.Effect === 'Allow');
    const allowedRuleIds = statements.map((statement) => {
      expect(statement.Principal).toEqual({ Service: 'events.amazonaws.com' });
      expect(statement.Action).toContain('sqs:SendMessage');
      return referencedId(
        (statement.Condition as { ArnEquals: Record<string, unknown> }).ArnEquals['aws:SourceArn'],
      );
    });
    expect(allowedRuleIds.sort()).toEqual(ruleIds.sort());
  });
});

describe('schedules', () => {
  it.each(topology.schedules.map((schedule) => [schedule.name, schedule] as const))(
    'schedule %s puts scheduleTargetParameters() on the fleet bus, as the bootstrap does',
    (_name, schedule) => {
      const [busId] = onlyResource(template, 'AWS::Events::EventBus', (p) => p.Name === names.bus);
      const [, resource] = onlyResource(
        template,
        'AWS::Scheduler::Schedule',
        (p) => p.Name === names.schedule(schedule),
      );
      const parameters = scheduleTargetParameters(schedule);
      expect(resource.Properties).toMatchObject({
        Description: schedule.description,
        ScheduleExpression: schedule.expression,
        ScheduleExpressionTimezone: schedule.timezone,
        FlexibleTimeWindow: { Mode: 'OFF' },
        State: 'ENABLED',
        Target: { Arn: getAtt(busId), ...parameters },
      });
      expect(parameters.EventBridgeParameters.Source).toBe(EVENT_SOURCE);
    },
  );

  it('lets the scheduler role put events on the fleet bus and do nothing else', () => {
    const [busId] = onlyResource(template, 'AWS::Events::EventBus', (p) => p.Name === names.bus);
    const [, schedule] = onlyResource(template, 'AWS::Scheduler::Schedule', () => true);
    const roleId = referencedId((schedule.Properties.Target as { RoleArn: unknown }).RoleArn);
    const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((policy) =>
      (policy.Properties.Roles as unknown[]).some((role) => referencedId(role) === roleId),
    );
    const statements = policies.flatMap(
      (policy) => (policy.Properties.PolicyDocument as { Statement: unknown[] }).Statement,
    );
    expect(statements).toEqual([{ Effect: 'Allow', Action: 'events:PutEvents', Resource: getAtt(busId) }]);
  });
});
