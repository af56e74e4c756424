/**
 * The fleet's services: one worker per queue, named after it. The topology (queues, rules),
 * the event catalog (who sends what where), the workers and the CDK stack all take their
 * names from this one list.
 */
export const QUEUE_NAMES = ['profile-sync', 'bulk-item', 'backfill-chunk'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
