import { z } from 'zod';

/** Message and event schemas of the bulk-item queue: validated before any handler runs. */

export const BulkJobSubmitted = z.object({
  jobId: z.string().min(1),
  profileIds: z.array(z.number().int().positive()).min(1),
});

/** One profile's share of a job, sized for one Ads API call. */
export const BulkItemBatch = z.object({
  jobId: z.string().min(1),
  profileId: z.number().int().positive(),
  /** Whether this is the job's last batch (skeleton bookkeeping; the real job tracks items in Postgres). */
  last: z.boolean(),
  profileIds: z.array(z.number().int().positive()),
});
