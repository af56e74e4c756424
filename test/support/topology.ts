import { DeleteEventBusCommand, DeleteRuleCommand, RemoveTargetsCommand } from '@aws-sdk/client-eventbridge';
import { DeleteScheduleCommand } from '@aws-sdk/client-scheduler';
import { DeleteQueueCommand } from '@aws-sdk/client-sqs';
import { QUEUE_NAMES, type ResourceNames, resourceNames, topology } from '../../contract/topology.ts';
import { type AwsClients, createAwsClients } from '../../shared/aws.ts';
import { bootstrapTopology, type TopologyState } from '../../shared/bootstrap.ts';
import { stackEnv, uniquePrefix } from './env.ts';

export interface TestTopology {
  readonly prefix: string;
  readonly names: ResourceNames;
  readonly clients: AwsClients;
  readonly state: TopologyState;
  destroy(): Promise<void>;
}

/** The whole topology under a prefix of its own, removed again by destroy(). */
export async function createTestTopology(label: string): Promise<TestTopology> {
  const env = stackEnv();
  const prefix = uniquePrefix(label);
  const names = resourceNames(prefix);
  const clients = createAwsClients({
    AWS_REGION: env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL: env.AWS_ENDPOINT_URL,
  });
  const state = await bootstrapTopology(clients, names);
  return {
    prefix,
    names,
    clients,
    state,
    async destroy() {
      const ignore = () => {};
      for (const rule of topology.rules) {
        await clients.events
          .send(
            new RemoveTargetsCommand({ Rule: names.rule(rule), EventBusName: names.bus, Ids: [rule.target] }),
          )
          .catch(ignore);
        await clients.events
          .send(new DeleteRuleCommand({ Name: names.rule(rule), EventBusName: names.bus }))
          .catch(ignore);
      }
      for (const schedule of topology.schedules) {
        await clients.scheduler
          .send(new DeleteScheduleCommand({ Name: names.schedule(schedule) }))
          .catch(ignore);
      }
      await clients.events.send(new DeleteEventBusCommand({ Name: names.bus })).catch(ignore);
      for (const queue of QUEUE_NAMES) {
        await clients.sqs.send(new DeleteQueueCommand({ QueueUrl: state.queues[queue].url })).catch(ignore);
        await clients.sqs
          .send(new DeleteQueueCommand({ QueueUrl: state.queues[queue].deadLetterUrl }))
          .catch(ignore);
      }
      clients.destroy();
    },
  };
}
