import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import { Command, Option } from 'commander';
import { QUEUE_NAMES, type QueueName } from '../../contract/topology.ts';
import { deadLetterRecordOf } from '../../domain/operations/dead-letters.ts';
import type { AwsClients } from '../../shared/aws.ts';
import { FLEET_ATTRIBUTES } from '../../shared/messaging/trace-context.ts';
import { positiveInt, runCommand } from '../context.ts';

/**
 * `adfleet dlq list <queue>` shows what is in a queue's dead-letter queue and why;
 * `adfleet dlq redrive <queue>` sends it back to the queue once the cause is fixed.
 *
 * A redrive is bounded: it moves only what the DLQ held when it started (SQS's
 * SentTimestamp of the dead-letter copy is before the start). A message dead-lettered
 * again while the redrive runs — its cause is not fixed — is left in the DLQ and reported,
 * instead of being sent round again forever.
 *
 * Hand-written instead of SQS's StartMessageMoveTask: a move keeps our dead-letter record
 * attribute on the message and is not offered by every emulator; here the record is
 * dropped, the original body and attributes go back, and the copy is deleted only after
 * the send succeeded (a crash in between duplicates, never loses).
 */

const queueArgument = new Option('--queue <queue>', 'worker queue')
  .choices(QUEUE_NAMES)
  .makeOptionMandatory();

async function receiveBatch(sqs: AwsClients['sqs'], QueueUrl: string, visibility: number) {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1,
      VisibilityTimeout: visibility,
      MessageAttributeNames: ['All'],
      MessageSystemAttributeNames: ['SentTimestamp'],
    }),
  );
  return Messages;
}

function deadLetterRecord(message: Message) {
  return deadLetterRecordOf(
    Object.fromEntries(
      Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue ?? '']),
    ),
  );
}

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description("Inspect and redrive a queue's dead letters");

  dlq
    .command('list')
    .description('Show dead-lettered messages with their reasons (they stay in the DLQ)')
    .addOption(queueArgument)
    .option('--limit <n>', 'at most this many', positiveInt, 50)
    .action((options: { queue: QueueName; limit: number }) =>
      runCommand('dlq list', async ({ clients, producer }) => {
        const url = await producer.deadLetterQueueUrl(options.queue);
        const seen = new Map<string, Message>();
        // Received with a short visibility, released again below.
        for (let round = 0; round < 10 && seen.size < options.limit; round += 1) {
          const batch = await receiveBatch(clients.sqs, url, 5);
          if (batch.length === 0) break;
          for (const message of batch) seen.set(message.MessageId ?? '', message);
        }
        // Made visible again at once: listing must not get in the way of a redrive.
        await Promise.all(
          [...seen.values()].map((message) =>
            clients.sqs.send(
              new ChangeMessageVisibilityCommand({
                QueueUrl: url,
                ReceiptHandle: message.ReceiptHandle,
                VisibilityTimeout: 0,
              }),
            ),
          ),
        );
        const lines = [...seen.values()].map((message) => {
          const record = deadLetterRecord(message);
          return `${message.MessageId}  ${record.type}  receives=${record.receiveCount ?? '?'}  ${record.at}\n    ${record.reason}`;
        });
        return lines.length === 0 ? `no dead letters for ${options.queue}` : lines.join('\n');
      }),
    );

  dlq
    .command('redrive')
    .description('Send dead letters back to their queue')
    .addOption(queueArgument)
    .action((options: { queue: QueueName }) =>
      runCommand('dlq redrive', async ({ clients, producer }) => {
        const [source, dead] = await Promise.all([
          producer.queueUrl(options.queue),
          producer.deadLetterQueueUrl(options.queue),
        ]);
        const startedAt = Date.now();
        let moved = 0;
        const cameBack = new Map<string, Message>();
        for (;;) {
          const batch = (await receiveBatch(clients.sqs, dead, 60)).filter(
            (message) => !cameBack.has(message.MessageId ?? ''),
          );
          if (batch.length === 0) break;
          for (const message of batch) {
            if (Number(message.Attributes?.SentTimestamp ?? 0) > startedAt) {
              cameBack.set(message.MessageId ?? '', message);
              continue;
            }
            const {
              [FLEET_ATTRIBUTES.deadLetter]: _record,
              [FLEET_ATTRIBUTES.deferrals]: _deferrals,
              [FLEET_ATTRIBUTES.releases]: _releases,
              ...attributes
            } = message.MessageAttributes ?? {};
            await producer.sendRaw(source, message.Body ?? '', attributes);
            await clients.sqs.send(
              new DeleteMessageCommand({ QueueUrl: dead, ReceiptHandle: message.ReceiptHandle }),
            );
            moved += 1;
          }
        }
        // Left where they are, visible again for `dlq list` and the next redrive.
        await Promise.all(
          [...cameBack.values()].map((message) =>
            clients.sqs.send(
              new ChangeMessageVisibilityCommand({
                QueueUrl: dead,
                ReceiptHandle: message.ReceiptHandle,
                VisibilityTimeout: 0,
              }),
            ),
          ),
        );
        const summary = `${moved} message(s) sent back to ${options.queue}`;
        if (cameBack.size === 0) return summary;
        const reasons = new Map<string, number>();
        for (const message of cameBack.values()) {
          const { reason } = deadLetterRecord(message);
          reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
        }
        return [
          summary,
          `${cameBack.size} came back to the DLQ while redriving (cause not fixed; left there):`,
          ...[...reasons].map(([reason, count]) => `  ${count} × ${reason}`),
        ].join('\n');
      }),
    );
  return dlq;
}
