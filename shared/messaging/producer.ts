import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetQueueUrlCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueueName, ResourceNames } from '../../contract/topology.ts';
import { backoffDelayMs } from '../backoff.ts';
import { FatalError, RetryableError } from '../errors.ts';
import { encodeBody, type OutgoingMessage } from './envelope.ts';
import {
  assertAttributeBudget,
  carrierToAttributes,
  currentCarrier,
  type MessageAttributes,
  stringAttributes,
} from './trace-context.ts';

export interface SendOptions {
  /** 0–900 s; SQS's own limit. */
  readonly delaySeconds?: number;
  /** The caller's own attributes, within the budget the fleet leaves (see trace-context.ts). */
  readonly attributes?: Readonly<Record<string, string>>;
}

export type BatchEntry = OutgoingMessage & SendOptions;

const MAX_BATCH_ENTRIES = 10;
/** SQS's limit for one message and for a whole batch. */
const MAX_BATCH_BYTES = 256 * 1024;
const BATCH_ATTEMPTS = 4;

/**
 * Sends fleet messages to fleet queues, each with the active trace context in its
 * attributes. (The AWS SDK instrumentation also injects its own send span's context when
 * it is active; ours is the floor that holds without it.)
 */
export class QueueProducer {
  readonly #sqs: SQSClient;
  readonly #names: ResourceNames;
  readonly #urls = new Map<string, Promise<string>>();

  constructor(sqs: SQSClient, names: ResourceNames) {
    this.#sqs = sqs;
    this.#names = names;
  }

  /** A queue's URL by logical name, looked up once per process. */
  queueUrl(queue: QueueName): Promise<string> {
    return this.queueUrlByName(this.#names.queue(queue));
  }

  deadLetterQueueUrl(queue: QueueName): Promise<string> {
    return this.queueUrlByName(this.#names.deadLetterQueue(queue));
  }

  private queueUrlByName(name: string): Promise<string> {
    let url = this.#urls.get(name);
    if (url === undefined) {
      url = this.#sqs.send(new GetQueueUrlCommand({ QueueName: name })).then(({ QueueUrl }) => {
        if (QueueUrl === undefined) throw new Error(`no URL for queue ${name}`);
        return QueueUrl;
      });
      url.catch(() => this.#urls.delete(name));
      this.#urls.set(name, url);
    }
    return url;
  }

  async send(queue: QueueName, message: OutgoingMessage, options: SendOptions = {}): Promise<string> {
    const entry = this.#entry('0', message, options); // validated before any request
    const QueueUrl = await this.queueUrl(queue);
    const { MessageId } = await this.#sqs.send(new SendMessageCommand({ QueueUrl, ...entry }));
    return MessageId ?? '';
  }

  /**
   * Sends any number of messages in SendMessageBatch calls of at most 10 entries and 256 KiB.
   * Entries SQS fails for a transient reason are sent again with backoff; an entry it
   * rejects as the sender's fault is a FatalError; anything still failing after the
   * attempts is a RetryableError naming how many did not go out.
   */
  async sendBatch(queue: QueueName, messages: readonly BatchEntry[]): Promise<void> {
    const entries = messages.map((message, index) => this.#entry(String(index), message, message));
    const QueueUrl = await this.queueUrl(queue);
    for (const chunk of chunkEntries(entries, (entry) => entry.MessageBody))
      await this.#sendChunk(QueueUrl, chunk);
  }

  /**
   * A raw send, for re-delivering or dead-lettering a received message as it was; the
   * attributes may be a received message's own.
   */
  async sendRaw(queueUrl: string, body: string, attributes: MessageAttributes, delaySeconds = 0) {
    await this.#sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: body,
        MessageAttributes: onlyStringAndNumberAttributes(attributes),
        DelaySeconds: delaySeconds,
      }),
    );
  }

  #entry(
    id: string,
    message: OutgoingMessage,
    options: SendOptions,
  ): SendMessageBatchRequestEntry & { Id: string } {
    const own = options.attributes ?? {};
    assertAttributeBudget(own);
    const MessageAttributes: MessageAttributes = {
      ...stringAttributes(own),
      ...carrierToAttributes(currentCarrier()),
    };
    const body = encodeBody(message);
    if (Buffer.byteLength(body) > MAX_BATCH_BYTES) {
      throw new FatalError(`message of type ${message.type} is larger than SQS's 256 KiB`);
    }
    return {
      Id: id,
      MessageBody: body,
      MessageAttributes,
      ...(options.delaySeconds === undefined ? {} : { DelaySeconds: options.delaySeconds }),
    };
  }

  #sendChunk(QueueUrl: string, chunk: SendMessageBatchRequestEntry[]): Promise<void> {
    return sendWithPartialRetry(
      chunk,
      async (pending) => {
        const { Failed = [] } = await this.#sqs.send(
          new SendMessageBatchCommand({ QueueUrl, Entries: pending }),
        );
        if (Failed.length === 0) return undefined;
        const senderFaults = Failed.filter((failure) => failure.SenderFault === true);
        const reasons = senderFaults.map(
          (failure) => `${failure.Id}: ${failure.Code} ${failure.Message ?? ''}`,
        );
        const failedIds = new Set(Failed.map((failure) => failure.Id));
        return {
          failed: pending.filter((entry) => failedIds.has(entry.Id)),
          ...(senderFaults.length > 0
            ? { senderFault: `SQS rejected ${senderFaults.length} message(s): ${reasons.join('; ')}` }
            : {}),
        };
      },
      (unsent) => `${unsent} message(s) of a batch were not accepted by SQS`,
    );
  }
}

/**
 * Splits entries into batch calls of at most 10 entries and 256 KiB — the limits SQS's
 * SendMessageBatch and EventBridge's PutEvents share. `payloadOf` says which field is the
 * entry's payload.
 */
export function chunkEntries<T>(entries: readonly T[], payloadOf: (entry: T) => string | undefined): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = Buffer.byteLength(payloadOf(entry) ?? '') + 512; // attributes and envelope
    if (current.length === MAX_BATCH_ENTRIES || (current.length > 0 && bytes + size > MAX_BATCH_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** What one batch call left undone, when it did not accept every entry. */
export interface PartialFailure<T> {
  /** The entries to send again. */
  readonly failed: T[];
  /** Set when any failure was the sender's fault: the FatalError's message. No retry helps. */
  readonly senderFault?: string;
}

/**
 * The retry loop SendMessageBatch and PutEvents share: `send` makes one batch call and
 * returns undefined when every entry was accepted, or the failed entries otherwise. A
 * sender fault is a FatalError at once; failed entries are sent again with backoff; anything
 * still failing after the attempts is a RetryableError with `unsentMessage`'s text.
 */
export async function sendWithPartialRetry<T>(
  entries: T[],
  send: (pending: T[]) => Promise<PartialFailure<T> | undefined>,
  unsentMessage: (unsent: number) => string,
): Promise<void> {
  let pending = entries;
  for (let attempt = 1; attempt <= BATCH_ATTEMPTS; attempt += 1) {
    const failure = await send(pending);
    if (failure === undefined) return;
    if (failure.senderFault !== undefined) throw new FatalError(failure.senderFault);
    pending = failure.failed;
    if (attempt < BATCH_ATTEMPTS) await sleep(backoffDelayMs(attempt, { baseMs: 100, capMs: 2_000 }));
  }
  throw new RetryableError(unsentMessage(pending.length));
}

/** SQS returns attribute values with both String and Binary list fields; send back what it accepts. */
function onlyStringAndNumberAttributes(attributes: MessageAttributes = {}): MessageAttributes {
  const kept: MessageAttributes = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (value.DataType === undefined) continue;
    if (value.StringValue !== undefined)
      kept[name] = { DataType: value.DataType, StringValue: value.StringValue };
    else if (value.BinaryValue !== undefined)
      kept[name] = { DataType: value.DataType, BinaryValue: value.BinaryValue };
  }
  return kept;
}
