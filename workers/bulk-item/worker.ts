import { defineWorker, on } from '../../shared/worker.ts';
import { BulkItemBatch, BulkJobSubmitted } from './messages.ts';

/**
 * bulk-item: fans a submitted bulk job out into per-profile item batches on its own queue,
 * applies each batch, and announces BulkJobCompleted when the job is done.
 *
 * Walking skeleton: items are not yet stored in Postgres nor applied through the Ads API's
 * 207 multi-status; the hops, the events and the trace are the real ones.
 */
export const bulkItemWorker = defineWorker({
  name: 'bulk-item',
  queue: 'bulk-item',
  setup: async () => ({}),
  handlers: {
    BulkJobSubmitted: on(BulkJobSubmitted, async (job, { fleet, logger }) => {
      await fleet.sendBatch(
        'bulk-item',
        job.profileIds.map((profileId, index) => ({
          type: 'BulkItemBatch',
          payload: {
            jobId: job.jobId,
            profileId,
            last: index === job.profileIds.length - 1,
            profileIds: job.profileIds,
          },
        })),
      );
      logger.info({ jobId: job.jobId, batches: job.profileIds.length }, 'bulk job fanned out');
    }),
    BulkItemBatch: on(BulkItemBatch, async (batch, { fleet, logger }) => {
      logger.info({ jobId: batch.jobId, profileId: batch.profileId }, 'item batch handled');
      if (batch.last) {
        await fleet.publish('BulkJobCompleted', {
          jobId: batch.jobId,
          profileIds: batch.profileIds,
          succeeded: batch.profileIds.length,
          failed: 0,
        });
      }
    }),
  },
});
