import { CfnOutput, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { resourceNames } from '../contract/topology.ts';
import { FleetAlarms } from './alarms.ts';
import { CreatedDataStores, type DataStoreSecrets, referencedDataStores } from './data-stores.ts';
import { FleetEvents } from './events.ts';
import { FleetNetwork } from './network.ts';
import { FleetQueues } from './queues.ts';
import { WorkerService } from './service.ts';
import type { FleetSettings } from './settings.ts';
import { WORKER_NAMES, type WorkerName } from './workers.ts';

export interface FleetStackProps extends StackProps {
  readonly settings: FleetSettings;
  /** The repository root: the Docker build context when no `imageUri` is given. */
  readonly repoRoot: string;
}

/**
 * The whole fleet in one stack: the topology (queues, DLQs, bus, rules, schedule), one
 * ECS cluster with one Fargate service per worker from one image, and the SLO alarms.
 */
export class FleetStack extends Stack {
  readonly queues: FleetQueues;
  readonly events: FleetEvents;
  readonly services: Readonly<Record<WorkerName, WorkerService>>;
  readonly alarms: FleetAlarms;
  readonly cluster: ecs.Cluster;

  constructor(scope: Construct, id: string, props: FleetStackProps) {
    super(scope, id, {
      description: 'adfleet: Amazon Ads worker fleet on ECS Fargate, SQS and EventBridge',
      ...props,
    });
    const { settings } = props;
    Tags.of(this).add('application', 'adfleet');
    const names = resourceNames(settings.prefix);

    this.queues = new FleetQueues(this, 'Queues', names);
    this.events = new FleetEvents(this, 'Events', names, this.queues);

    const network = new FleetNetwork(this, 'Network', settings.vpcId);
    const dataStores: DataStoreSecrets =
      settings.dataStores === 'create'
        ? new CreatedDataStores(this, 'DataStores', settings.prefix, network)
        : referencedDataStores(this, {
            databaseUrlSecretArn: required(settings.databaseUrlSecretArn),
            redisUrlSecretArn: required(settings.redisUrlSecretArn),
          });
    const secrets = {
      ...dataStores,
      adsApi: secretsmanager.Secret.fromSecretCompleteArn(this, 'AdsApiSecret', settings.adsApiSecretArn),
    };

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      clusterName: settings.prefix,
      vpc: network.vpc,
      containerInsightsV2: settings.containerInsights
        ? ecs.ContainerInsights.ENABLED
        : ecs.ContainerInsights.DISABLED,
    });

    const image = workerImage(this, settings.imageUri, props.repoRoot);
    const traces = {
      backend: settings.tracesBackend,
      endpoint: settings.tracesEndpoint,
      region: this.region,
    };
    const services = {} as Record<WorkerName, WorkerService>;
    for (const worker of WORKER_NAMES) {
      services[worker] = new WorkerService(this, worker, {
        worker,
        settings,
        cluster: this.cluster,
        network,
        image,
        queues: this.queues,
        bus: this.events.bus,
        secrets,
        traces,
      });
    }
    this.services = services;

    this.alarms = new FleetAlarms(this, 'Alarms', {
      names,
      queues: this.queues,
      alarmEmail: settings.alarmEmail,
      syncFreshnessSloHours: settings.syncFreshnessSloHours,
    });

    new CfnOutput(this, 'ClusterName', { value: this.cluster.clusterName });
    new CfnOutput(this, 'EventBusName', { value: this.events.bus.eventBusName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn });
    new CfnOutput(this, 'TaskSecurityGroupId', {
      value: network.taskSecurityGroup.securityGroupId,
      description: 'Allow this group into existing Postgres and Redis security groups',
    });
  }
}

function required(value: string | undefined): string {
  // readSettings has already reported a missing value; this only narrows the type.
  if (value === undefined) throw new Error('missing setting (readSettings should have reported it)');
  return value;
}

const ECR_IMAGE_URI =
  /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)(?::([^@]+))?(?:@(sha256:[a-f0-9]{64}))?$/;

/**
 * One image for every worker (the command picks the worker). A pushed image URI wins; for
 * a private ECR image the execution role is granted pull on that repository only. Without
 * one, the repo's Dockerfile is built and pushed by `cdk deploy` (synth only stages the
 * context, so synth needs no Docker).
 */
function workerImage(scope: Construct, imageUri: string | undefined, repoRoot: string): ecs.ContainerImage {
  if (imageUri === undefined) {
    const asset = new DockerImageAsset(scope, 'WorkerImage', {
      directory: repoRoot,
      platform: Platform.LINUX_AMD64,
    });
    return ecs.ContainerImage.fromDockerImageAsset(asset);
  }
  const ecrImage = ECR_IMAGE_URI.exec(imageUri);
  if (ecrImage === null) return ecs.ContainerImage.fromRegistry(imageUri);
  const [, account, region, repositoryName, tag, digest] = ecrImage;
  const repository = ecr.Repository.fromRepositoryAttributes(scope, 'WorkerRepository', {
    repositoryName: repositoryName ?? '',
    repositoryArn: `arn:aws:ecr:${region}:${account}:repository/${repositoryName}`,
  });
  return ecs.ContainerImage.fromEcrRepository(repository, digest ?? tag ?? 'latest');
}
