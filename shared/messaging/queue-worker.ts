import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { Consumer } from 'sqs-consumer';
import { type BackoffPolicy, backoffDelayMs, MESSAGE_RETRY_BACKOFF } from '../backoff.ts';
import type { DependencyBreakers } from '../breakers.ts';
import { Dependency, isAwsOutage } from '../dependencies.ts';
import { type Classification, classifyError, describeError, ErrorKind, RetryableError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { type IncomingMessage, parseIncoming } from './envelope.ts';
import type { QueueProducer } from './producer.ts';
import { Semaphore } from './semaphore.ts';
import { carrierToAttributes, currentCarrier, extractContext, FLEET_ATTRIBUTES } from './trace-context.ts';

/**
 * One queue's consumer: N sqs-consumer pollers feeding a bounded pool of handlers, one
 * CONSUMER span per message, and the fleet's delivery rules.
 *
 * What happens to a message (the only place these rules live):
 *
 *   handler resolves                      → deleted (acknowledged)
 *   RetryableError / unknown error        → visibility set to a capped, jittered backoff;
 *                                           SQS delivers it again (receive count + 1).
 *                                           On the last receive the DLQ budget allows, it
 *                                           is dead-lettered by us instead, with the reason.
 *   handler deadline passed (per type)    → its signal aborts and it is treated as a
 *                                           RetryableError: counted against the budget like
 *                                           any per-message failure, never heartbeated forever.
 *   ThrottledError (retry after N ms)     → re-sent as a NEW message with DelaySeconds and
 *                                           a deferral counter, then the original deleted.
 *                                           A new message starts at receive count 0, so
 *                                           rate limiting never spends the DLQ budget.
 *   a dependency is down (an outage-      → RELEASED: re-sent as a new message with a delay
 *     tagged error, dependencies.ts)        (5 s doubling to 2 min) and a release counter,
 *                                           then the original deleted — so an outage of any
 *                                           length spends no receive. The dependency's
 *                                           circuit breaker counts it (shared/breakers.ts).
 *   FatalError / invalid / unknown type   → copied to the DLQ with the reason in an
 *                                           attribute, then deleted; no retries.
 *
 * Outages: while any dependency's breaker is open the pollers stop (nothing new is
 * received, so nothing spends a receive), messages waiting for a handler slot are released
 * as above, /readyz says which dependency is down and why, and polling resumes by itself
 * once the breaker's half-open probe succeeds.
 *
 * Draining (stop): pollers stop at once; messages waiting for a handler slot are released
 * (re-sent, original deleted: a drain spends no receive either; the copy is delayed by the
 * long-poll wait + 1 s so this worker's last poll cannot take it again); running
 * handlers get until the drain deadline, then their AbortSignal fires and their messages
 * are released the same way.
 *
 * A release is a send: when the send itself fails (SQS is what is down) the message's
 * visibility is set instead, and that one comes back with its receive count + 1. After
 * `maxReleases` releases a message is dead-lettered with the reason, so a message that
 * only ever fails as an "outage" cannot circulate forever.
 *
 * Sends come before deletes throughout: a crash in between duplicates a message (handlers
 * are idempotent) and never loses one. A DLQ, deferral or release send that fails is
 * counted (outcome send-failed, alarmed) and the message left to come back.
 */

export interface MessageInfo {
  readonly id: string;
  readonly type: string;
  readonly origin: IncomingMessage['origin'];
  readonly receiveCount: number;
  readonly deferrals: number;
  /** Times the message was released by an outage or a drain (re-sent, so receive count 0). */
  readonly releases: number;
  readonly queue: string;
  readonly eventId?: string;
}

/** What the worker hands each message to: validate, then run the type's handler. */
export type Dispatch = (
  message: IncomingMessage,
  info: MessageInfo,
  signal: AbortSignal,
  logger: Logger,
) => Promise<void>;

export const Outcome = {
  Succeeded: 'succeeded',
  Retried: 'retried',
  Deferred: 'deferred',
  DeadLettered: 'dead-lettered',
  /** Put back without spending its budget: a drain, or a dependency outage. */
  Released: 'released',
  /** A DLQ, deferral or release send failed; the message comes back when its visibility ends. */
  SendFailed: 'send-failed',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export interface HandledEvent {
  readonly outcome: Outcome;
  readonly type: string;
  readonly durationMs: number;
  readonly error?: Classification;
  /** The handler ran past its type's deadline. */
  readonly deadlineExceeded?: boolean;
}

/** The handler ran past its message type's deadline. */
export class HandlerDeadlineError extends RetryableError {
  override readonly name = 'HandlerDeadlineError';
}

export interface QueueWorkerOptions {
  /** Physical queue name, for spans and logs. */
  readonly queueName: string;
  readonly queueUrl: string;
  readonly deadLetterQueueUrl: string;
  readonly sqs: SQSClient;
  readonly producer: QueueProducer;
  readonly dispatch: Dispatch;
  readonly logger: Logger;
  /** Handlers running at once. @defaultValue 10 */
  readonly concurrency?: number;
  /** The queue's visibility timeout; extended by a heartbeat while a handler runs. */
  readonly visibilityTimeoutSeconds: number;
  /** The queue's redrive maxReceiveCount: the last receive is dead-lettered by us, with a reason. */
  readonly maxReceiveCount: number;
  /** @defaultValue 20 */
  readonly waitTimeSeconds?: number;
  /** @defaultValue MESSAGE_RETRY_BACKOFF */
  readonly backoff?: BackoffPolicy;
  /** Deferrals after which a throttled message is dead-lettered after all. @defaultValue 500 */
  readonly maxDeferrals?: number;
  /** The worker's dependencies: outage errors feed them, an open one pauses polling. */
  readonly breakers?: DependencyBreakers;
  /** Per message type: how long its handler may run. Undefined: no deadline. */
  readonly handlerDeadlineMs?: (type: string) => number | undefined;
  /** Releases after which a message is dead-lettered after all. @defaultValue 100 */
  readonly maxReleases?: number;
  /** Called after each message; a listener that throws is logged, never rethrown. */
  readonly onHandled?: (event: HandledEvent) => void;
}

const MAX_SQS_DELAY_SECONDS = 900;
const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;
/** Delay of a message released by an outage: the n-th release waits about 5 s · 2^(n-1), at most 2 min. */
export const OUTAGE_RELEASE_BACKOFF = { baseMs: 5_000, capMs: 120_000, minMs: 2_000 } as const;

/**
 * The longest a message released for its `releases + 1`-th outage can stay away: the top of
 * its backoff window. A handler that hands its work back to the ledger marks it due no
 * sooner, so that nothing sweeping the ledger for stranded work sends it again meanwhile.
 */
export function outageReleaseCeilingMs(releases: number): number {
  return Math.ceil(backoffDelayMs(releases + 1, OUTAGE_RELEASE_BACKOFF, () => 1) / 1000) * 1000;
}
const tracer = trace.getTracer('adfleet.messaging');

interface InFlight {
  readonly message: Message;
  readonly abort: AbortController;
  /** Ends the message's processing early at the drain deadline: released, not deleted. */
  readonly release: () => void;
  /** Resolves when the message's processing (and its release, if any) is over. */
  readonly settled: Promise<void>;
}

export class QueueWorker {
  readonly #options: QueueWorkerOptions;
  readonly #consumers: Consumer[] = [];
  readonly #slots: Semaphore;
  readonly #inFlight = new Set<InFlight>();
  #draining = false;
  /** An open breaker stopped the pollers. */
  #paused = false;
  /** Releases in progress (drain waits for them: an unsent release hides a message for a whole visibility timeout). */
  readonly #releasing = new Set<Promise<void>>();
  #stopping: Promise<void> | undefined;
  #lastReceiveAt = 0;
  #consecutiveReceiveErrors = 0;

  constructor(options: QueueWorkerOptions) {
    this.#options = options;
    const concurrency = options.concurrency ?? 10;
    this.#slots = new Semaphore(concurrency);
    // sqs-consumer runs each received batch in lockstep; several pollers keep more than
    // one batch in flight, and the semaphore bounds the handlers actually running. One
    // poller more than the slots need prefetches a batch, so a slot that frees up never
    // waits for a receive round trip (its messages' visibility is kept by the heartbeat).
    const batchSize = Math.min(10, concurrency);
    const pollers = Math.ceil(concurrency / batchSize) + 1;
    for (let index = 0; index < pollers; index += 1) this.#consumers.push(this.#createConsumer(batchSize));
    options.breakers?.onChange((open) => (open ? this.#pause() : this.#resume()));
  }

  get running(): boolean {
    return this.#consumers.some((consumer) => consumer.status.isRunning);
  }

  /** Ready: polling, no dependency down, and the last receive (or the start) was recent and succeeded. */
  get ready(): boolean {
    return this.notReadyReasons().length === 0;
  }

  /** Why the worker is not ready; empty when it is. */
  notReadyReasons(): string[] {
    const reasons: string[] = [];
    for (const open of this.#options.breakers?.open ?? []) {
      reasons.push(`${open.dependency} unavailable since ${open.since}: ${open.reason}`);
    }
    if (this.#draining) reasons.push('draining');
    else if (!this.#paused) {
      const waitMs = (this.#options.waitTimeSeconds ?? 20) * 1000;
      if (!this.running) reasons.push('not polling');
      else if (this.#consecutiveReceiveErrors > 0)
        reasons.push(`receiving from SQS failed ${this.#consecutiveReceiveErrors} times`);
      else if (Date.now() - this.#lastReceiveAt >= waitMs + 30_000) reasons.push('no receive for too long');
    }
    return reasons;
  }

  /** Stops taking new messages while a dependency is down; messages waiting for a slot are released. */
  #pause() {
    if (this.#draining || this.#paused) return;
    this.#paused = true;
    this.#options.logger.warn(
      { unavailable: this.#options.breakers?.open.map((open) => open.dependency) },
      'dependency down: polling paused',
    );
    for (const consumer of this.#consumers) consumer.stop();
    this.#slots.rejectWaiters();
  }

  #resume() {
    if (this.#draining || !this.#paused) return;
    this.#paused = false;
    this.#lastReceiveAt = Date.now();
    this.#options.logger.info('dependencies available: polling resumed');
    for (const consumer of this.#consumers) {
      // A poll still in flight finishes first: starting now would run two poll loops.
      const start = () => {
        if (!this.#paused && !this.#draining) {
          context.with(suppressTracing(ROOT_CONTEXT), () => consumer.start());
        }
      };
      if (consumer.status.isPolling) consumer.once('stopped', start);
      else start();
    }
  }

  /** Messages whose handlers are running now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** When a receive last answered (or the worker started): the heartbeat's "last poll". */
  get lastReceiveAt(): Date {
    return new Date(this.#lastReceiveAt);
  }

  start(): void {
    this.#lastReceiveAt = Date.now();
    this.#options.breakers?.start();
    // Polls, heartbeats, deletes and releases are the chassis' bookkeeping: no spans, so
    // an idle worker's empty long polls never show up as traces. Message spans start from
    // the producer's extracted context (ROOT_CONTEXT based), not from this suppressed one.
    context.with(suppressTracing(ROOT_CONTEXT), () => {
      for (const consumer of this.#consumers) consumer.start();
    });
  }

  /** Drains and stops; idempotent, and every caller awaits the same drain. */
  stop(deadlineMs: number): Promise<void> {
    this.#stopping ??= this.#drain(deadlineMs);
    return this.#stopping;
  }

  async #drain(deadlineMs: number) {
    this.#draining = true;
    const deadline = Date.now() + deadlineMs;
    // No abort: an abandoned long poll can still be answered by SQS, and the messages in
    // that answer would stay invisible for a whole visibility timeout. The last poll is
    // let finish (at most waitTimeSeconds) and whatever it brings is released at once.
    const stopped = Promise.all(
      this.#consumers.map(
        (consumer) =>
          new Promise<void>((resolve) => {
            if (!consumer.status.isRunning) return resolve();
            consumer.once('stopped', () => resolve());
            consumer.stop();
          }),
      ),
    );
    this.#slots.rejectWaiters();

    while (this.#inFlight.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const late = [...this.#inFlight];
    if (late.length > 0) {
      this.#options.logger.warn(
        { count: late.length },
        'drain deadline reached: releasing unfinished messages',
      );
      for (const entry of late) {
        entry.abort.abort(new Error('worker is stopping'));
        entry.release();
      }
      await Promise.all(late.map((entry) => entry.settled));
    }
    await stopped;
    await Promise.all([...this.#releasing]);
    this.#options.breakers?.stop();
  }

  #createConsumer(batchSize: number): Consumer {
    const { visibilityTimeoutSeconds } = this.#options;
    const consumer = Consumer.create({
      queueUrl: this.#options.queueUrl,
      sqs: this.#options.sqs,
      batchSize,
      waitTimeSeconds: this.#options.waitTimeSeconds ?? 20,
      pollingCompleteWaitTimeMs: ((this.#options.waitTimeSeconds ?? 20) + 5) * 1000,
      visibilityTimeout: visibilityTimeoutSeconds,
      heartbeatInterval: Math.max(1, Math.floor(visibilityTimeoutSeconds / 3)),
      messageAttributeNames: ['All'],
      messageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
      handleMessage: (message) => this.#receive(message),
      postReceiveMessageCallback: async () => {
        this.#lastReceiveAt = Date.now();
        // Only SQS answered: an empty receive says nothing about Postgres or the Ads API.
        this.#options.breakers?.recordSuccess(Dependency.Sqs);
        if (this.#consecutiveReceiveErrors > 0) {
          this.#consecutiveReceiveErrors = 0;
          for (const poller of this.#consumers) poller.updateOption('pollingWaitTimeMs', 0);
          this.#options.logger.info('queue reachable again');
        }
      },
    });
    consumer.on('error', (error, messages) => {
      if (this.#draining) return; // the aborted long poll of a stopping worker
      if (messages !== undefined) {
        // A delete or visibility change failed: the message comes back and is handled
        // again (idempotently); nothing to do but say so.
        this.#options.logger.warn({ err: error }, 'SQS bookkeeping call failed');
        return;
      }
      // The receive itself failed (SQS unreachable, credentials...): back off instead of
      // spinning, and recover by ourselves when it answers again.
      this.#consecutiveReceiveErrors += 1;
      if (isAwsOutage(error)) this.#options.breakers?.recordFailure(Dependency.Sqs, error);
      const delay = backoffDelayMs(this.#consecutiveReceiveErrors, {
        baseMs: 500,
        capMs: 30_000,
        minMs: 250,
      });
      consumer.updateOption('pollingWaitTimeMs', delay);
      this.#options.logger.warn(
        { err: error, retryInMs: delay, failures: this.#consecutiveReceiveErrors },
        'receiving from SQS failed',
      );
    });
    consumer.on('processing_error', (error) => {
      this.#options.logger.error({ err: error }, 'unexpected error while processing a message');
    });
    return consumer;
  }

  /** sqs-consumer's handler: returns the message to delete it, undefined to leave it. */
  async #receive(message: Message): Promise<Message | undefined> {
    if (this.#draining || this.#paused) {
      await this.#releaseUnstarted(message);
      return undefined;
    }
    try {
      await this.#slots.acquire();
    } catch {
      // A drain or an outage began while this message waited for a slot: it never started.
      await this.#releaseUnstarted(message);
      return undefined;
    }
    try {
      return await this.#process(message);
    } finally {
      this.#slots.release();
    }
  }

  async #process(message: Message): Promise<Message | undefined> {
    const started = performance.now();
    const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? '1');
    const deferrals = attributeNumber(message, FLEET_ATTRIBUTES.deferrals);
    const releases = attributeNumber(message, FLEET_ATTRIBUTES.releases);
    let incoming: IncomingMessage | undefined;
    let invalid: unknown;
    try {
      incoming = parseIncoming(message);
    } catch (error) {
      invalid = error;
    }
    const parent = extractContext(incoming?.carrier ?? {});
    const span = tracer.startSpan(
      `process ${this.#options.queueName}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'aws_sqs',
          'messaging.destination.name': this.#options.queueName,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.message.id': message.MessageId ?? '',
          'messaging.message.body.size': Buffer.byteLength(message.Body ?? ''),
          'messaging.aws_sqs.receive_count': receiveCount,
          'adfleet.message.type': incoming?.type ?? 'invalid',
          'adfleet.message.origin': incoming?.origin ?? 'unknown',
          'adfleet.message.deferrals': deferrals,
          'adfleet.message.releases': releases,
        },
      },
      parent,
    );
    const info: MessageInfo = {
      id: message.MessageId ?? '',
      type: incoming?.type ?? 'invalid',
      origin: incoming?.origin ?? 'sqs',
      receiveCount,
      deferrals,
      releases,
      queue: this.#options.queueName,
      ...(incoming?.eventId === undefined ? {} : { eventId: incoming.eventId }),
    };

    return context.with(trace.setSpan(parent, span), async () => {
      const logger = this.#options.logger.child({ messageId: info.id, messageType: info.type });
      const abort = new AbortController();
      let releaseEarly: () => void = () => {};
      const released = new Promise<'released'>((resolve) => {
        releaseEarly = () => resolve('released');
      });
      let settle: () => void = () => {};
      const settled = new Promise<void>((resolve) => {
        settle = resolve;
      });
      const entry: InFlight = { message, abort, release: () => releaseEarly(), settled };
      this.#inFlight.add(entry);
      let outcome: Outcome = Outcome.Succeeded;
      let classification: Classification | undefined;
      let deadlineExceeded = false;
      let deadlineTimer: NodeJS.Timeout | undefined;
      try {
        if (incoming === undefined) throw invalid;
        const handled = this.#options
          .dispatch(incoming, info, abort.signal, logger)
          .then(() => 'done' as const);
        const deadlineMs = this.#options.handlerDeadlineMs?.(info.type);
        const deadline =
          deadlineMs === undefined
            ? undefined
            : new Promise<'deadline'>((resolve) => {
                deadlineTimer = setTimeout(() => resolve('deadline'), deadlineMs);
              });
        const first = await Promise.race([handled, released, ...(deadline === undefined ? [] : [deadline])]);
        if (first !== 'done') handled.catch(() => {}); // its result no longer matters
        if (first === 'released') {
          outcome = await this.#release(
            message,
            info,
            this.#drainReleaseDelaySeconds(),
            'the worker is stopping',
            logger,
          );
          return undefined;
        }
        if (first === 'deadline') {
          deadlineExceeded = true;
          const error = new HandlerDeadlineError(
            `${info.type} handler passed its deadline of ${Math.round((deadlineMs ?? 0) / 1000)} s`,
          );
          abort.abort(error);
          throw error;
        }
        this.#options.breakers?.recordSuccess();
        return message;
      } catch (error) {
        classification = classifyError(error);
        if (classification.kind === ErrorKind.Unavailable && classification.dependency !== undefined) {
          this.#options.breakers?.recordFailure(classification.dependency, error);
        }
        outcome = await this.#settleFailure(message, info, classification, span, logger);
        // Released and send-failed messages are not deleted here: a release deleted its
        // original itself, a failed send leaves the message to come back.
        return outcome === Outcome.DeadLettered || outcome === Outcome.Deferred ? message : undefined;
      } finally {
        clearTimeout(deadlineTimer);
        this.#inFlight.delete(entry);
        span.setAttribute('adfleet.outcome', outcome);
        span.end();
        this.#emit({
          outcome,
          type: info.type,
          durationMs: performance.now() - started,
          ...(classification === undefined ? {} : { error: classification }),
          ...(deadlineExceeded ? { deadlineExceeded } : {}),
        });
        settle();
      }
    });
  }

  /** A message that never reached a handler (drain or outage): released without spending a receive. */
  async #releaseUnstarted(message: Message) {
    const info = {
      id: message.MessageId ?? '',
      releases: attributeNumber(message, FLEET_ATTRIBUTES.releases),
      deferrals: attributeNumber(message, FLEET_ATTRIBUTES.deferrals),
    };
    const delaySeconds = this.#draining
      ? this.#drainReleaseDelaySeconds()
      : this.#outageDelaySeconds(info.releases);
    const releasing = this.#release(message, info, delaySeconds, 'not started', this.#options.logger).then(
      () => undefined,
    );
    this.#releasing.add(releasing);
    try {
      await releasing;
    } finally {
      this.#releasing.delete(releasing);
    }
  }

  /**
   * A drained message's copy waits out this worker's last long poll, which is still open
   * and would otherwise receive (and release) it again.
   */
  #drainReleaseDelaySeconds(): number {
    return (this.#options.waitTimeSeconds ?? 20) + 1;
  }

  #outageDelaySeconds(releases: number): number {
    return Math.ceil(backoffDelayMs(releases + 1, OUTAGE_RELEASE_BACKOFF) / 1000);
  }

  /**
   * Puts a message back without spending its receive budget: a copy (same body and
   * attributes, one more release, the delay given) is sent, then the original deleted.
   */
  async #release(
    message: Message,
    info: Pick<MessageInfo, 'id' | 'releases' | 'deferrals'>,
    delaySeconds: number,
    why: string,
    logger: Logger,
  ): Promise<Outcome> {
    try {
      await this.#options.producer.sendRaw(
        this.#options.queueUrl,
        message.Body ?? '',
        {
          ...message.MessageAttributes,
          [FLEET_ATTRIBUTES.releases]: { DataType: 'Number', StringValue: String(info.releases + 1) },
        },
        Math.min(MAX_SQS_DELAY_SECONDS, delaySeconds),
      );
    } catch (error) {
      // SQS is what is down: this message comes back when its visibility ends, and that
      // one receive is spent.
      logger.error(
        { err: describeError(error), why },
        'release send failed; message returns with its visibility',
      );
      if (isAwsOutage(error)) this.#options.breakers?.recordFailure(Dependency.Sqs, error);
      await this.#changeVisibility(message, Math.max(delaySeconds, 1));
      return Outcome.SendFailed;
    }
    await this.#delete(message);
    logger.info({ delaySeconds, releases: info.releases + 1, why }, 'message released');
    return Outcome.Released;
  }

  async #delete(message: Message) {
    try {
      await context.with(suppressTracing(ROOT_CONTEXT), () =>
        this.#options.sqs.send(
          new DeleteMessageCommand({
            QueueUrl: this.#options.queueUrl,
            ReceiptHandle: message.ReceiptHandle,
          }),
        ),
      );
    } catch (error) {
      // The original comes back next to its copy: handled twice, idempotently.
      this.#options.logger.warn({ err: describeError(error) }, 'could not delete a released message');
    }
  }

  async #settleFailure(
    message: Message,
    info: MessageInfo,
    classification: Classification,
    span: Span,
    logger: Logger,
  ): Promise<Outcome> {
    span.setStatus({ code: SpanStatusCode.ERROR, message: classification.reason });
    span.setAttribute('adfleet.error.kind', classification.kind);
    span.addEvent('exception', { 'exception.message': classification.reason });
    const maxDeferrals = this.#options.maxDeferrals ?? 500;
    const maxReleases = this.#options.maxReleases ?? 100;

    if (classification.kind === ErrorKind.Unavailable && info.releases < maxReleases) {
      logger.warn(
        { dependency: classification.dependency, reason: classification.reason },
        'dependency unavailable: releasing the message',
      );
      return this.#release(
        message,
        info,
        this.#outageDelaySeconds(info.releases),
        `${classification.dependency} unavailable`,
        logger,
      );
    }

    if (classification.kind === ErrorKind.Throttled && info.deferrals < maxDeferrals) {
      const delaySeconds = Math.min(
        MAX_SQS_DELAY_SECONDS,
        Math.max(1, Math.ceil((classification.retryAfterMs ?? 0) / 1000)),
      );
      try {
        await this.#options.producer.sendRaw(
          this.#options.queueUrl,
          message.Body ?? '',
          this.#redeliveryAttributes(message, info.deferrals + 1),
          delaySeconds,
        );
      } catch (error) {
        return this.#sendFailed(message, 'deferral', error, logger);
      }
      logger.info(
        { delaySeconds, deferrals: info.deferrals + 1, reason: classification.reason },
        'throttled: deferred',
      );
      return Outcome.Deferred;
    }

    const lastReceive = info.receiveCount >= this.#options.maxReceiveCount;
    if (classification.kind === ErrorKind.Retryable && !lastReceive) {
      const delayMs = backoffDelayMs(info.receiveCount, this.#options.backoff ?? MESSAGE_RETRY_BACKOFF);
      const delaySeconds = Math.min(MAX_VISIBILITY_SECONDS, Math.ceil(delayMs / 1000));
      await this.#changeVisibility(message, delaySeconds);
      logger.warn(
        { retryInSeconds: delaySeconds, receiveCount: info.receiveCount, reason: classification.reason },
        'handler failed: will retry',
      );
      return Outcome.Retried;
    }

    const reason =
      classification.kind === ErrorKind.Retryable
        ? `retries exhausted after ${info.receiveCount} receives: ${classification.reason}`
        : classification.kind === ErrorKind.Throttled
          ? `throttled ${info.deferrals} times: ${classification.reason}`
          : classification.kind === ErrorKind.Unavailable
            ? `released ${info.releases} times while ${classification.dependency} was unavailable: ${classification.reason}`
            : classification.reason;
    try {
      await this.#options.producer.sendRaw(
        this.#options.deadLetterQueueUrl,
        message.Body ?? '',
        this.#deadLetterAttributes(message, info, reason),
      );
    } catch (error) {
      return this.#sendFailed(message, 'dead-letter', error, logger);
    }
    logger.error({ reason, receiveCount: info.receiveCount }, 'message dead-lettered');
    return Outcome.DeadLettered;
  }

  /** A DLQ or deferral send failed: counted, and the message left to come back (it is not deleted). */
  async #sendFailed(message: Message, what: string, error: unknown, logger: Logger): Promise<Outcome> {
    logger.error({ err: describeError(error), what }, `${what} send failed; the message will come back`);
    if (isAwsOutage(error)) this.#options.breakers?.recordFailure(Dependency.Sqs, error);
    await this.#changeVisibility(message, 30);
    return Outcome.SendFailed;
  }

  /** The original attributes, the consumer span as the new parent, one more deferral. */
  #redeliveryAttributes(message: Message, deferrals: number): Record<string, MessageAttributeValue> {
    return {
      ...message.MessageAttributes,
      ...carrierToAttributes(currentCarrier()),
      [FLEET_ATTRIBUTES.deferrals]: { DataType: 'Number', StringValue: String(deferrals) },
    };
  }

  #deadLetterAttributes(message: Message, info: MessageInfo, reason: string) {
    const record = {
      reason: reason.slice(0, 2_000),
      queue: this.#options.queueName,
      messageId: info.id,
      type: info.type,
      receiveCount: info.receiveCount,
      deferrals: info.deferrals,
      releases: info.releases,
      at: new Date().toISOString(),
    };
    return {
      ...message.MessageAttributes,
      [FLEET_ATTRIBUTES.deadLetter]: { DataType: 'String', StringValue: JSON.stringify(record) },
    };
  }

  async #changeVisibility(message: Message, seconds: number) {
    try {
      await context.with(suppressTracing(ROOT_CONTEXT), () =>
        this.#options.sqs.send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: this.#options.queueUrl,
            ReceiptHandle: message.ReceiptHandle,
            VisibilityTimeout: seconds,
          }),
        ),
      );
    } catch (error) {
      // The message reappears when its current visibility ends: later, not lost.
      this.#options.logger.warn({ err: describeError(error) }, 'could not change message visibility');
    }
  }

  #emit(event: HandledEvent) {
    try {
      this.#options.onHandled?.(event);
    } catch (error) {
      this.#options.logger.warn({ err: describeError(error) }, 'onHandled listener threw');
    }
  }
}

function attributeNumber(message: Message, name: string): number {
  const value = Number(message.MessageAttributes?.[name]?.StringValue ?? '0');
  return Number.isFinite(value) && value >= 0 ? value : 0;
}
