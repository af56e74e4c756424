import {
  ChangeMessageVisibilityCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { Consumer } from 'sqs-consumer';
import { type BackoffPolicy, backoffDelayMs, MESSAGE_RETRY_BACKOFF } from '../backoff.ts';
import { type Classification, classifyError, describeError, ErrorKind } from '../errors.ts';
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
 *   ThrottledError (retry after N ms)     → re-sent as a NEW message with DelaySeconds and
 *                                           a deferral counter, then the original deleted.
 *                                           A new message starts at receive count 0, so
 *                                           rate limiting never spends the DLQ budget.
 *   FatalError / invalid / unknown type   → copied to the DLQ with the reason in an
 *                                           attribute, then deleted; no retries.
 *
 * Sends come before deletes throughout: a crash in between duplicates a message (handlers
 * are idempotent) and never loses one.
 *
 * Draining (stop): pollers stop at once; messages waiting for a handler slot are released
 * (visibility 0); running handlers get until the deadline, then their AbortSignal fires
 * and their messages are released too.
 */

export interface MessageInfo {
  readonly id: string;
  readonly type: string;
  readonly origin: IncomingMessage['origin'];
  readonly receiveCount: number;
  readonly deferrals: number;
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
  Released: 'released',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export interface HandledEvent {
  readonly outcome: Outcome;
  readonly type: string;
  readonly durationMs: number;
  readonly error?: Classification;
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
  /** Called after each message; a listener that throws is logged, never rethrown. */
  readonly onHandled?: (event: HandledEvent) => void;
}

const MAX_SQS_DELAY_SECONDS = 900;
const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;
const tracer = trace.getTracer('adfleet.messaging');

interface InFlight {
  readonly message: Message;
  readonly abort: AbortController;
  /** Ends the message's processing early at the drain deadline: released, not deleted. */
  readonly release: () => void;
}

export class QueueWorker {
  readonly #options: QueueWorkerOptions;
  readonly #consumers: Consumer[] = [];
  readonly #slots: Semaphore;
  readonly #inFlight = new Set<InFlight>();
  #draining = false;
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
  }

  get running(): boolean {
    return this.#consumers.some((consumer) => consumer.status.isRunning);
  }

  /** Ready: polling, and the last receive (or the start) was recent and succeeded. */
  get ready(): boolean {
    const waitMs = (this.#options.waitTimeSeconds ?? 20) * 1000;
    return (
      this.running &&
      this.#consecutiveReceiveErrors === 0 &&
      Date.now() - this.#lastReceiveAt < waitMs + 30_000
    );
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
      await Promise.all(late.map((entry) => this.#changeVisibility(entry.message, 0)));
    }
    await stopped;
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
    if (this.#draining) {
      await this.#changeVisibility(message, 0);
      return undefined;
    }
    try {
      await this.#slots.acquire();
    } catch {
      // Drain began while this message waited for a slot: it never started, release it.
      await this.#changeVisibility(message, 0);
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
    const deferrals = Number(message.MessageAttributes?.[FLEET_ATTRIBUTES.deferrals]?.StringValue ?? '0');
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
      const entry: InFlight = { message, abort, release: () => releaseEarly() };
      this.#inFlight.add(entry);
      let outcome: Outcome = Outcome.Succeeded;
      let classification: Classification | undefined;
      try {
        if (incoming === undefined) throw invalid;
        const handled = this.#options
          .dispatch(incoming, info, abort.signal, logger)
          .then(() => 'done' as const);
        if ((await Promise.race([handled, released])) === 'released') {
          outcome = Outcome.Released;
          handled.catch(() => {}); // the handler saw its signal abort; its result no longer matters
          return undefined;
        }
        return message;
      } catch (error) {
        classification = classifyError(error);
        outcome = await this.#settleFailure(message, info, classification, span, logger);
        return outcome === Outcome.Retried ? undefined : message;
      } finally {
        this.#inFlight.delete(entry);
        span.setAttribute('adfleet.outcome', outcome);
        span.end();
        this.#emit({
          outcome,
          type: info.type,
          durationMs: performance.now() - started,
          ...(classification === undefined ? {} : { error: classification }),
        });
      }
    });
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

    if (classification.kind === ErrorKind.Throttled && info.deferrals < maxDeferrals) {
      const delaySeconds = Math.min(
        MAX_SQS_DELAY_SECONDS,
        Math.max(1, Math.ceil((classification.retryAfterMs ?? 0) / 1000)),
      );
      await this.#options.producer.sendRaw(
        this.#options.queueUrl,
        message.Body ?? '',
        this.#redeliveryAttributes(message, info.deferrals + 1),
        delaySeconds,
      );
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
          : classification.reason;
    await this.#options.producer.sendRaw(
      this.#options.deadLetterQueueUrl,
      message.Body ?? '',
      this.#deadLetterAttributes(message, info, reason),
    );
    logger.error({ reason, receiveCount: info.receiveCount }, 'message dead-lettered');
    return Outcome.DeadLettered;
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
