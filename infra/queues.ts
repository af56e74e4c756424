import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  deadLetterQueueAttributes,
  QUEUE_NAMES,
  type QueueName,
  queueAttributes,
  type ResourceNames,
  topology,
} from '../contract/topology.ts';

export interface FleetQueue {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
}

/**
 * Every queue of the topology with its dead-letter queue. The attributes are the very
 * objects `queueAttributes` / `deadLetterQueueAttributes` return for the local bootstrap,
 * translated field by field, so the two cannot disagree; tests compare them.
 *
 * Encryption is SQS-managed (SSE-SQS) rather than a customer KMS key: EventBridge and
 * Scheduler can deliver into it without a key policy, and every role would otherwise need
 * kms:Decrypt/GenerateDataKey on a key for data that is no more sensitive than the queue.
 */
export class FleetQueues extends Construct {
  readonly byName: Readonly<Record<QueueName, FleetQueue>>;

  constructor(scope: Construct, id: string, names: ResourceNames) {
    super(scope, id);
    const byName = {} as Record<QueueName, FleetQueue>;
    for (const name of QUEUE_NAMES) {
      const spec = topology.queues[name];
      const dlqAttributes = deadLetterQueueAttributes(spec);
      const deadLetterQueue = new sqs.Queue(this, `${name}-dlq`, {
        queueName: names.deadLetterQueue(name),
        retentionPeriod: Duration.seconds(dlqAttributes.MessageRetentionPeriod),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      const attributes = queueAttributes(spec, deadLetterQueue.queueArn);
      const queue = new sqs.Queue(this, name, {
        queueName: names.queue(name),
        visibilityTimeout: Duration.seconds(attributes.VisibilityTimeout),
        retentionPeriod: Duration.seconds(attributes.MessageRetentionPeriod),
        receiveMessageWaitTime: Duration.seconds(attributes.ReceiveMessageWaitTimeSeconds),
        deadLetterQueue: {
          queue: deadLetterQueue,
          maxReceiveCount: attributes.RedrivePolicy.maxReceiveCount,
        },
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      byName[name] = { queue, deadLetterQueue };
    }
    this.byName = byName;
  }
}
