/**
 * THE topology of the fleet: queues, dead-letter queues, the event bus, the rules that
 * route events to queues and the nightly schedule. The local bootstrap
 * (`shared/bootstrap.ts`) and the CDK stack (`infra/`) both read this object, so what runs
 * on a laptop and what is deployed cannot drift apart.
 *
 * Names here are logical; `resourceNames(prefix)` turns them into physical names so that
 * stages and test files can share one account without seeing each other.
 */

import type { EventType } from './events.ts';
import { QUEUE_NAMES, type QueueName } from './queues.ts';

export { QUEUE_NAMES, type QueueName };

/** `source` of every event the fleet publishes; rules match on it and on `detail-type`. */
export const EVENT_SOURCE = 'adfleet';

export interface QueueSpec {
  /** Longer than one message's usual handling; the chassis extends it while a handler runs. */
  readonly visibilityTimeoutSeconds: number;
  /** Receives before SQS moves a message to the DLQ. Throttling never spends these (see consumer). */
  readonly maxReceiveCount: number;
  readonly retentionDays: number;
  readonly dlqRetentionDays: number;
  /** Age of the oldest message, in seconds, past which the queue is not keeping up (alarm). */
  readonly maxMessageAgeSeconds: number;
}

export interface RuleSpec {
  readonly name: string;
  readonly description: string;
  /** Catalog events (events.ts) the rule routes. */
  readonly detailTypes: readonly EventType[];
  readonly target: QueueName;
}

export interface ScheduleSpec {
  readonly name: string;
  readonly description: string;
  /** EventBridge Scheduler expression. */
  readonly expression: string;
  readonly timezone: string;
  /** The event the schedule puts on the fleet's bus. */
  readonly detailType: EventType;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface Topology {
  readonly queues: Readonly<Record<QueueName, QueueSpec>>;
  readonly rules: readonly RuleSpec[];
  readonly schedules: readonly ScheduleSpec[];
}

export const topology = {
  queues: {
    'profile-sync': {
      // One profile's sync pages through three list endpoints inside its rate limit.
      visibilityTimeoutSeconds: 300,
      maxReceiveCount: 5,
      retentionDays: 4,
      dlqRetentionDays: 14,
      maxMessageAgeSeconds: 3_600,
    },
    'bulk-item': {
      // One item batch is one Ads API call of at most a thousand items (deadlines.ts).
      // Short, because a worker that dies leaves the messages it had received but not
      // started invisible for this long; a running handler keeps its message hidden by the
      // chassis' heartbeat.
      visibilityTimeoutSeconds: 30,
      maxReceiveCount: 5,
      retentionDays: 4,
      dlqRetentionDays: 14,
      maxMessageAgeSeconds: 900,
    },
    'backfill-chunk': {
      // One chunk is a handful of small batches; the next chunk is a new message.
      visibilityTimeoutSeconds: 120,
      maxReceiveCount: 8,
      retentionDays: 14,
      dlqRetentionDays: 14,
      maxMessageAgeSeconds: 900,
    },
  },
  rules: [
    {
      name: 'sync-all-profiles',
      description: 'Nightly (or on demand) sync of every profile',
      detailTypes: ['SyncAllProfilesRequested'],
      target: 'profile-sync',
    },
    {
      name: 'bulk-job-submitted',
      description: 'A bulk job was written and waits to be fanned out',
      detailTypes: ['BulkJobSubmitted'],
      target: 'bulk-item',
    },
    {
      name: 'bulk-job-completed',
      description: 'Re-sync the profiles a finished bulk job touched',
      detailTypes: ['BulkJobCompleted'],
      target: 'profile-sync',
    },
    {
      name: 'backfill-requested',
      description: 'A backfill job was recorded and waits for its first chunk',
      detailTypes: ['BackfillRequested'],
      target: 'backfill-chunk',
    },
  ],
  schedules: [
    {
      name: 'nightly-sync',
      description: 'Puts SyncAllProfilesRequested on the bus every night',
      expression: 'cron(0 3 * * ? *)',
      timezone: 'UTC',
      detailType: 'SyncAllProfilesRequested',
      detail: { reason: 'nightly' },
    },
  ],
} as const satisfies Topology;

export interface ResourceNames {
  readonly prefix: string;
  readonly bus: string;
  queue(name: QueueName): string;
  deadLetterQueue(name: QueueName): string;
  rule(rule: RuleSpec): string;
  schedule(schedule: ScheduleSpec): string;
  /** The IAM role EventBridge Scheduler assumes to put events on the bus. */
  readonly schedulerRole: string;
}

/** Physical names for one stage (or one test file): `<prefix>-<logical name>`. */
export function resourceNames(prefix: string): ResourceNames {
  return {
    prefix,
    bus: `${prefix}-events`,
    queue: (name) => `${prefix}-${name}`,
    deadLetterQueue: (name) => `${prefix}-${name}-dlq`,
    rule: (rule) => `${prefix}-${rule.name}`,
    schedule: (schedule) => `${prefix}-${schedule.name}`,
    schedulerRole: `${prefix}-scheduler`,
  };
}

/** The EventBridge pattern a rule matches: the fleet's source and the rule's detail types. */
export function eventPattern(rule: RuleSpec): { source: string[]; 'detail-type': string[] } {
  return { source: [EVENT_SOURCE], 'detail-type': [...rule.detailTypes] };
}

const DAY_SECONDS = 86_400;

/** SQS attributes of a worker queue, as the bootstrap sets them and the CDK stack declares them. */
export function queueAttributes(spec: QueueSpec, deadLetterQueueArn: string) {
  return {
    VisibilityTimeout: spec.visibilityTimeoutSeconds,
    MessageRetentionPeriod: spec.retentionDays * DAY_SECONDS,
    ReceiveMessageWaitTimeSeconds: 20,
    RedrivePolicy: { deadLetterTargetArn: deadLetterQueueArn, maxReceiveCount: spec.maxReceiveCount },
  } as const;
}

/** SQS attributes of a dead-letter queue. */
export function deadLetterQueueAttributes(spec: QueueSpec) {
  return { MessageRetentionPeriod: spec.dlqRetentionDays * DAY_SECONDS } as const;
}

/**
 * What a schedule's EventBridge Scheduler target carries: the detail as the input, the
 * fleet's source and the schedule's detail type. The bootstrap and the CDK stack both take
 * it from here, so the nightly event looks the same on a laptop and in the account.
 */
export function scheduleTargetParameters(schedule: ScheduleSpec) {
  return {
    Input: JSON.stringify(schedule.detail),
    EventBridgeParameters: { DetailType: schedule.detailType, Source: EVENT_SOURCE },
  } as const;
}
