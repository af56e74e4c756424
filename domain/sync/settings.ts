import type { Config } from '../../contract/config.ts';
import { topology } from '../../contract/topology.ts';
import type { SyncSettings } from './model.ts';

/** The sync model's settings from the fleet config. */
export function syncSettings(config: Config): SyncSettings {
  return {
    staleAfterMs: config.ADFLEET_SYNC_STALE_AFTER_SECONDS * 1000,
    resumeMaxAgeMs: config.ADFLEET_SYNC_RESUME_MAX_AGE_SECONDS * 1000,
    sliceMs: config.ADFLEET_SYNC_SLICE_SECONDS * 1000,
    // A queued message older than the queue's own age alarm (topology maxMessageAgeSeconds)
    // is taken as lost; the claim folds it if it turns up after all.
    queuedExpiryMs: topology.queues['profile-sync'].maxMessageAgeSeconds * 1000,
  };
}
