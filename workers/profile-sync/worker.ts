import { defineWorker, on } from '../../shared/worker.ts';
import { BulkJobCompleted, SyncAllProfilesRequested, SyncProfile } from './messages.ts';

/**
 * profile-sync: fans "sync all" and "a bulk job finished" out into one SyncProfile message
 * per profile, and syncs each profile.
 *
 * Walking skeleton: the per-profile sync through the Ads API (paging campaigns, ad groups
 * and keywords into Postgres within the profile's rate limit) is not wired in yet; a sync
 * announces ProfileSynced so the rest of the workflow, and its trace, are whole.
 */
export const profileSyncWorker = defineWorker({
  name: 'profile-sync',
  queue: 'profile-sync',
  setup: async () => ({}),
  handlers: {
    SyncAllProfilesRequested: on(SyncAllProfilesRequested, async (_request, { logger }) => {
      logger.info('sync of all profiles requested: profile listing is not wired in yet');
    }),
    BulkJobCompleted: on(BulkJobCompleted, async (job, { fleet, logger }) => {
      await fleet.sendBatch(
        'profile-sync',
        job.profileIds.map((profileId) => ({
          type: 'SyncProfile',
          payload: { profileId, reason: `bulk job ${job.jobId}` },
        })),
      );
      logger.info(
        { jobId: job.jobId, profiles: job.profileIds.length },
        're-sync of touched profiles enqueued',
      );
    }),
    SyncProfile: on(SyncProfile, async (request, { fleet, logger }) => {
      await fleet.publish('ProfileSynced', { profileId: request.profileId, reason: request.reason });
      logger.info({ profileId: request.profileId }, 'profile synced');
    }),
  },
});
