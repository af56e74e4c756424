import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { METRIC_NAMES, METRICS_NAMESPACE } from '../../contract/metrics.ts';
import { QUEUE_NAMES, resourceNames, topology } from '../../contract/topology.ts';
import { slo } from '../../infra/alarms.ts';
import { WORKER_NAMES } from '../../infra/workers.ts';
import { createLogger } from '../../shared/logging.ts';
import { Outcome } from '../../shared/messaging/queue-worker.ts';
import { WorkerMetrics } from '../../shared/metrics.ts';
import { emfLinesOf } from '../support/emf.ts';
import { handledEvent } from '../support/factories.ts';
import { BASE_CONTEXT, onlyResource, queueIdByName, resourcesOf, synthesizeFleet } from './fleet-template.ts';

const names = resourceNames('adfleet');

let template: Template;
let topicId: string;
beforeAll(() => {
  ({ template } = synthesizeFleet({ ...BASE_CONTEXT, alarmEmail: 'ads-oncall@example.com' }));
  [topicId] = onlyResource(template, 'AWS::SNS::Topic', (p) => p.TopicName === 'adfleet-alarms');
});

function alarm(name: string) {
  return onlyResource(template, 'AWS::CloudWatch::Alarm', (p) => p.AlarmName === name)[1].Properties;
}

describe('alarm topic', () => {
  it('is one SNS topic, TLS only, with the ops email subscribed', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ads-oncall@example.com',
      TopicArn: { Ref: topicId },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: [
          {
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      },
    });
  });

  it('receives every alarm and its recovery', () => {
    const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'));
    // 3 dead-letter queues + 3 queue ages + 3 error rates + 3 dependency outages + 3 send
    // failures + profile-sync freshness.
    expect(alarms).toHaveLength(QUEUE_NAMES.length * 2 + WORKER_NAMES.length * 3 + 1);
    for (const { Properties } of alarms) {
      expect(Properties.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(Properties.OKActions).toEqual([{ Ref: topicId }]);
    }
  });
});

describe('queue alarms', () => {
  it.each(QUEUE_NAMES)('%s dead-letter queue alarms on any message', (queue) => {
    expect(alarm(`${names.deadLetterQueue(queue)}-not-empty`)).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [queueIdByName(template, names.deadLetterQueue(queue)), 'QueueName'] },
        },
      ],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
  });

  it.each(QUEUE_NAMES)('%s alarms when its oldest message is older than the topology allows', (queue) => {
    expect(alarm(`${names.queue(queue)}-oldest-message-too-old`)).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [queueIdByName(template, names.queue(queue)), 'QueueName'] },
        },
      ],
      Statistic: 'Maximum',
      Period: 60,
      Threshold: topology.queues[queue].maxMessageAgeSeconds,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: slo.queueAgeMinutesToAlarm,
    });
  });
});

describe('worker alarms', () => {
  it.each(WORKER_NAMES)(
    '%s alarms when more than 5%% of its messages fail, from the chassis metrics',
    (worker) => {
      const properties = alarm(`adfleet-${worker}-error-rate`);
      expect(properties).toMatchObject({
        Threshold: 5,
        ComparisonOperator: 'GreaterThanThreshold',
        EvaluationPeriods: 3,
        TreatMissingData: 'notBreaching',
      });
      const metric = (name: string) => ({
        Namespace: METRICS_NAMESPACE,
        MetricName: name,
        Dimensions: [{ Name: 'Service', Value: worker }],
      });
      const queries = properties.Metrics as {
        Id: string;
        Expression?: string;
        MetricStat?: unknown;
        ReturnData?: boolean;
      }[];
      expect(queries).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Expression: 'IF(processed >= 20, 100 * failed / processed, 0)',
          }),
          {
            Id: 'processed',
            MetricStat: { Metric: metric('MessagesProcessed'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
          {
            Id: 'failed',
            MetricStat: { Metric: metric('MessagesFailed'), Period: 300, Stat: 'Sum' },
            ReturnData: false,
          },
        ]),
      );
      expect(queries).toHaveLength(3);
    },
  );

  it('alarms when some profile has gone more than 26 h without a good sync', () => {
    expect(alarm('adfleet-profile-sync-freshness')).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'OldestProfileSyncAgeSeconds',
      Dimensions: [{ Name: 'Service', Value: 'profile-sync' }],
      Statistic: 'Maximum',
      Threshold: 26 * 3_600,
      ComparisonOperator: 'GreaterThanThreshold',
      // profile-sync writes it on a timer: silence is a dead fleet or a dead schedule's worker.
      TreatMissingData: 'breaching',
    });
    // The nightly schedule is what keeps profiles fresh; the objective assumes it runs daily.
    expect(topology.schedules.map((schedule) => schedule.expression)).toEqual(['cron(0 3 * * ? *)']);
  });
});

describe('what the alarms read is what the chassis writes', () => {
  type AlarmMetric = {
    Namespace: string;
    MetricName: string;
    Dimensions: Array<{ Name: string; Value: string }>;
  };

  function fleetMetricsAlarmsRead(): AlarmMetric[] {
    const read: AlarmMetric[] = [];
    for (const resource of Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'))) {
      const properties = resource.Properties as AlarmMetric & {
        Metrics?: Array<{ MetricStat?: { Metric: AlarmMetric } }>;
      };
      const metrics = properties.Metrics?.flatMap((query) =>
        query.MetricStat ? [query.MetricStat.Metric] : [],
      );
      for (const metric of metrics ?? [properties]) {
        if (metric.Namespace === METRICS_NAMESPACE) read.push(metric);
      }
    }
    return read;
  }

  it('every adfleet metric an alarm reads appears in the EMF line of its Service, under that one dimension', async () => {
    const lines = await emfLinesOf(async () => {
      for (const worker of WORKER_NAMES) {
        const metrics = new WorkerMetrics(worker, createLogger({ name: 'test', level: 'silent' }));
        metrics.record(handledEvent({ outcome: Outcome.Succeeded, type: 'Any', durationMs: 1 }));
        if (worker === 'profile-sync') metrics.gauge(METRIC_NAMES.oldestProfileSyncAge, 60, 'Seconds');
        await metrics.close();
      }
    });
    const read = fleetMetricsAlarmsRead();
    // Error rate (2 metrics), dependencies unavailable and send failures per worker, and freshness.
    expect(read).toHaveLength(4 * WORKER_NAMES.length + 1);
    for (const metric of read) {
      const service = metric.Dimensions.find((dimension) => dimension.Name === 'Service')?.Value;
      expect(metric.Dimensions.map((dimension) => dimension.Name)).toEqual(['Service']);
      const line = lines.find((candidate) => candidate.Service === service);
      expect(line, `EMF line of ${service}`).toBeDefined();
      const [directive] = line?._aws.CloudWatchMetrics ?? [];
      expect(directive?.Namespace).toBe(METRICS_NAMESPACE);
      expect(directive?.Dimensions).toEqual([['Service']]);
      expect(directive?.Metrics.map((written) => written.Name)).toContain(metric.MetricName);
    }
  });
});
