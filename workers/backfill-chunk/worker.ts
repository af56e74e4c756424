import { z } from 'zod';
import { defineWorker, on } from '../../shared/worker.ts';

/**
 * backfill-chunk: walking skeleton. Backfill jobs, chunks and checkpoints arrive with the
 * backfill engine; until then a request is acknowledged and logged.
 */
export const backfillChunkWorker = defineWorker({
  name: 'backfill-chunk',
  queue: 'backfill-chunk',
  setup: async () => ({}),
  handlers: {
    BackfillRequested: on(z.object({ jobId: z.string() }).loose(), async (request, { logger }) => {
      logger.info({ jobId: request.jobId }, 'backfill requested');
    }),
  },
});
