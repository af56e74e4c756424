import type pg from 'pg';
import { freshnessSummary, type ProfileFreshness, profileFreshness } from '../sync/freshness.ts';

/**
 * Profile freshness and syncs, through the sync model's own freshness read model
 * (domain/sync/freshness.ts, the one the worker's metrics and `adfleet sync status` use):
 * how many profiles are past the freshness objective, which fail and why, and which running
 * syncs lost their worker (no page recorded for longer than the stale limit).
 */

type Queryable = Pick<pg.ClientBase, 'query'>;

export type { ProfileFreshness };

export interface ProfilesSummary {
  readonly total: number;
  /** Past the freshness objective (never synced: counted from when the profile appeared). */
  readonly stale: number;
  readonly failing: number;
  readonly running: number;
  readonly oldestAgeSeconds: number | null;
  readonly freshnessObjectiveSeconds: number;
  /** Stalest first. */
  readonly stalest: readonly ProfileFreshness[];
  /** Failing longest first. */
  readonly failingProfiles: readonly ProfileFreshness[];
  /** Running syncs whose last page is older than the stale limit: their worker died. */
  readonly lostSyncs: readonly ProfileFreshness[];
}

export interface ProfilesOptions {
  readonly freshnessSeconds: number;
  readonly staleAfterSeconds: number;
  readonly limit?: number;
}

export async function readProfiles(db: Queryable, options: ProfilesOptions): Promise<ProfilesSummary> {
  const [summary, profiles] = await Promise.all([
    freshnessSummary(db, options.freshnessSeconds),
    profileFreshness(db, options.freshnessSeconds),
  ]);
  const limit = options.limit ?? 20;
  const now = Date.now();
  return {
    total: summary.profiles,
    stale: summary.pastSlo,
    failing: summary.failing,
    running: summary.running,
    oldestAgeSeconds: summary.oldestSyncAgeSeconds ?? null,
    freshnessObjectiveSeconds: options.freshnessSeconds,
    stalest: profiles.slice(0, limit),
    failingProfiles: profiles
      .filter((profile) => profile.failing !== undefined)
      .sort((a, b) => (a.failing?.since.getTime() ?? 0) - (b.failing?.since.getTime() ?? 0))
      .slice(0, limit),
    lostSyncs: profiles
      .filter(
        (profile) =>
          profile.running?.heartbeatAt !== undefined &&
          now - profile.running.heartbeatAt.getTime() > options.staleAfterSeconds * 1000,
      )
      .slice(0, limit),
  };
}
