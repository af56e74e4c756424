import { z } from 'zod';

/** Message and event schemas of the profile-sync queue: validated before any handler runs. */

export const SyncAllProfilesRequested = z.object({
  reason: z.string().optional(),
});

/** From the bulk-item worker, via the bus: re-sync what a finished job touched. */
export const BulkJobCompleted = z.object({
  jobId: z.string().min(1),
  profileIds: z.array(z.number().int().positive()),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});

export const SyncProfile = z.object({
  profileId: z.number().int().positive(),
  reason: z.string(),
});
