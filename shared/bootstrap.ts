import { CreateEventBusCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SetQueueAttributesCommand,
} from '@aws-sdk/client-sqs';
import {
  deadLetterQueueAttributes,
  eventPattern,
  QUEUE_NAMES,
  type QueueName,
  queueAttributes,
  type ResourceNames,
  scheduleTargetParameters,
  topology,
} from '../contract/topology.ts';
import { type AwsClients, accountOf } from './aws.ts';

/**
 * Creates the topology of `contract/topology.ts` against any SQS/EventBridge endpoint
 * (LocalStack, moto, or a sandbox account). Idempotent and converging: every call sets
 * the attributes the definition asks for, so a changed definition is applied by running
 * it again. Production uses the CDK stack built from the same definition instead.
 */

export interface QueueState {
  readonly url: string;
  readonly arn: string;
  readonly deadLetterUrl: string;
  readonly deadLetterArn: string;
}

export interface TopologyState {
  readonly busName: string;
  readonly busArn: string;
  readonly queues: Readonly<Record<QueueName, QueueState>>;
}

function stringAttributes(attributes: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(attributes).map(([key, value]) => [
      key,
      typeof value === 'object' ? JSON.stringify(value) : String(value),
    ]),
  );
}

async function ensureQueue(clients: AwsClients, name: string, attributes: Record<string, unknown>) {
  // Created bare, then configured: CreateQueue with attributes that differ from an existing
  // queue's fails, SetQueueAttributes converges.
  const { QueueUrl } = await clients.sqs.send(new CreateQueueCommand({ QueueName: name }));
  if (QueueUrl === undefined) throw new Error(`CreateQueue returned no URL for ${name}`);
  await clients.sqs.send(
    new SetQueueAttributesCommand({ QueueUrl, Attributes: stringAttributes(attributes) }),
  );
  const { Attributes } = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  const arn = Attributes?.QueueArn;
  if (arn === undefined) throw new Error(`no ARN for queue ${name}`);
  return { url: QueueUrl, arn };
}

async function ensureBus(clients: AwsClients, name: string, region: string, account: string) {
  try {
    const { EventBusArn } = await clients.events.send(new CreateEventBusCommand({ Name: name }));
    if (EventBusArn !== undefined) return EventBusArn;
  } catch (error) {
    if ((error as Error).name !== 'ResourceAlreadyExistsException') throw error;
  }
  return `arn:aws:events:${region}:${account}:event-bus/${name}`;
}

export async function bootstrapTopology(
  clients: AwsClients,
  names: ResourceNames,
  log: (message: string) => void = () => {},
): Promise<TopologyState> {
  const region = await clients.sqs.config.region();
  const queues = {} as Record<QueueName, QueueState>;
  for (const queue of QUEUE_NAMES) {
    const spec = topology.queues[queue];
    const dlq = await ensureQueue(clients, names.deadLetterQueue(queue), deadLetterQueueAttributes(spec));
    const main = await ensureQueue(clients, names.queue(queue), queueAttributes(spec, dlq.arn));
    queues[queue] = { url: main.url, arn: main.arn, deadLetterUrl: dlq.url, deadLetterArn: dlq.arn };
    log(`queue ${names.queue(queue)} (dead letters: ${names.deadLetterQueue(queue)})`);
  }

  const account = accountOf(queues['profile-sync'].arn);
  const busArn = await ensureBus(clients, names.bus, region, account);
  log(`event bus ${names.bus}`);

  const ruleArnsByQueue = new Map<QueueName, string[]>();
  for (const rule of topology.rules) {
    const { RuleArn } = await clients.events.send(
      new PutRuleCommand({
        Name: names.rule(rule),
        EventBusName: names.bus,
        EventPattern: JSON.stringify(eventPattern(rule)),
        Description: rule.description,
        State: 'ENABLED',
      }),
    );
    await clients.events.send(
      new PutTargetsCommand({
        Rule: names.rule(rule),
        EventBusName: names.bus,
        Targets: [{ Id: rule.target, Arn: queues[rule.target].arn }],
      }),
    );
    if (RuleArn !== undefined) {
      ruleArnsByQueue.set(rule.target, [...(ruleArnsByQueue.get(rule.target) ?? []), RuleArn]);
    }
    log(`rule ${names.rule(rule)} → ${names.queue(rule.target)}`);
  }

  // Emulators do not enforce it, but a real account does: only the fleet's rules may send.
  for (const [queue, ruleArns] of ruleArnsByQueue) {
    await clients.sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: queues[queue].url,
        Attributes: { Policy: JSON.stringify(eventBridgeSendPolicy(queues[queue].arn, ruleArns)) },
      }),
    );
  }

  for (const schedule of topology.schedules) {
    const input: CreateScheduleCommandInput = {
      Name: names.schedule(schedule),
      Description: schedule.description,
      ScheduleExpression: schedule.expression,
      ScheduleExpressionTimezone: schedule.timezone,
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Target: {
        Arn: busArn,
        RoleArn: `arn:aws:iam::${account}:role/${names.schedulerRole}`,
        ...scheduleTargetParameters(schedule),
      },
    };
    try {
      await clients.scheduler.send(new CreateScheduleCommand(input));
    } catch (error) {
      if (!(error instanceof ConflictException) && (error as Error).name !== 'ConflictException') throw error;
      await clients.scheduler.send(new UpdateScheduleCommand(input));
    }
    log(`schedule ${names.schedule(schedule)} (${schedule.expression}) → ${schedule.detailType}`);
  }

  return { busName: names.bus, busArn, queues };
}

export function eventBridgeSendPolicy(queueArn: string, ruleArns: readonly string[]) {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'AllowFleetRules',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: queueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': [...ruleArns] } },
      },
    ],
  };
}
