import { defineWorker } from '../../shared/worker.ts';

/**
 * bulk-item: fans a submitted bulk job out into per-profile item batches on its own queue,
 * applies each batch, and announces BulkJobCompleted when the job is done.
 *
 * Walking skeleton: jobs are not yet stored in Postgres nor applied through the Ads API's
 * 207 multi-status. It accepts the catalog's message types and acknowledges them; nothing
 * is applied and no completion is announced.
 */
export const bulkItemWorker = defineWorker({
  queue: 'bulk-item',
  setup: async () => ({}),
  handlers: {
    BulkJobSubmitted: async (job, { logger }) => {
      logger.warn({ jobId: job.jobId }, 'bulk jobs are not applied yet');
    },
    BulkItemBatch: async (batch, { logger }) => {
      logger.warn(
        { jobId: batch.jobId, profileId: batch.profileId },
        'bulk item batches are not applied yet',
      );
    },
  },
});
