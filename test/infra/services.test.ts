import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DRAIN_TIMEOUT_MS, loadConfig } from '../../contract/config.ts';
import { resourceNames } from '../../contract/topology.ts';
import { healthCheckCommand } from '../../infra/service.ts';
import { collectorConfig } from '../../infra/telemetry-sidecar.ts';
import {
  backlogPerTaskTarget,
  STOP_TIMEOUT_SECONDS,
  WORKER_NAMES,
  type WorkerName,
  workers,
} from '../../infra/workers.ts';
import { freePort } from '../support/tcp-proxy.ts';
import {
  onlyResource,
  queueIdByName,
  referencedId,
  resourcesOf,
  SECRET_ARNS,
  synthesizeFleet,
  taskDefinitionOf,
} from './fleet-template.ts';

const names = resourceNames('adfleet');

interface ContainerDefinition {
  Name: string;
  Image: unknown;
  Command?: string[];
  Essential?: boolean;
  Environment?: { Name: string; Value: unknown }[];
  Secrets?: { Name: string; ValueFrom: string }[];
  HealthCheck?: { Command: string[] };
  StopTimeout?: number;
  DependsOn?: { ContainerName: string; Condition: string }[];
  ReadonlyRootFilesystem?: boolean;
  LinuxParameters?: { InitProcessEnabled?: boolean };
  MountPoints?: { ContainerPath: string; SourceVolume: string }[];
  PortMappings?: unknown[];
}

let template: Template;
beforeAll(() => {
  ({ template } = synthesizeFleet());
});

function containers(t: Template, worker: WorkerName): ContainerDefinition[] {
  return taskDefinitionOf(t, worker)[1].Properties.ContainerDefinitions as ContainerDefinition[];
}
function container(t: Template, worker: WorkerName, name: string): ContainerDefinition {
  const found = containers(t, worker).find((c) => c.Name === name);
  if (found === undefined) throw new Error(`${worker} has no container ${name}`);
  return found;
}
function environmentOf(definition: ContainerDefinition): Record<string, unknown> {
  return Object.fromEntries((definition.Environment ?? []).map((entry) => [entry.Name, entry.Value]));
}
function serviceOf(t: Template, worker: WorkerName) {
  const [taskId] = taskDefinitionOf(t, worker);
  return onlyResource(t, 'AWS::ECS::Service', (p) => referencedId(p.TaskDefinition) === taskId);
}

describe('cluster and services', () => {
  it('is one cluster, with Container Insights (the source of RunningTaskCount)', () => {
    template.resourceCountIs('AWS::ECS::Cluster', 1);
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterName: 'adfleet',
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('runs one Fargate service per worker, all from the one image', () => {
    template.resourceCountIs('AWS::ECS::Service', WORKER_NAMES.length);
    const images = new Set<string>();
    for (const worker of WORKER_NAMES) {
      const [, service] = serviceOf(template, worker);
      expect(service.Properties.LaunchType).toBe('FARGATE');
      const worker_ = container(template, worker, 'worker');
      images.add(JSON.stringify(worker_.Image));
      expect(worker_.Command).toEqual(['node', `workers/${worker}/main.ts`]);
    }
    expect(images.size).toBe(1);
    expect(JSON.stringify([...images][0])).toContain('adfleet:0123abc');
  });

  it.each(WORKER_NAMES)(
    '%s runs privately: no public IP, no inbound port, circuit breaker with rollback',
    (worker) => {
      const [, service] = serviceOf(template, worker);
      expect(service.Properties).toMatchObject({
        NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
        DeploymentConfiguration: {
          DeploymentCircuitBreaker: { Enable: true, Rollback: true },
          MinimumHealthyPercent: 100,
          MaximumPercent: 200,
        },
      });
      // Autoscaling owns the task count; a deploy must not reset it.
      expect(service.Properties.DesiredCount).toBeUndefined();
      for (const definition of containers(template, worker)) expect(definition.PortMappings).toBeUndefined();
      const [, securityGroup] = onlyResource(template, 'AWS::EC2::SecurityGroup', (p) =>
        String(p.GroupDescription).startsWith('adfleet worker tasks'),
      );
      expect(securityGroup.Properties.SecurityGroupIngress).toBeUndefined();
    },
  );
});

describe('worker container', () => {
  it.each(WORKER_NAMES)(
    '%s gets a stop timeout longer than its drain deadline, within Fargate’s 120 s',
    (worker) => {
      const definition = container(template, worker, 'worker');
      expect(environmentOf(definition).ADFLEET_DRAIN_TIMEOUT_MS).toBe(String(DEFAULT_DRAIN_TIMEOUT_MS));
      expect(definition.StopTimeout).toBe(STOP_TIMEOUT_SECONDS);
      expect((definition.StopTimeout ?? 0) * 1000).toBeGreaterThan(DEFAULT_DRAIN_TIMEOUT_MS);
      expect(definition.StopTimeout).toBeLessThanOrEqual(120);
    },
  );

  it.each(WORKER_NAMES)(
    '%s takes every credential from Secrets Manager, none from plain environment',
    (worker) => {
      const definition = container(template, worker, 'worker');
      const secretNames = (definition.Secrets ?? []).map((secret) => secret.Name).sort();
      const expected = ['DATABASE_URL', 'REDIS_URL'];
      if (workers[worker].usesAdsApi) {
        expected.push('ADFLEET_ADS_CLIENT_ID', 'ADFLEET_ADS_CLIENT_SECRET', 'ADFLEET_ADS_REFRESH_TOKEN');
      }
      expect(secretNames).toEqual(expected.sort());
      const environment = environmentOf(definition);
      for (const name of expected) expect(environment).not.toHaveProperty(name);
      const valueFrom = Object.fromEntries((definition.Secrets ?? []).map((s) => [s.Name, s.ValueFrom]));
      expect(valueFrom.DATABASE_URL).toBe(SECRET_ARNS.databaseUrlSecretArn);
      expect(valueFrom.REDIS_URL).toBe(SECRET_ARNS.redisUrlSecretArn);
      if (workers[worker].usesAdsApi) {
        // ECS's `arn:json-key:version-stage:version-id` form picks one field of the JSON secret.
        expect(valueFrom.ADFLEET_ADS_CLIENT_ID).toBe(`${SECRET_ARNS.adsApiSecretArn}:clientId::`);
        expect(valueFrom.ADFLEET_ADS_CLIENT_SECRET).toBe(`${SECRET_ARNS.adsApiSecretArn}:clientSecret::`);
        expect(valueFrom.ADFLEET_ADS_REFRESH_TOKEN).toBe(`${SECRET_ARNS.adsApiSecretArn}:refreshToken::`);
      }
      // No secret value can be hiding anywhere in the task definition as plain text.
      const taskDefinition = JSON.stringify(taskDefinitionOf(template, worker)[1]);
      expect(taskDefinition).not.toMatch(/postgres(ql)?:\/\/|rediss?:\/\//);
    },
  );

  it.each(WORKER_NAMES)('%s gets an environment the fleet’s own config parser accepts', (worker) => {
    const definition = container(template, worker, 'worker');
    const environment: Record<string, string> = {};
    for (const [name, value] of Object.entries(environmentOf(definition))) {
      // The only token is the stack's region.
      environment[name] = typeof value === 'string' ? value : 'eu-west-1';
    }
    // Secrets are injected by ECS at start: a stand-in for each one the container declares
    // (the Ads credentials only where the worker calls the Ads API), URLs of the right shape.
    for (const { Name } of definition.Secrets ?? []) environment[Name] = `stand-in-${Name.toLowerCase()}`;
    environment.DATABASE_URL = 'postgres://adfleet:pw@db.internal:5432/adfleet';
    environment.REDIS_URL = 'rediss://:token@redis.internal:6379';
    const config = loadConfig(environment);
    expect(config.ADFLEET_RESOURCE_PREFIX).toBe('adfleet');
    expect(config.ADFLEET_HEALTH_PORT).toBeGreaterThan(0);
    expect(config.ADFLEET_CONCURRENCY).toBe(workers[worker].concurrency);
    expect(config.OTEL_SERVICE_NAME).toBe(worker);
    expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://127.0.0.1:4318');
    if (workers[worker].usesAdsApi) {
      expect(config.ADFLEET_ADS_API_URL).toBe('https://advertising-api.amazon.com');
      expect(config.ADFLEET_LWA_TOKEN_URL).toBe('https://api.amazon.com/auth/o2/token');
    }
  });

  it.each(WORKER_NAMES)(
    '%s is hardened: read-only root with a /tmp volume, init process for signals',
    (worker) => {
      const definition = container(template, worker, 'worker');
      expect(definition.ReadonlyRootFilesystem).toBe(true);
      expect(definition.LinuxParameters?.InitProcessEnabled).toBe(true);
      expect(definition.MountPoints).toEqual([
        { ContainerPath: '/tmp', ReadOnly: false, SourceVolume: 'tmp' },
      ]);
      const port = environmentOf(definition).ADFLEET_HEALTH_PORT;
      expect(definition.HealthCheck?.Command).toEqual(healthCheckCommand(Number(port)));
    },
  );
});

describe('health check command', () => {
  let server: Server;
  let status = 200;
  let port = 0;
  const paths: string[] = [];
  beforeAll(async () => {
    server = createServer((request, response) => {
      paths.push(request.url ?? '');
      response.writeHead(status).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Runs the check exactly as the container would (`CMD node -e …`), with this machine's Node 24. */
  function runCheck(onPort: number): Promise<number | null> {
    const [, command, ...args] = healthCheckCommand(onPort);
    return new Promise((resolve) => {
      const child = execFile(command ?? 'node', args, { timeout: 10_000 });
      child.on('exit', (code) => resolve(code));
    });
  }

  it('passes on 200 from /healthz, fails on 503 and when nothing listens', async () => {
    status = 200;
    expect(await runCheck(port)).toBe(0);
    status = 503;
    expect(await runCheck(port)).toBe(1);
    expect(await runCheck(await freePort())).toBe(1);
    expect(paths).toEqual(['/healthz', '/healthz']);
  });
});

describe('OpenTelemetry collector sidecar', () => {
  function collectorConfigOf(t: Template, worker: WorkerName) {
    const sidecar = container(t, worker, 'otel-collector');
    const raw = environmentOf(sidecar).AOT_CONFIG_CONTENT;
    // With X-Ray the region is a token: join the template's pieces with a stand-in.
    const text =
      typeof raw === 'string'
        ? raw
        : ((raw as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1] ?? [])
            .map((part) => (typeof part === 'string' ? part : 'eu-west-1'))
            .join('');
    return JSON.parse(text);
  }

  it.each(WORKER_NAMES)(
    '%s: runs beside the worker, which starts after it and so stops before it',
    (worker) => {
      const sidecar = container(template, worker, 'otel-collector');
      expect(sidecar.Essential).toBe(false);
      expect(sidecar.HealthCheck?.Command).toEqual(['CMD', '/healthcheck']);
      expect(container(template, worker, 'worker').DependsOn).toEqual([
        { ContainerName: 'otel-collector', Condition: 'START' },
      ]);
      const config = collectorConfigOf(template, worker);
      expect(config.receivers.otlp.protocols.http.endpoint).toBe('127.0.0.1:4318');
      expect(config.service.pipelines.traces).toEqual({
        receivers: ['otlp'],
        processors: ['memory_limiter', 'resourcedetection', 'batch'],
        exporters: ['awsxray'],
      });
      expect(config.exporters).toEqual({ awsxray: { region: 'eu-west-1' } });
    },
  );

  it.each(['jaeger', 'tempo'] as const)(
    'exports over OTLP/HTTP to the configured endpoint for %s',
    (backend) => {
      // The same function renders AOT_CONFIG_CONTENT above; task-roles.test.ts synthesizes the
      // Jaeger variant and proves the X-Ray permission is gone there.
      const config = collectorConfig({
        backend,
        endpoint: 'https://traces.internal:4318',
        region: 'eu-west-1',
      });
      expect(Object.keys(config.exporters)).toEqual(['otlphttp']);
      expect(config.exporters.otlphttp).toMatchObject({ endpoint: 'https://traces.internal:4318' });
      expect(config.service.pipelines.traces.exporters).toEqual(['otlphttp']);
    },
  );
});

describe('autoscaling on backlog per task', () => {
  it.each(WORKER_NAMES)(
    '%s scales between its minimum and maximum on visible messages / running tasks',
    (worker) => {
      const [serviceId, service] = serviceOf(template, worker);
      const [, scalableTarget] = onlyResource(template, 'AWS::ApplicationAutoScaling::ScalableTarget', (p) =>
        JSON.stringify(p.ResourceId).includes(`"${serviceId}"`),
      );
      expect(scalableTarget.Properties).toMatchObject({
        MinCapacity: workers[worker].minTasks,
        MaxCapacity: workers[worker].maxTasks,
        ScalableDimension: 'ecs:service:DesiredCount',
        ServiceNamespace: 'ecs',
      });
      expect(workers[worker].minTasks).toBeGreaterThanOrEqual(1);
      expect(workers[worker].maxTasks).toBeGreaterThan(workers[worker].minTasks);

      const [, policy] = onlyResource(
        template,
        'AWS::ApplicationAutoScaling::ScalingPolicy',
        (p) => p.PolicyName === `${worker}-backlog-per-task`,
      );
      const configuration = policy.Properties.TargetTrackingScalingPolicyConfiguration as {
        TargetValue: number;
        CustomizedMetricSpecification: { Metrics: Record<string, unknown>[] };
      };
      expect(policy.Properties.PolicyType).toBe('TargetTrackingScaling');
      expect(configuration.TargetValue).toBe(backlogPerTaskTarget(worker));
      const queueId = queueIdByName(template, names.queue(worker));
      const [clusterId] = onlyResource(template, 'AWS::ECS::Cluster', () => true);
      const serviceName = { 'Fn::GetAtt': [serviceId, 'Name'] };
      expect(service.Properties.LaunchType).toBe('FARGATE');
      expect(configuration.CustomizedMetricSpecification.Metrics).toEqual([
        expect.objectContaining({
          Id: 'visible',
          ReturnData: false,
          MetricStat: {
            Metric: {
              Namespace: 'AWS/SQS',
              MetricName: 'ApproximateNumberOfMessagesVisible',
              Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
            },
            Stat: 'Sum',
          },
        }),
        expect.objectContaining({
          Id: 'tasks',
          ReturnData: false,
          MetricStat: {
            Metric: {
              Namespace: 'ECS/ContainerInsights',
              MetricName: 'RunningTaskCount',
              Dimensions: [
                { Name: 'ClusterName', Value: { Ref: clusterId } },
                { Name: 'ServiceName', Value: serviceName },
              ],
            },
            Stat: 'Average',
          },
        }),
        expect.objectContaining({ Id: 'backlogPerTask', Expression: 'visible / tasks', ReturnData: true }),
      ]);
    },
  );

  it('sets targets from the queue freshness objective: half the max age, at the workers’ pace', () => {
    // profile-sync: 1800 s / 30 s per message × 20 at once; bulk-item: 450 / 2 × 20; backfill: 450 / 5 × 4.
    expect(WORKER_NAMES.map((worker) => [worker, backlogPerTaskTarget(worker)])).toEqual([
      ['profile-sync', 1200],
      ['bulk-item', 4500],
      ['backfill-chunk', 360],
    ]);
  });

  it('has one scalable target and one policy per service, nothing else', () => {
    expect(Object.keys(resourcesOf(template, 'AWS::ApplicationAutoScaling::ScalableTarget'))).toHaveLength(3);
    expect(Object.keys(resourcesOf(template, 'AWS::ApplicationAutoScaling::ScalingPolicy'))).toHaveLength(3);
  });
});
