import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import {
  ChangeMessageVisibilityCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Config } from '../../contract/config.ts';
import { QUEUE_NAMES, type QueueName, resourceNames, topology } from '../../contract/topology.ts';
import { awsClientSettings } from '../../shared/aws.ts';
import { describeError } from '../../shared/errors.ts';
import type { QueueProducer } from '../../shared/messaging/producer.ts';
import { type DeadLetterRecord, deadLetterRecordOf, topReasons } from './dead-letters.ts';

/**
 * Queue depth from the SQS queue attributes (visible, in flight, delayed) and the age of
 * each queue's oldest message, which SQS does not offer as an attribute: in AWS it is the
 * CloudWatch metric `ApproximateAgeOfOldestMessage`; against an emulator it is derived
 * from the oldest `SentTimestamp` among the queue's messages, read through LocalStack's
 * side-effect-free developer endpoint (`/_aws/sqs/messages`). A plain receive would do it
 * on any emulator but bumps every message's receive count and spends its dead-letter
 * budget, so where no such endpoint answers (moto) the age is reported as unavailable.
 *
 * Dead letters come from the same peek locally; in AWS from a short-visibility receive of
 * a sample that is released again at once (as `adfleet dlq list` does).
 */

export const AgeSource = {
  CloudWatch: 'cloudwatch',
  EmulatorPeek: 'emulator-peek',
  Unavailable: 'unavailable',
} as const;
export type AgeSource = (typeof AgeSource)[keyof typeof AgeSource];

export interface DeadLetterSummary {
  readonly count: number;
  /** How many of them the reasons were read from. */
  readonly sampled: number;
  readonly topReasons: ReadonlyArray<{ readonly reason: string; readonly count: number }>;
  readonly newest: DeadLetterRecord | undefined;
}

export interface QueueSnapshot {
  readonly queue: QueueName;
  readonly name: string;
  readonly visible: number;
  readonly inFlight: number;
  readonly delayed: number;
  readonly oldestAgeSeconds: number | null;
  readonly oldestAgeSource: AgeSource;
  readonly maxMessageAgeSeconds: number;
  readonly deadLetters: DeadLetterSummary;
  /** Set when the queue could not be read at all. */
  readonly error?: string;
}

/** Messages peeked before giving up on deriving an age locally: the peek returns every body. */
const PEEK_LIMIT = 10_000;
/** Dead letters sampled for their reasons where every one must be received to be read. */
const RECEIVE_SAMPLE = 50;

export interface PeekedMessage {
  readonly sentAt: number;
  readonly attributes: Record<string, string>;
}

function asArray<T>(value: T | T[] | null | undefined): T[] {
  return value === undefined || value === null ? [] : Array.isArray(value) ? value : [value];
}

/**
 * LocalStack's developer endpoint: every message of a queue with its attributes, without
 * changing visibility or receive counts. Undefined where it is not offered (moto, AWS).
 */
export async function peekMessages(endpoint: string, queueUrl: string): Promise<PeekedMessage[] | undefined> {
  const url = new URL('/_aws/sqs/messages', endpoint);
  url.searchParams.set('QueueUrl', queueUrl);
  url.searchParams.set('ShowInvisible', 'true');
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(5_000),
    });
  } catch {
    return undefined;
  }
  if (!response.ok || !(response.headers.get('content-type') ?? '').includes('json')) return undefined;
  const body = (await response.json()) as {
    ReceiveMessageResponse?: {
      ReceiveMessageResult?: {
        Message?: Array<{
          Attribute?: Array<{ Name: string; Value: string }>;
          MessageAttribute?: Array<{ Name: string; Value: { StringValue?: string } }>;
        }>;
      } | null;
    };
  };
  return asArray(body.ReceiveMessageResponse?.ReceiveMessageResult?.Message).map((message) => {
    const system = Object.fromEntries(asArray(message.Attribute).map(({ Name, Value }) => [Name, Value]));
    return {
      sentAt: Number(system.SentTimestamp ?? Number.NaN),
      attributes: Object.fromEntries(
        asArray(message.MessageAttribute).map(({ Name, Value }) => [Name, Value.StringValue ?? '']),
      ),
    };
  });
}

export interface QueueReaderOptions {
  readonly config: Pick<Config, 'AWS_ENDPOINT_URL' | 'AWS_REGION' | 'ADFLEET_RESOURCE_PREFIX'>;
  readonly sqs: SQSClient;
  readonly producer: QueueProducer;
  /** Per-queue oldest-age thresholds in seconds; default: the topology's maxMessageAgeSeconds. */
  readonly maxMessageAgeSeconds?: Partial<Record<QueueName, number>>;
}

export class QueueReader {
  readonly #options: QueueReaderOptions;
  #cloudwatch: CloudWatchClient | undefined;

  constructor(options: QueueReaderOptions) {
    this.#options = options;
  }

  async snapshot(): Promise<QueueSnapshot[]> {
    return Promise.all(QUEUE_NAMES.map((queue) => this.#snapshotOf(queue)));
  }

  /** Every dead letter of one queue with its record (the peek), or a released sample (AWS). */
  async deadLetters(queue: QueueName): Promise<{ records: DeadLetterRecord[]; count: number }> {
    const url = await this.#options.producer.deadLetterQueueUrl(queue);
    const count = await this.#depth(url);
    return {
      records: await this.#deadLetterRecords(url, count.visible + count.inFlight),
      count: count.visible + count.inFlight,
    };
  }

  close(): void {
    this.#cloudwatch?.destroy();
  }

  async #snapshotOf(queue: QueueName): Promise<QueueSnapshot> {
    const name = resourceNames(this.#options.config.ADFLEET_RESOURCE_PREFIX).queue(queue);
    const maxMessageAgeSeconds =
      this.#options.maxMessageAgeSeconds?.[queue] ?? topology.queues[queue].maxMessageAgeSeconds;
    try {
      const [url, deadUrl] = await Promise.all([
        this.#options.producer.queueUrl(queue),
        this.#options.producer.deadLetterQueueUrl(queue),
      ]);
      const [depth, deadDepth] = await Promise.all([this.#depth(url), this.#depth(deadUrl)]);
      const deadCount = deadDepth.visible + deadDepth.inFlight;
      const [age, records] = await Promise.all([
        this.#oldestAge(name, url, depth.visible + depth.inFlight),
        this.#deadLetterRecords(deadUrl, deadCount),
      ]);
      return {
        queue,
        name,
        ...depth,
        oldestAgeSeconds: age.seconds,
        oldestAgeSource: age.source,
        maxMessageAgeSeconds,
        deadLetters: {
          count: deadCount,
          sampled: records.length,
          topReasons: topReasons(records),
          newest: records.reduce<DeadLetterRecord | undefined>(
            (newest, record) => (newest === undefined || record.at > newest.at ? record : newest),
            undefined,
          ),
        },
      };
    } catch (error) {
      return {
        queue,
        name,
        visible: 0,
        inFlight: 0,
        delayed: 0,
        oldestAgeSeconds: null,
        oldestAgeSource: AgeSource.Unavailable,
        maxMessageAgeSeconds,
        deadLetters: { count: 0, sampled: 0, topReasons: [], newest: undefined },
        error: describeError(error),
      };
    }
  }

  async #depth(QueueUrl: string) {
    const { Attributes = {} } = await this.#options.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return {
      visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
      delayed: Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0),
    };
  }

  async #oldestAge(
    name: string,
    url: string,
    messages: number,
  ): Promise<{ seconds: number | null; source: AgeSource }> {
    const endpoint = this.#options.config.AWS_ENDPOINT_URL;
    if (endpoint === undefined)
      return { seconds: await this.#cloudWatchAge(name), source: AgeSource.CloudWatch };
    if (messages === 0) return { seconds: null, source: AgeSource.EmulatorPeek };
    if (messages > PEEK_LIMIT) return { seconds: null, source: AgeSource.Unavailable };
    const peeked = await peekMessages(endpoint, url);
    if (peeked === undefined) return { seconds: null, source: AgeSource.Unavailable };
    const oldest = Math.min(...peeked.map((message) => message.sentAt).filter(Number.isFinite));
    return {
      seconds: Number.isFinite(oldest) ? Math.max(0, (Date.now() - oldest) / 1000) : null,
      source: AgeSource.EmulatorPeek,
    };
  }

  /** The latest one-minute maximum of ApproximateAgeOfOldestMessage (CloudWatch lags by a minute or two). */
  async #cloudWatchAge(queueName: string): Promise<number | null> {
    this.#cloudwatch ??= new CloudWatchClient(awsClientSettings(this.#options.config));
    const now = Date.now();
    const { Datapoints = [] } = await this.#cloudwatch.send(
      new GetMetricStatisticsCommand({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateAgeOfOldestMessage',
        Dimensions: [{ Name: 'QueueName', Value: queueName }],
        StartTime: new Date(now - 10 * 60_000),
        EndTime: new Date(now),
        Period: 60,
        Statistics: ['Maximum'],
      }),
    );
    const latest = Datapoints.filter((point) => point.Timestamp !== undefined).sort(
      (a, b) => (b.Timestamp?.getTime() ?? 0) - (a.Timestamp?.getTime() ?? 0),
    )[0];
    return latest?.Maximum ?? null;
  }

  async #deadLetterRecords(url: string, count: number): Promise<DeadLetterRecord[]> {
    if (count === 0) return [];
    const endpoint = this.#options.config.AWS_ENDPOINT_URL;
    if (endpoint !== undefined && count <= PEEK_LIMIT) {
      const peeked = await peekMessages(endpoint, url);
      if (peeked !== undefined) return peeked.map((message) => deadLetterRecordOf(message.attributes));
    }
    return this.#receiveSample(url);
  }

  async #receiveSample(QueueUrl: string): Promise<DeadLetterRecord[]> {
    const seen = new Map<string, Message>();
    for (let round = 0; round < RECEIVE_SAMPLE / 10 && seen.size < RECEIVE_SAMPLE; round += 1) {
      const { Messages = [] } = await this.#options.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 5,
          MessageAttributeNames: ['All'],
        }),
      );
      if (Messages.length === 0) break;
      for (const message of Messages) seen.set(message.MessageId ?? '', message);
    }
    // Visible again at once: reading reasons must not get in the way of a redrive.
    await Promise.all(
      [...seen.values()].map((message) =>
        this.#options.sqs
          .send(
            new ChangeMessageVisibilityCommand({
              QueueUrl,
              ReceiptHandle: message.ReceiptHandle,
              VisibilityTimeout: 0,
            }),
          )
          .catch(() => {}),
      ),
    );
    return [...seen.values()].map((message) =>
      deadLetterRecordOf(
        Object.fromEntries(
          Object.entries(message.MessageAttributes ?? {}).map(([key, value]) => [
            key,
            value.StringValue ?? '',
          ]),
        ),
      ),
    );
  }
}
