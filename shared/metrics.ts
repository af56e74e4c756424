import { METRIC_NAMES, METRICS_NAMESPACE } from '../contract/metrics.ts';
import type { Logger } from './logging.ts';
import { type HandledEvent, Outcome } from './messaging/queue-worker.ts';

/**
 * Per-worker counters, written every interval as one CloudWatch Embedded Metric Format log
 * line: on ECS the awslogs driver turns it into metrics (namespace `adfleet`, dimension
 * `Service`) that the alarms in infra/ watch, with no agent and no API calls. Locally the
 * same line is simply a summary in the log.
 */
export class WorkerMetrics {
  readonly #service: string;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  #processed = 0;
  #failed = 0;
  #deadLettered = 0;
  #deferred = 0;
  #totalMs = 0;
  readonly #gauges = new Map<string, { value: number; unit: string }>();

  constructor(service: string, logger: Logger, intervalMs = 60_000) {
    this.#service = service;
    this.#logger = logger;
    this.#timer = setInterval(() => this.flush(), intervalMs);
    this.#timer.unref();
  }

  record(event: HandledEvent): void {
    if (event.outcome === Outcome.Released) return;
    this.#processed += 1;
    this.#totalMs += event.durationMs;
    if (event.outcome !== Outcome.Succeeded) this.#failed += 1;
    if (event.outcome === Outcome.DeadLettered) this.#deadLettered += 1;
    if (event.outcome === Outcome.Deferred) this.#deferred += 1;
  }

  /** A gauge, written with the next flush (e.g. OldestProfileSyncAgeSeconds). */
  gauge(name: string, value: number, unit = 'None'): void {
    this.#gauges.set(name, { value, unit });
  }

  flush(): void {
    if (this.#processed === 0 && this.#gauges.size === 0) return;
    const counters = {
      [METRIC_NAMES.processed]: { value: this.#processed, unit: 'Count' },
      [METRIC_NAMES.failed]: { value: this.#failed, unit: 'Count' },
      [METRIC_NAMES.deadLettered]: { value: this.#deadLettered, unit: 'Count' },
      [METRIC_NAMES.deferred]: { value: this.#deferred, unit: 'Count' },
      [METRIC_NAMES.handlerDuration]: {
        value: this.#processed === 0 ? 0 : this.#totalMs / this.#processed,
        unit: 'Milliseconds',
      },
    };
    const all = { ...counters, ...Object.fromEntries(this.#gauges) };
    this.#logger.info(
      {
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [
            {
              Namespace: METRICS_NAMESPACE,
              Dimensions: [['Service']],
              Metrics: Object.entries(all).map(([Name, { unit }]) => ({ Name, Unit: unit })),
            },
          ],
        },
        Service: this.#service,
        ...Object.fromEntries(Object.entries(all).map(([name, { value }]) => [name, value])),
      },
      'metrics',
    );
    this.#processed = 0;
    this.#failed = 0;
    this.#deadLettered = 0;
    this.#deferred = 0;
    this.#totalMs = 0;
    this.#gauges.clear();
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
