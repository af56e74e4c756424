import { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { resourceNames } from '../../../contract/topology.ts';
import { QueueProducer } from '../../../shared/messaging/producer.ts';
import { AttributeBudgetError, CALLER_ATTRIBUTE_BUDGET } from '../../../shared/messaging/trace-context.ts';

describe('attribute budget', () => {
  it('refuses a message whose own attributes would crowd out the trace context', async () => {
    const sqs = new SQSClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' });
    const producer = new QueueProducer(sqs, resourceNames('unit'));
    const attributes = Object.fromEntries(
      Array.from({ length: CALLER_ATTRIBUTE_BUDGET + 1 }, (_, index) => [`a${index}`, 'v']),
    );
    // Refused before any request: the endpoint above does not exist.
    await expect(producer.send('bulk-item', { type: 'A', payload: {} }, { attributes })).rejects.toThrow(
      AttributeBudgetError,
    );
    await expect(producer.sendBatch('bulk-item', [{ type: 'A', payload: {}, attributes }])).rejects.toThrow(
      new RegExp(`at most ${CALLER_ATTRIBUTE_BUDGET} are left`),
    );
    sqs.destroy();
  });
});
