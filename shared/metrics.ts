import { LocalSink, MetricsLogger, Unit } from 'aws-embedded-metrics';
import { METRIC_NAMES, METRICS_NAMESPACE } from '../contract/metrics.ts';
import { describeError } from './errors.ts';
import type { Logger } from './logging.ts';
import { type HandledEvent, Outcome } from './messaging/queue-worker.ts';

/** CloudWatch's unit names ('Seconds', 'Count', …), as the library's enum or its strings. */
export type MetricUnit = Unit | `${Unit}`;

type MetricsEnvironment = Awaited<ReturnType<ConstructorParameters<typeof MetricsLogger>[0]>>;

/**
 * Where the EMF lines go: stdout, in every environment. On ECS the awslogs driver ships
 * stdout to CloudWatch Logs, which extracts the metrics, so no agent and no API calls are
 * needed. The library's own detection would pick its agent sink (TCP to a CloudWatch agent
 * the tasks do not run) on ECS, and off AWS it would first probe the EC2 metadata endpoint.
 */
function stdoutEnvironment(service: string): MetricsEnvironment {
  const sink = new LocalSink();
  return {
    probe: async () => true,
    getName: () => service,
    getType: () => 'AWS::ECS::Container',
    getLogGroupName: () => '',
    configureContext: () => {},
    getSink: () => sink,
  };
}

/**
 * Per-worker counters, written every interval as Embedded Metric Format by
 * aws-embedded-metrics (which keeps to CloudWatch's limits: 100 metrics per line, 30
 * dimensions, the unit vocabulary): namespace `adfleet`, one dimension `Service`, the names
 * in contract/metrics.ts that the alarms in infra/ watch. Locally the same line is simply a
 * summary in the log.
 */
export class WorkerMetrics {
  readonly #service: string;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  readonly #emf: MetricsLogger;
  #processed = 0;
  #failed = 0;
  #deadLettered = 0;
  #deferred = 0;
  #released = 0;
  #sendFailures = 0;
  #totalMs = 0;
  #dependenciesUnavailable: () => number = () => 0;
  #watching = false;
  readonly #gauges = new Map<string, { value: number; unit: MetricUnit }>();

  constructor(service: string, logger: Logger, intervalMs = 60_000) {
    this.#service = service;
    this.#logger = logger;
    const environment = stdoutEnvironment(service);
    this.#emf = new MetricsLogger(async () => environment);
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  record(event: HandledEvent): void {
    if (event.outcome === Outcome.Released) {
      this.#released += 1;
      return;
    }
    if (event.outcome === Outcome.SendFailed) this.#sendFailures += 1;
    this.#processed += 1;
    this.#totalMs += event.durationMs;
    if (event.outcome !== Outcome.Succeeded) this.#failed += 1;
    if (event.outcome === Outcome.DeadLettered) this.#deadLettered += 1;
    if (event.outcome === Outcome.Deferred) this.#deferred += 1;
  }

  /**
   * How many dependencies are down, read at every flush: the line then goes out every
   * interval, idle or not, so the alarm sees an outage of a worker that receives nothing.
   */
  watchDependencies(read: () => number): void {
    this.#dependenciesUnavailable = read;
    this.#watching = true;
  }

  /** A gauge, written with the next flush (e.g. OldestProfileSyncAgeSeconds). */
  gauge(name: string, value: number, unit: MetricUnit = Unit.None): void {
    this.#gauges.set(name, { value, unit });
  }

  /** Writes what was counted since the last flush as one EMF line, then starts counting anew. */
  async flush(): Promise<void> {
    const unavailable = this.#dependenciesUnavailable();
    if (
      this.#processed === 0 &&
      this.#released === 0 &&
      this.#gauges.size === 0 &&
      unavailable === 0 &&
      !this.#watching
    )
      return;
    const emf = this.#emf;
    emf.setNamespace(METRICS_NAMESPACE);
    // Only `Service`: the library's defaults (LogGroup, ServiceName, ServiceType) would make
    // metrics the alarms, which name Service alone, never see.
    emf.setDimensions({ Service: this.#service }, false);
    emf.setTimestamp(new Date());
    emf.putMetric(METRIC_NAMES.processed, this.#processed, Unit.Count);
    emf.putMetric(METRIC_NAMES.failed, this.#failed, Unit.Count);
    emf.putMetric(METRIC_NAMES.deadLettered, this.#deadLettered, Unit.Count);
    emf.putMetric(METRIC_NAMES.deferred, this.#deferred, Unit.Count);
    emf.putMetric(METRIC_NAMES.released, this.#released, Unit.Count);
    emf.putMetric(METRIC_NAMES.sendFailures, this.#sendFailures, Unit.Count);
    emf.putMetric(METRIC_NAMES.dependenciesUnavailable, unavailable, Unit.Count);
    emf.putMetric(
      METRIC_NAMES.handlerDuration,
      this.#processed === 0 ? 0 : this.#totalMs / this.#processed,
      Unit.Milliseconds,
    );
    for (const [name, { value, unit }] of this.#gauges) emf.putMetric(name, value, unit);
    this.#processed = 0;
    this.#failed = 0;
    this.#deadLettered = 0;
    this.#deferred = 0;
    this.#released = 0;
    this.#sendFailures = 0;
    this.#totalMs = 0;
    this.#gauges.clear();
    try {
      await emf.flush();
    } catch (error) {
      this.#logger.warn({ err: describeError(error) }, 'metrics flush failed');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
