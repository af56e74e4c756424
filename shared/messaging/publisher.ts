import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from '@aws-sdk/client-eventbridge';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { EVENT_SOURCE } from '../../contract/topology.ts';
import { describeError } from '../errors.ts';
import { chunkEntries, sendWithPartialRetry } from './producer.ts';
import { currentCarrier, TRACE_DETAIL_FIELD } from './trace-context.ts';

export interface FleetEvent {
  readonly detailType: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

const tracer = trace.getTracer('adfleet.messaging');

/**
 * Publishes fleet events to the bus. Each event's `detail` carries the publishing span's
 * context in one reserved field (`_trace`), since EventBridge → SQS drops attributes.
 */
export class EventPublisher {
  readonly #events: EventBridgeClient;
  readonly #busName: string;

  constructor(events: EventBridgeClient, busName: string) {
    this.#events = events;
    this.#busName = busName;
  }

  publish(detailType: string, detail: Readonly<Record<string, unknown>>): Promise<void> {
    return this.publishBatch([{ detailType, detail }]);
  }

  /** PutEvents in calls of at most 10 entries; failed entries are retried, then surfaced. */
  publishBatch(events: readonly FleetEvent[]): Promise<void> {
    const types = [...new Set(events.map((event) => event.detailType))].join(',');
    return tracer.startActiveSpan(
      `publish ${this.#busName}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'aws_eventbridge',
          'messaging.destination.name': this.#busName,
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'publish',
          'messaging.batch.message_count': events.length,
          'adfleet.event.detail_types': types,
        },
      },
      async (span) => {
        try {
          const carrier = currentCarrier();
          const entries = events.map((event) => ({
            EventBusName: this.#busName,
            Source: EVENT_SOURCE,
            DetailType: event.detailType,
            Detail: JSON.stringify({ ...event.detail, [TRACE_DETAIL_FIELD]: carrier }),
          }));
          for (const chunk of chunkEntries(entries, (entry) => entry.Detail)) await this.#put(chunk);
        } catch (error) {
          span.recordException(error as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(error) });
          throw error;
        } finally {
          span.end();
        }
      },
    );
  }

  #put(entries: PutEventsRequestEntry[]): Promise<void> {
    return sendWithPartialRetry(
      entries,
      async (pending) => {
        const { FailedEntryCount = 0, Entries = [] } = await this.#events.send(
          new PutEventsCommand({ Entries: pending }),
        );
        if (FailedEntryCount === 0) return undefined;
        // Result entries are positional: the i-th result belongs to the i-th request entry.
        const failed = pending.filter((_, index) => Entries[index]?.ErrorCode !== undefined);
        const invalid = Entries.filter((entry) => entry.ErrorCode?.startsWith('Invalid') === true);
        return {
          failed: failed.length > 0 ? failed : pending,
          ...(invalid.length > 0
            ? {
                senderFault: `EventBridge rejected events: ${invalid.map((entry) => entry.ErrorMessage).join('; ')}`,
              }
            : {}),
        };
      },
      (unsent) => `${unsent} event(s) were not accepted by EventBridge`,
    );
  }
}
