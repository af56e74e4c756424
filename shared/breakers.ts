import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
} from 'cockatiel';
import type { Dependency } from './dependencies.ts';
import { describeError } from './errors.ts';
import type { Logger } from './logging.ts';

/**
 * One circuit breaker per dependency a worker needs (cockatiel's CircuitBreakerPolicy with
 * a ConsecutiveBreaker). Failures are outage-tagged errors the queue worker saw
 * (dependencies.ts); a handled message resets the counts. While any breaker is open the
 * worker takes no new messages and reports not-ready with the reasons; after the half-open
 * delay (exponential, 1 s → 30 s) a probe (`SELECT 1`, a queue attribute read, a token
 * exchange...) runs through the breaker, and its success closes it and polling resumes.
 */

export type Probe = () => Promise<unknown>;

export interface BreakerSettings {
  /** Consecutive outage failures that open the breaker. */
  readonly threshold: number;
}

/** How many consecutive outage errors open each dependency's breaker. */
export const BREAKER_THRESHOLDS: Readonly<Record<Dependency, number>> = {
  postgres: 3,
  redis: 3,
  sqs: 3,
  eventbridge: 3,
  // 5xx from one profile's data must not stop the fleet: it takes a run across messages.
  'ads-api': 5,
  // A refused grant fails every waiting call at once; three in a row is unambiguous.
  'ads-credentials': 3,
};

export interface OpenBreaker {
  readonly dependency: Dependency;
  readonly reason: string;
  readonly since: string;
}

interface Entry {
  readonly policy: CircuitBreakerPolicy;
  readonly probe: Probe;
  reason: string;
  since: number;
}

const PROBE_TICK_MS = 250;
/** A probe of a black-holed dependency must not hang the loop that probes the others. */
const PROBE_TIMEOUT_MS = 5_000;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} probe timed out after ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export class DependencyBreakers {
  readonly #entries = new Map<Dependency, Entry>();
  readonly #logger: Logger;
  readonly #listeners = new Set<(open: boolean) => void>();
  #timer: NodeJS.Timeout | undefined;
  #probing = false;
  /** Times a breaker opened since start (a counter for metrics). */
  opened = 0;

  constructor(probes: Partial<Record<Dependency, Probe>>, logger: Logger) {
    this.#logger = logger;
    for (const [dependency, probe] of Object.entries(probes) as Array<[Dependency, Probe]>) {
      const policy = circuitBreaker(handleAll, {
        halfOpenAfter: new ExponentialBackoff({ initialDelay: 1_000, maxDelay: 30_000 }),
        breaker: new ConsecutiveBreaker(BREAKER_THRESHOLDS[dependency]),
      });
      const entry: Entry = { policy, probe, reason: '', since: 0 };
      policy.onBreak(() => {
        this.opened += 1;
        entry.since = Date.now();
        logger.error({ dependency, reason: entry.reason }, 'dependency unavailable: circuit open');
        this.#changed();
      });
      policy.onReset(() => {
        logger.info(
          { dependency, downForMs: Date.now() - entry.since },
          'dependency available again: circuit closed',
        );
        this.#changed();
      });
      this.#entries.set(dependency, entry);
    }
  }

  get dependencies(): Dependency[] {
    return [...this.#entries.keys()];
  }

  /** An outage error of `dependency` was seen. */
  recordFailure(dependency: Dependency, error: unknown): void {
    const entry = this.#entries.get(dependency);
    if (entry === undefined || entry.policy.state !== CircuitState.Closed) return;
    entry.reason = describeError(error).slice(0, 300);
    entry.policy.execute(() => Promise.reject(error)).catch(() => {});
  }

  /** `dependency` answered; without one, a message was handled: every dependency it needed answered. */
  recordSuccess(dependency?: Dependency): void {
    const entries =
      dependency === undefined
        ? [...this.#entries.values()]
        : [this.#entries.get(dependency)].filter((e) => e !== undefined);
    for (const entry of entries) {
      if (entry.policy.state === CircuitState.Closed) entry.policy.execute(() => undefined).catch(() => {});
    }
  }

  get open(): OpenBreaker[] {
    return [...this.#entries]
      .filter(([, entry]) => entry.policy.state !== CircuitState.Closed)
      .map(([dependency, entry]) => ({
        dependency,
        reason: entry.reason,
        since: new Date(entry.since).toISOString(),
      }));
  }

  get anyOpen(): boolean {
    for (const entry of this.#entries.values()) if (entry.policy.state !== CircuitState.Closed) return true;
    return false;
  }

  /** `listener(true)` when the first breaker opens, `listener(false)` when the last closes. */
  onChange(listener: (open: boolean) => void): void {
    this.#listeners.add(listener);
  }

  /** Starts the probe loop (half-open attempts on open breakers). */
  start(): void {
    this.#timer ??= setInterval(() => void this.#probeOpen(), PROBE_TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #probeOpen() {
    if (this.#probing) return;
    this.#probing = true;
    try {
      for (const [dependency, entry] of this.#entries) {
        if (entry.policy.state !== CircuitState.Open) continue;
        try {
          // Inside the half-open delay this rejects at once without running the probe.
          await entry.policy.execute(() => withTimeout(entry.probe(), PROBE_TIMEOUT_MS, dependency));
        } catch (error) {
          if (!(error instanceof BrokenCircuitError)) {
            entry.reason = describeError(error).slice(0, 300);
            this.#logger.warn({ dependency, reason: entry.reason }, 'dependency probe failed');
          }
        }
      }
    } finally {
      this.#probing = false;
    }
  }

  #lastAnyOpen = false;
  #changed() {
    const anyOpen = this.anyOpen;
    if (anyOpen === this.#lastAnyOpen) return;
    this.#lastAnyOpen = anyOpen;
    for (const listener of this.#listeners) {
      try {
        listener(anyOpen);
      } catch (error) {
        this.#logger.warn({ err: describeError(error) }, 'breaker listener threw');
      }
    }
  }
}
