import { Duration, Size, Stack } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { DEFAULT_DRAIN_TIMEOUT_MS } from '../contract/config.ts';
import { EVENT_SOURCE } from '../contract/topology.ts';
import type { FleetNetwork } from './network.ts';
import type { FleetQueues } from './queues.ts';
import type { FleetSettings } from './settings.ts';
import { addTelemetrySidecar, COLLECTOR_OTLP_HTTP_ENDPOINT, type TracesExport } from './telemetry-sidecar.ts';
import {
  backlogPerTaskTarget,
  HEALTH_PORT,
  STOP_TIMEOUT_SECONDS,
  type WorkerName,
  workers,
} from './workers.ts';

export interface FleetSecrets {
  readonly databaseUrl: secretsmanager.ISecret;
  readonly redisUrl: secretsmanager.ISecret;
  /** JSON: `clientId`, `clientSecret`, `refreshToken`. */
  readonly adsApi: secretsmanager.ISecret;
}

export interface WorkerServiceProps {
  readonly worker: WorkerName;
  readonly settings: FleetSettings;
  readonly cluster: ecs.ICluster;
  readonly network: FleetNetwork;
  readonly image: ecs.ContainerImage;
  readonly queues: FleetQueues;
  readonly bus: events.IEventBus;
  readonly secrets: FleetSecrets;
  readonly traces: TracesExport;
}

/**
 * The liveness probe, in Node because node:24-slim has no curl. /healthz, not /readyz: a
 * Postgres outage makes every task "not ready", and replacing them all would turn a
 * dependency outage into a crash loop; the workers back off by themselves instead.
 */
export function healthCheckCommand(port: number): string[] {
  const probe = `fetch('http://127.0.0.1:${port}/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;
  return ['CMD', 'node', '-e', probe];
}

/**
 * One worker as one Fargate service: its task definition (worker + collector sidecar), a
 * task role that can touch exactly this worker's queues and the bus, an execution role
 * that can read exactly this worker's secrets, and backlog-per-task autoscaling.
 */
export class WorkerService extends Construct {
  readonly service: ecs.FargateService;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    super(scope, id);
    const { worker, settings, queues } = props;
    const deployment = workers[worker];
    const stack = Stack.of(this);
    const own = queues.byName[worker];

    const taskRole = new iam.Role(this, 'TaskRole', {
      description: `adfleet ${worker} worker: its own queue, the queues it sends to, the fleet bus`,
      // Only ECS tasks of this account may assume it (confused-deputy guard).
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'ecs', resource: '*' }) },
        },
      }),
    });
    for (const statement of workerPolicyStatements(worker, queues, props.bus))
      taskRole.addToPolicy(statement);

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      family: `${settings.prefix}-${worker}`,
      cpu: deployment.cpu,
      memoryLimitMiB: deployment.memoryMiB,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
      },
      taskRole,
    });
    // The root filesystem is read-only; this is the one writable place.
    this.taskDefinition.addVolume({ name: 'tmp' });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/${settings.prefix}/${worker}`,
      retention: logs.RetentionDays.ONE_MONTH,
    });

    const collector = addTelemetrySidecar(this.taskDefinition, {
      image: settings.collectorImage,
      traces: props.traces,
      logGroup: this.logGroup,
    });

    const container = this.taskDefinition.addContainer('worker', {
      image: props.image,
      command: ['node', `workers/${worker}/main.ts`],
      essential: true,
      environment: workerEnvironment(worker, settings, stack.region),
      secrets: workerSecrets(worker, props.secrets),
      // pino JSON and the chassis's Embedded Metric Format lines; CloudWatch Logs turns the
      // latter into the `adfleet` metrics the alarms watch. Non-blocking: a slow log
      // service must not stall message handling.
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: worker,
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
      healthCheck: {
        command: healthCheckCommand(HEALTH_PORT),
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout: Duration.seconds(STOP_TIMEOUT_SECONDS),
      readonlyRootFilesystem: true,
      // An init process as PID 1 forwards SIGTERM to node and reaps zombies.
      linuxParameters: new ecs.LinuxParameters(this, 'LinuxParameters', { initProcessEnabled: true }),
    });
    container.addMountPoints({ sourceVolume: 'tmp', containerPath: '/tmp', readOnly: false });
    // Start after the collector, and (ECS stops in reverse order) stop before it, so the
    // spans the worker flushes while draining still have somewhere to go.
    container.addContainerDependencies({
      container: collector,
      condition: ecs.ContainerDependencyCondition.START,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      // No desiredCount: autoscaling owns it, and a deploy must not reset it.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      vpcSubnets: props.network.taskSubnets,
      securityGroups: [props.network.taskSecurityGroup],
      assignPublicIp: false,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    this.scaleOnBacklogPerTask(worker, props.cluster, own.queue.queueName);
  }

  /**
   * Target tracking on backlog per task (visible messages / running tasks), the pattern AWS
   * recommends for queue workers: CPU says nothing about a worker that mostly waits on the
   * Ads API's rate limits, and raw queue depth does not shrink as tasks are added, so
   * tracking it would scale out without end. The L2 policy only takes a single metric,
   * hence the L1 policy with a metric-math expression.
   */
  private scaleOnBacklogPerTask(worker: WorkerName, cluster: ecs.ICluster, queueName: string): void {
    const deployment = workers[worker];
    const target = new appscaling.ScalableTarget(this, 'TaskCount', {
      serviceNamespace: appscaling.ServiceNamespace.ECS,
      scalableDimension: 'ecs:service:DesiredCount',
      resourceId: `service/${cluster.clusterName}/${this.service.serviceName}`,
      minCapacity: deployment.minTasks,
      maxCapacity: deployment.maxTasks,
    });
    new appscaling.CfnScalingPolicy(this, 'BacklogPerTask', {
      policyName: `${worker}-backlog-per-task`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: target.scalableTargetId,
      targetTrackingScalingPolicyConfiguration: {
        targetValue: backlogPerTaskTarget(worker),
        // Out fast when work piles up; in slowly, as every scale-in makes tasks drain.
        scaleOutCooldown: 60,
        scaleInCooldown: 300,
        customizedMetricSpecification: {
          metrics: [
            {
              id: 'visible',
              label: 'messages visible',
              returnData: false,
              metricStat: {
                metric: {
                  namespace: 'AWS/SQS',
                  metricName: 'ApproximateNumberOfMessagesVisible',
                  dimensions: [{ name: 'QueueName', value: queueName }],
                },
                stat: 'Sum',
              },
            },
            {
              id: 'tasks',
              label: 'running tasks',
              returnData: false,
              metricStat: {
                metric: {
                  namespace: 'ECS/ContainerInsights',
                  metricName: 'RunningTaskCount',
                  dimensions: [
                    { name: 'ClusterName', value: cluster.clusterName },
                    { name: 'ServiceName', value: this.service.serviceName },
                  ],
                },
                stat: 'Average',
              },
            },
            {
              id: 'backlogPerTask',
              label: 'backlog per task',
              expression: 'visible / tasks',
              returnData: true,
            },
          ],
        },
      },
    });
  }
}

/**
 * The task role's statements, derived from the worker's deployment: consume its own
 * queue, send to the queues it feeds and to its own DLQ (the chassis dead-letters poison
 * messages itself, with the reason), and put events with the fleet's source on the fleet's
 * bus. Batch APIs are authorized by these same actions (SendMessageBatch by SendMessage…).
 */
export function workerPolicyStatements(
  worker: WorkerName,
  queues: FleetQueues,
  bus: events.IEventBus,
): iam.PolicyStatement[] {
  const own = queues.byName[worker];
  const sendTargets = workers[worker].sendsTo.map((name) => queues.byName[name].queue.queueArn);
  return [
    new iam.PolicyStatement({
      sid: 'ConsumeOwnQueue',
      actions: [
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ],
      resources: [own.queue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'SendToQueues',
      actions: ['sqs:GetQueueUrl', 'sqs:SendMessage'],
      resources: [...sendTargets, own.deadLetterQueue.queueArn],
    }),
    new iam.PolicyStatement({
      sid: 'PublishFleetEvents',
      actions: ['events:PutEvents'],
      resources: [bus.eventBusArn],
      conditions: { StringEquals: { 'events:source': EVENT_SOURCE } },
    }),
  ];
}

function workerEnvironment(
  worker: WorkerName,
  settings: FleetSettings,
  region: string,
): Record<string, string> {
  const environment: Record<string, string> = {
    AWS_REGION: region,
    OTEL_EXPORTER_OTLP_ENDPOINT: COLLECTOR_OTLP_HTTP_ENDPOINT,
    OTEL_SERVICE_NAME: worker,
    LOG_LEVEL: settings.logLevel,
    ADFLEET_RESOURCE_PREFIX: settings.prefix,
    ADFLEET_CONCURRENCY: String(workers[worker].concurrency),
    ADFLEET_DRAIN_TIMEOUT_MS: String(DEFAULT_DRAIN_TIMEOUT_MS),
    ADFLEET_HEALTH_PORT: String(HEALTH_PORT),
  };
  if (worker === 'profile-sync')
    environment.ADFLEET_SYNC_FRESHNESS_SLO_HOURS = String(settings.syncFreshnessSloHours);
  if (workers[worker].usesAdsApi) {
    environment.ADFLEET_ADS_API_URL = settings.adsApiUrl;
    environment.ADFLEET_LWA_TOKEN_URL = settings.lwaTokenUrl;
  }
  return environment;
}

/**
 * Credentials come from Secrets Manager through ECS `secrets`: the execution role reads
 * them when the task starts and the task definition holds only ARNs. DATABASE_URL and
 * REDIS_URL carry passwords, so they are secrets too.
 */
function workerSecrets(worker: WorkerName, secrets: FleetSecrets): Record<string, ecs.Secret> {
  const result: Record<string, ecs.Secret> = {
    DATABASE_URL: ecs.Secret.fromSecretsManager(secrets.databaseUrl),
    REDIS_URL: ecs.Secret.fromSecretsManager(secrets.redisUrl),
  };
  if (workers[worker].usesAdsApi) {
    result.ADFLEET_ADS_CLIENT_ID = ecs.Secret.fromSecretsManager(secrets.adsApi, 'clientId');
    result.ADFLEET_ADS_CLIENT_SECRET = ecs.Secret.fromSecretsManager(secrets.adsApi, 'clientSecret');
    result.ADFLEET_ADS_REFRESH_TOKEN = ecs.Secret.fromSecretsManager(secrets.adsApi, 'refreshToken');
  }
  return result;
}
