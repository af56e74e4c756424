import { countsFrom, type Queryable, type RunCounts } from './model.ts';

/**
 * The freshness read model: how fresh each profile is, what runs, what fails. One query
 * module for the worker's metrics, `adfleet sync status` and the dashboard.
 */

export interface ProfileFreshness {
  readonly profileId: number;
  readonly accountName: string;
  /** End of the last good sync; undefined: never synced. */
  readonly lastGoodSyncAt: Date | undefined;
  /** Seconds since the last good sync (never synced: since the profile appeared). */
  readonly ageSeconds: number;
  readonly pastSlo: boolean;
  readonly queuedAt: Date | undefined;
  readonly running: RunningSync | undefined;
  /** Set while the profile's syncs fail (since the first failure after its last good sync). */
  readonly failing:
    | { readonly since: Date; readonly lastError: string; readonly lastErrorAt: Date }
    | undefined;
}

export interface RunningSync {
  readonly runId: number;
  readonly startedAt: Date;
  readonly heartbeatAt: Date | undefined;
  readonly pages: number;
  readonly counts: RunCounts;
  readonly throttledMs: number;
  readonly attempts: number;
}

interface FreshnessRow {
  id: number;
  account_name: string;
  last_synced_at: Date | null;
  age_seconds: number;
  queued_at: Date | null;
  failing_since: Date | null;
  last_error: string | null;
  last_error_at: Date | null;
  run_id: number | null;
  run_started_at: Date | null;
  run_heartbeat_at: Date | null;
  run_pages: number | null;
  run_counts: unknown;
  run_throttled_ms: number | null;
  run_attempts: number | null;
}

export interface FreshnessFilter {
  readonly profileIds?: readonly number[];
  /** Only profiles past the SLO. */
  readonly staleOnly?: boolean;
}

/** Every profile, stalest first. */
export async function profileFreshness(
  db: Queryable,
  sloSeconds: number,
  filter: FreshnessFilter = {},
): Promise<ProfileFreshness[]> {
  const { rows } = await db.query<FreshnessRow>(
    `SELECT * FROM (
       SELECT p.id, p.account_name, p.last_synced_at,
              EXTRACT(EPOCH FROM now() - coalesce(p.last_synced_at, p.created_at))::float8 AS age_seconds,
              s.queued_at, s.failing_since, s.last_error, s.last_error_at,
              r.id AS run_id, r.started_at AS run_started_at, r.heartbeat_at AS run_heartbeat_at,
              r.pages AS run_pages, r.counts AS run_counts, r.throttled_ms AS run_throttled_ms,
              r.attempts AS run_attempts
         FROM profiles p
         LEFT JOIN profile_sync_state s ON s.profile_id = p.id
         LEFT JOIN sync_runs r ON r.id = s.running_run_id AND r.status = 'running'
        WHERE ($1::bigint[] IS NULL OR p.id = ANY($1::bigint[]))) AS f
      WHERE NOT $3 OR age_seconds > $2
      ORDER BY age_seconds DESC, id`,
    [filter.profileIds ?? null, sloSeconds, filter.staleOnly ?? false],
  );
  return rows.map((row) => ({
    profileId: row.id,
    accountName: row.account_name,
    lastGoodSyncAt: row.last_synced_at ?? undefined,
    ageSeconds: row.age_seconds,
    pastSlo: row.age_seconds > sloSeconds,
    queuedAt: row.queued_at ?? undefined,
    running:
      row.run_id === null
        ? undefined
        : {
            runId: row.run_id,
            startedAt: row.run_started_at as Date,
            heartbeatAt: row.run_heartbeat_at ?? undefined,
            pages: row.run_pages ?? 0,
            counts: countsFrom(row.run_counts),
            throttledMs: row.run_throttled_ms ?? 0,
            attempts: row.run_attempts ?? 1,
          },
    failing:
      row.failing_since === null
        ? undefined
        : {
            since: row.failing_since,
            lastError: row.last_error ?? '',
            lastErrorAt: row.last_error_at ?? row.failing_since,
          },
  }));
}

export interface FreshnessSummary {
  readonly profiles: number;
  /** Seconds since the least recently synced profile's last good sync (never: since it appeared). */
  readonly oldestSyncAgeSeconds: number | undefined;
  readonly pastSlo: number;
  readonly failing: number;
  readonly running: number;
}

/** The fleet-wide figures the worker emits as metrics (one scan of profiles). */
export async function freshnessSummary(db: Queryable, sloSeconds: number): Promise<FreshnessSummary> {
  const { rows } = await db.query<{
    profiles: number;
    oldest: number | null;
    past_slo: number;
    failing: number;
    running: number;
  }>(
    `SELECT count(*)::int AS profiles,
            max(age)::float8 AS oldest,
            count(*) FILTER (WHERE age > $1)::int AS past_slo,
            count(*) FILTER (WHERE failing)::int AS failing,
            count(*) FILTER (WHERE running)::int AS running
       FROM (SELECT EXTRACT(EPOCH FROM now() - coalesce(p.last_synced_at, p.created_at)) AS age,
                    s.failing_since IS NOT NULL AS failing, s.running_run_id IS NOT NULL AS running
               FROM profiles p LEFT JOIN profile_sync_state s ON s.profile_id = p.id) AS f`,
    [sloSeconds],
  );
  const row = rows[0];
  return {
    profiles: row?.profiles ?? 0,
    oldestSyncAgeSeconds: row?.oldest ?? undefined,
    pastSlo: row?.past_slo ?? 0,
    failing: row?.failing ?? 0,
    running: row?.running ?? 0,
  };
}

export interface RunRecord {
  readonly runId: number;
  readonly profileId: number;
  readonly trigger: string;
  readonly triggerDetail: Record<string, unknown>;
  readonly status: string;
  readonly startedAt: Date;
  readonly finishedAt: Date | undefined;
  readonly durationMs: number | undefined;
  readonly counts: RunCounts;
  readonly pages: number;
  readonly throttledMs: number;
  readonly throttledRequests: number;
  readonly attempts: number;
  readonly resumeNote: string | undefined;
  readonly error: string | undefined;
  readonly traceId: string | undefined;
}

/** Runs, newest first: of some profiles, or of everything since an instant. */
export async function listRuns(
  db: Queryable,
  filter: { profileIds?: readonly number[]; since?: Date; traceId?: string; limit?: number } = {},
): Promise<RunRecord[]> {
  const { rows } = await db.query(
    `SELECT id, profile_id, trigger, trigger_detail, status, started_at, finished_at,
            (EXTRACT(EPOCH FROM finished_at - started_at) * 1000)::float8 AS duration_ms,
            counts, pages, throttled_ms, throttled_requests, attempts, resume_note, error, trace_id
       FROM sync_runs
      WHERE ($1::bigint[] IS NULL OR profile_id = ANY($1::bigint[]))
        AND ($2::timestamptz IS NULL OR started_at >= $2)
        AND ($3::text IS NULL OR trace_id = $3)
      ORDER BY id DESC LIMIT $4`,
    [filter.profileIds ?? null, filter.since ?? null, filter.traceId ?? null, filter.limit ?? 50],
  );
  return rows.map((row) => ({
    runId: row.id,
    profileId: row.profile_id,
    trigger: row.trigger,
    triggerDetail: row.trigger_detail,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at ?? undefined,
    durationMs: row.duration_ms ?? undefined,
    counts: countsFrom(row.counts),
    pages: row.pages,
    throttledMs: row.throttled_ms,
    throttledRequests: row.throttled_requests,
    attempts: row.attempts,
    resumeNote: row.resume_note ?? undefined,
    error: row.error ?? undefined,
    traceId: row.trace_id ?? undefined,
  }));
}
