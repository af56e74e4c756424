import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { METRIC_NAMES, METRICS_NAMESPACE, PROFILE_SYNC_FRESHNESS_SECONDS } from '../contract/metrics.ts';
import { QUEUE_NAMES, type ResourceNames, topology } from '../contract/topology.ts';
import type { FleetQueues } from './queues.ts';
import { WORKER_NAMES } from './workers.ts';

/**
 * The service-level objectives, as numbers the alarms use. Queue freshness comes from the
 * topology (`maxMessageAgeSeconds`), so the scaling target and the alarm share one source.
 */
export const slo = {
  /** Per worker: failed / processed over a window, in percent. Throttling counts: it is real. */
  errorRatePercent: 5,
  errorRateWindow: Duration.minutes(5),
  /** Consecutive windows over the line before paging: one noisy window is not an incident. */
  errorRateWindowsToAlarm: 3,
  /** Below this many messages in a window the rate is noise (1 of 2 is not "50% failing"). */
  errorRateMinimumMessages: 20,
  /**
   * The default of the `syncFreshnessSloHours` setting (PROFILE_SYNC_FRESHNESS_SECONDS):
   * `adfleet status` and `adfleet sync status` hold profiles to the same line.
   */
  profileSyncFreshnessSeconds: PROFILE_SYNC_FRESHNESS_SECONDS,
  /** Minutes a dependency's circuit stays open before paging: a failover takes about a minute. */
  dependencyMinutesToAlarm: 3,
  /** profile-sync writes the freshness metrics every minute; the alarm looks at windows of this. */
  profileSyncFreshnessWindow: Duration.minutes(5),
  /** Minutes the oldest message must stay too old: a single slow message is not a backlog. */
  queueAgeMinutesToAlarm: 3,
} as const;

function fleetMetric(worker: string, metricName: string, period: Duration, statistic = 'Sum') {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { Service: worker },
    statistic,
    period,
  });
}

/**
 * Alarms that say an objective is being missed, all sent to one SNS topic (and an email,
 * if given): a dead letter exists; a queue is not keeping up; a worker's handlers fail too
 * often; profiles are not being synced. Each also notifies when it recovers.
 */
export class FleetAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(
    scope: Construct,
    id: string,
    props: {
      names: ResourceNames;
      queues: FleetQueues;
      alarmEmail?: string | undefined;
      /** profile-sync's freshness objective; default PROFILE_SYNC_FRESHNESS_SECONDS. */
      syncFreshnessSloHours?: number | undefined;
    },
  ) {
    super(scope, id);
    const { names, queues } = props;
    this.topic = new sns.Topic(this, 'Topic', { topicName: `${names.prefix}-alarms`, enforceSSL: true });
    if (props.alarmEmail !== undefined) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    for (const queue of QUEUE_NAMES) {
      const { queue: workQueue, deadLetterQueue } = queues.byName[queue];
      this.add(`${queue}-dlq`, {
        alarmName: `${names.deadLetterQueue(queue)}-not-empty`,
        alarmDescription: `A message could not be processed and sits in ${names.deadLetterQueue(queue)}: read its reason, fix, redrive.`,
        metric: deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        // SQS stops publishing for idle queues: no data is an empty DLQ.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

      const maxAge = topology.queues[queue].maxMessageAgeSeconds;
      this.add(`${queue}-age`, {
        alarmName: `${names.queue(queue)}-oldest-message-too-old`,
        alarmDescription: `The oldest message in ${names.queue(queue)} is over ${maxAge} s old: the worker is not keeping up or not consuming.`,
        metric: workQueue.metricApproximateAgeOfOldestMessage({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        threshold: maxAge,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: slo.queueAgeMinutesToAlarm,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    for (const worker of WORKER_NAMES) {
      const period = slo.errorRateWindow;
      this.add(`${worker}-errors`, {
        alarmName: `${names.prefix}-${worker}-error-rate`,
        alarmDescription: `More than ${slo.errorRatePercent}% of ${worker} messages failed in their handler for ${slo.errorRateWindowsToAlarm} windows of ${period.toMinutes()} min.`,
        metric: new cloudwatch.MathExpression({
          label: `${worker} handler error rate (%)`,
          expression: `IF(processed >= ${slo.errorRateMinimumMessages}, 100 * failed / processed, 0)`,
          usingMetrics: {
            processed: fleetMetric(worker, METRIC_NAMES.processed, period),
            failed: fleetMetric(worker, METRIC_NAMES.failed, period),
          },
          period,
        }),
        threshold: slo.errorRatePercent,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: slo.errorRateWindowsToAlarm,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    for (const worker of WORKER_NAMES) {
      this.add(`${worker}-dependency`, {
        alarmName: `${names.prefix}-${worker}-dependency-unavailable`,
        alarmDescription: `A dependency of ${worker} (Postgres, SQS/EventBridge, the Ads API or its credentials) has had its circuit open for ${slo.dependencyMinutesToAlarm} min: the worker is paused and not ready; its log and /readyz say which and why.`,
        metric: fleetMetric(worker, METRIC_NAMES.dependenciesUnavailable, Duration.minutes(1), 'Maximum'),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: slo.dependencyMinutesToAlarm,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      this.add(`${worker}-send-failures`, {
        alarmName: `${names.prefix}-${worker}-send-failures`,
        alarmDescription: `${worker} could not send a dead letter, a deferral or a release: those messages came back instead of moving on.`,
        metric: fleetMetric(worker, METRIC_NAMES.sendFailures, Duration.minutes(5)),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    const freshnessSeconds = (props.syncFreshnessSloHours ?? slo.profileSyncFreshnessSeconds / 3_600) * 3_600;
    this.add('profile-sync-freshness', {
      alarmName: `${names.prefix}-profile-sync-freshness`,
      alarmDescription:
        `Some profile's last good sync is older than ${freshnessSeconds / 3_600} h (it missed the nightly sync), ` +
        'or profile-sync has stopped reporting freshness (no task running, or it cannot read the database). ' +
        'See `adfleet sync status --stale`.',
      metric: fleetMetric(
        'profile-sync',
        METRIC_NAMES.oldestProfileSyncAge,
        slo.profileSyncFreshnessWindow,
        'Maximum',
      ),
      threshold: freshnessSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 3,
      // Every profile-sync task writes the metric on a timer whether or not anything syncs,
      // so silence means no task is alive to look: a dead fleet pages like a stale one.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }

  private add(id: string, props: cloudwatch.AlarmProps): void {
    const alarm = new cloudwatch.Alarm(this, id, props);
    alarm.addAlarmAction(new cloudwatchActions.SnsAction(this.topic));
    alarm.addOkAction(new cloudwatchActions.SnsAction(this.topic));
    this.alarms.push(alarm);
  }
}
