import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Config } from '../contract/config.ts';
import { type Dependency, isAwsOutage, tagOutage } from './dependencies.ts';

export type AwsSettings = Pick<Config, 'AWS_REGION' | 'AWS_ENDPOINT_URL'>;

/**
 * Client settings shared by every AWS client of the fleet. The SDK would read
 * AWS_ENDPOINT_URL by itself; passing it explicitly lets tests and the bootstrap aim a
 * client at an emulator without touching process.env.
 */
export function awsClientSettings(settings: AwsSettings) {
  return {
    region: settings.AWS_REGION,
    ...(settings.AWS_ENDPOINT_URL === undefined ? {} : { endpoint: settings.AWS_ENDPOINT_URL }),
    // The chassis has its own retry policy for messages; the SDK's retries cover one call's blips.
    maxAttempts: 3,
    // A hung connection or an emulator that accepts and never answers ends in a
    // TimeoutError (an outage), not a message held forever. 30 s is above SQS's 20 s long poll.
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 30_000 },
  };
}

/** Outage errors of the client's calls are tagged with `dependency` (dependencies.ts). */
function tagOutages(client: { middlewareStack: SQSClient['middlewareStack'] }, dependency: Dependency) {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        throw isAwsOutage(error) ? tagOutage(error, dependency) : error;
      }
    },
    { step: 'initialize', name: `adfleetOutage-${dependency}` },
  );
}

export interface AwsClients {
  readonly sqs: SQSClient;
  readonly events: EventBridgeClient;
  readonly scheduler: SchedulerClient;
  destroy(): void;
}

export function createAwsClients(settings: AwsSettings): AwsClients {
  const common = awsClientSettings(settings);
  // The configured endpoint wins over the host inside a queue URL: emulators put their own
  // advertised host there, and a proxy or VPC endpoint in between must not be bypassed.
  const sqs = new SQSClient({ ...common, useQueueUrlAsEndpoint: false });
  const events = new EventBridgeClient(common);
  const scheduler = new SchedulerClient(common);
  tagOutages(sqs, 'sqs');
  tagOutages(events as unknown as SQSClient, 'eventbridge');
  return {
    sqs,
    events,
    scheduler,
    destroy() {
      sqs.destroy();
      events.destroy();
      scheduler.destroy();
    },
  };
}

/** The account id inside an ARN (`arn:aws:sqs:us-east-1:123456789012:name`); emulators differ. */
export function accountOf(arn: string): string {
  const account = arn.split(':')[4];
  if (account === undefined || account === '') throw new Error(`not an ARN with an account: ${arn}`);
  return account;
}
