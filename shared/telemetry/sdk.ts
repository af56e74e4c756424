import { DiagLogLevel, diag } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { AwsInstrumentation } from '@opentelemetry/instrumentation-aws-sdk';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

export interface Telemetry {
  readonly enabled: boolean;
  /** Exports what is buffered and stops; safe to call more than once. */
  shutdown(): Promise<void>;
}

/** The service name: OTEL_SERVICE_NAME, else the worker directory the process was started from. */
export function serviceNameFromProcess(argv: readonly string[] = process.argv): string {
  const fromEnv = process.env.OTEL_SERVICE_NAME;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const script = argv[1] ?? '';
  const match = /workers[/\\]([a-z-]+)[/\\]main\.ts$/.exec(script);
  return match?.[1] !== undefined ? `adfleet-${match[1]}` : 'adfleet';
}

/**
 * Starts the OpenTelemetry SDK: OTLP/HTTP traces to OTEL_EXPORTER_OTLP_ENDPOINT, W3C trace
 * context, and the instrumentations the fleet relies on. With no endpoint configured (or
 * OTEL_SDK_DISABLED=true) nothing is started and spans are no-ops.
 *
 * Not instrumented on purpose: node:http. The fleet's only HTTP client on it is the AWS SDK,
 * whose calls already have their span (the http one below it is suppressed), and the only
 * server is the health endpoint, where a trace per ECS health check would bury the real ones.
 * The instrumentation still parsed, wrapped and injected into every SQS request under that
 * suppression: 0.2–0.25 CPU ms of the consumer's ~2.2 per message (bench/queue-worker.ts).
 * Ads API and LWA calls go through fetch, which UndiciInstrumentation traces.
 *
 * Not instrumented on purpose either: pino. Trace ids reach log lines through the logger's own
 * mixin (shared/logging.ts), which works whether or not a module went through the hook.
 */
export function startTelemetry(): Telemetry {
  const disabled = process.env.OTEL_SDK_DISABLED === 'true';
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (disabled || endpoint === undefined || endpoint === '') {
    return { enabled: false, shutdown: async () => {} };
  }
  // Traces only: the fleet's metrics go out as EMF log lines (shared/metrics.ts), and
  // Jaeger accepts no OTLP metrics or logs.
  process.env.OTEL_METRICS_EXPORTER ??= 'none';
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  diag.setLogger(
    { error: console.error, warn: console.warn, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceNameFromProcess() }),
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT and appends /v1/traces.
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter(),
        scheduledDelayMillis: 1_000,
        maxQueueSize: 8_192,
      }),
    ],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [
      new AwsInstrumentation({ suppressInternalInstrumentation: true }),
      // A trace shows the queries, not the pool: a connect span per checkout outnumbered the
      // queries of a backfill trace (445 of 1,937 spans). Pool waits still show as the gap
      // before a query span.
      new PgInstrumentation({ requireParentSpan: true, ignoreConnectSpans: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
      new UndiciInstrumentation({ requireParentforSpans: true }),
    ],
  });
  sdk.start();
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown() {
      stopping ??= sdk.shutdown().catch((error: unknown) => {
        console.error('telemetry shutdown failed', error);
      });
      return stopping;
    },
  };
}
