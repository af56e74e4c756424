import { describe, expect, it } from 'vitest';
import { catalog, events, messages } from '../../contract/events.ts';
import { QUEUE_NAMES, type QueueName, topology } from '../../contract/topology.ts';
import type { AnyWorkerSpec } from '../../shared/worker.ts';
import { backfillChunkWorker } from '../../workers/backfill-chunk/worker.ts';
import { bulkItemWorker } from '../../workers/bulk-item/worker.ts';
import { profileSyncWorker } from '../../workers/profile-sync/worker.ts';

/**
 * The catalog, the topology and the workers agree: every type that reaches a queue (an event
 * a rule routes there, a message whose queue it is) has a handler in that queue's worker,
 * and every handler's type reaches its queue. The compiler checks the same for each
 * `defineWorker`; this holds it for what actually runs.
 */

const WORKERS: Record<QueueName, AnyWorkerSpec> = {
  'profile-sync': profileSyncWorker,
  'bulk-item': bulkItemWorker,
  'backfill-chunk': backfillChunkWorker,
};

function inbound(queue: QueueName): string[] {
  const routed = topology.rules.filter((rule) => rule.target === queue).flatMap((rule) => rule.detailTypes);
  const sent = Object.entries(messages)
    .filter(([, spec]) => spec.queue === queue)
    .map(([type]) => type);
  return [...new Set([...routed, ...sent])].sort();
}

describe('event catalog', () => {
  it.each(QUEUE_NAMES)('%s handles exactly the types that reach its queue', (queue) => {
    const worker = WORKERS[queue];
    expect(worker.queue).toBe(queue);
    expect(Object.keys(worker.handlers).sort()).toEqual(inbound(queue));
  });

  it('validates each handler against the schema the catalog declares', () => {
    for (const worker of Object.values(WORKERS)) {
      for (const [type, handler] of Object.entries(worker.handlers)) {
        expect(handler.schema).toBe(catalog[type as keyof typeof catalog].schema);
      }
    }
  });

  it('routes every catalog event somewhere, and schedules only catalog events', () => {
    const routed = new Set<string>(topology.rules.flatMap((rule) => rule.detailTypes));
    // ProfileSynced is announced for consumers outside the fleet (none of its queues).
    const unrouted = Object.keys(events).filter((type) => !routed.has(type));
    expect(unrouted).toEqual(['ProfileSynced']);
    for (const schedule of topology.schedules) expect(Object.keys(events)).toContain(schedule.detailType);
  });

  it('keeps event and message type names apart', () => {
    const eventTypes = new Set(Object.keys(events));
    expect(Object.keys(messages).filter((type) => eventTypes.has(type))).toEqual([]);
  });
});
