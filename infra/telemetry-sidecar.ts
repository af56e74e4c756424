import { Duration } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { TracesBackend } from './settings.ts';

/**
 * An OpenTelemetry collector (the AWS distribution, ADOT) beside each worker. The worker
 * exports OTLP/HTTP to it over the task's loopback; the collector batches, adds the ECS
 * task's resource attributes and exports to the chosen backend. Keeping the backend out of
 * the worker means switching Jaeger → Tempo → X-Ray is a context change, not an image.
 */

/** OTLP/HTTP endpoint the worker exports to: the collector on the task's own loopback. */
export const COLLECTOR_OTLP_HTTP_ENDPOINT = 'http://127.0.0.1:4318';
const HEALTH_CHECK_ENDPOINT = '127.0.0.1:13133';

export interface TracesExport {
  readonly backend: TracesBackend;
  /** OTLP/HTTP base URL for jaeger and tempo; both ingest OTLP natively. */
  readonly endpoint?: string | undefined;
  readonly region: string;
}

/**
 * The collector configuration. JSON is YAML, so the object is serialized as JSON and
 * handed over in `AOT_CONFIG_CONTENT`; no config file has to be baked into an image.
 */
export function collectorConfig(traces: TracesExport) {
  const exporterName = traces.backend === 'xray' ? 'awsxray' : 'otlphttp';
  const exporter =
    traces.backend === 'xray'
      ? { region: traces.region }
      : { endpoint: traces.endpoint, compression: 'gzip', retry_on_failure: { enabled: true } };
  return {
    extensions: { health_check: { endpoint: HEALTH_CHECK_ENDPOINT } },
    receivers: {
      // Loopback only: the task's containers share one network namespace, nothing else may send.
      otlp: { protocols: { http: { endpoint: '127.0.0.1:4318' }, grpc: { endpoint: '127.0.0.1:4317' } } },
    },
    processors: {
      // Under pressure drop spans rather than be OOM-killed next to the worker.
      memory_limiter: { check_interval: '1s', limit_percentage: 80, spike_limit_percentage: 20 },
      resourcedetection: { detectors: ['env', 'ecs'], timeout: '2s', override: false },
      batch: { timeout: '5s', send_batch_size: 512 },
    },
    exporters: { [exporterName]: exporter },
    service: {
      extensions: ['health_check'],
      pipelines: {
        traces: {
          receivers: ['otlp'],
          processors: ['memory_limiter', 'resourcedetection', 'batch'],
          exporters: [exporterName],
        },
      },
    },
  };
}

/** What the collector itself may call: X-Ray has no resource-level permissions, hence `*`. */
export function collectorPolicyStatements(traces: TracesExport): iam.PolicyStatement[] {
  if (traces.backend !== 'xray') return [];
  return [
    new iam.PolicyStatement({
      sid: 'ExportTracesToXRay',
      actions: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
      resources: ['*'],
    }),
  ];
}

export const COLLECTOR_MEMORY_MIB = 256;

export function addTelemetrySidecar(
  taskDefinition: ecs.FargateTaskDefinition,
  options: { image: string; traces: TracesExport; logGroup: logs.ILogGroup },
): ecs.ContainerDefinition {
  for (const statement of collectorPolicyStatements(options.traces)) {
    taskDefinition.addToTaskRolePolicy(statement);
  }
  return taskDefinition.addContainer('otel-collector', {
    image: ecs.ContainerImage.fromRegistry(options.image),
    // Losing traces must never stop ad work: a crashed collector does not stop the task.
    essential: false,
    memoryLimitMiB: COLLECTOR_MEMORY_MIB,
    environment: { AOT_CONFIG_CONTENT: JSON.stringify(collectorConfig(options.traces)) },
    healthCheck: {
      // ADOT ships this binary; it asks the health_check extension.
      command: ['CMD', '/healthcheck'],
      interval: Duration.seconds(30),
      timeout: Duration.seconds(5),
      retries: 3,
      startPeriod: Duration.seconds(10),
    },
    // Stopped after the worker (which depends on it), so it still gets the worker's last
    // spans; then it needs a moment to flush its batch.
    stopTimeout: Duration.seconds(10),
    logging: ecs.LogDrivers.awsLogs({ logGroup: options.logGroup, streamPrefix: 'otel-collector' }),
  });
}
