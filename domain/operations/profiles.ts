import type pg from 'pg';
import { PROFILE_SYNC_FRESHNESS_SECONDS } from '../../contract/metrics.ts';

/** Profile freshness: the age of each profile's last good sync (profiles.last_synced_at). */

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ProfileFreshness {
  readonly profileId: number;
  readonly accountName: string;
  readonly marketplace: string;
  readonly lastSyncedAt: Date | null;
  /** Null: never synced. */
  readonly ageSeconds: number | null;
  readonly stale: boolean;
}

export interface ProfilesSummary {
  readonly total: number;
  readonly neverSynced: number;
  /** Never synced, or not within the freshness objective. */
  readonly stale: number;
  readonly oldestAgeSeconds: number | null;
  readonly freshnessObjectiveSeconds: number;
  /** Stalest first. */
  readonly stalest: readonly ProfileFreshness[];
}

export async function readProfiles(
  db: Queryable,
  options: { limit?: number; freshnessSeconds?: number } = {},
): Promise<ProfilesSummary> {
  const objective = options.freshnessSeconds ?? PROFILE_SYNC_FRESHNESS_SECONDS;
  const [summary, stalest] = await Promise.all([
    db.query<{ total: number; neverSynced: number; stale: number; oldestAgeSeconds: number | null }>(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE last_synced_at IS NULL)::int AS "neverSynced",
              count(*) FILTER (WHERE last_synced_at IS NULL
                                  OR last_synced_at < now() - make_interval(secs => $1))::int AS stale,
              extract(epoch FROM now() - min(last_synced_at))::float8 AS "oldestAgeSeconds"
         FROM profiles`,
      [objective],
    ),
    db.query<ProfileFreshness>(
      `SELECT id AS "profileId", account_name AS "accountName", marketplace, last_synced_at AS "lastSyncedAt",
              extract(epoch FROM now() - last_synced_at)::float8 AS "ageSeconds",
              (last_synced_at IS NULL OR last_synced_at < now() - make_interval(secs => $1)) AS stale
         FROM profiles ORDER BY last_synced_at ASC NULLS FIRST, id LIMIT $2`,
      [objective, options.limit ?? 20],
    ),
  ]);
  const row = summary.rows[0] ?? { total: 0, neverSynced: 0, stale: 0, oldestAgeSeconds: null };
  return { ...row, freshnessObjectiveSeconds: objective, stalest: stalest.rows };
}
