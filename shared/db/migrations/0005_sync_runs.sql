-- Up Migration

-- Sync runs (see domain/sync/). One row per sync of a profile: why it ran, how far it got,
-- what it changed, how it ended. The pages of a running sync are its checkpoint (each
-- page's entity ids and the nextToken after it): a sync interrupted by a deploy resumes
-- after its last page, and the ids tell which entities the API no longer returns.

ALTER TABLE campaigns ADD COLUMN removed_at timestamptz;
ALTER TABLE ad_groups ADD COLUMN removed_at timestamptz;
ALTER TABLE keywords ADD COLUMN removed_at timestamptz;
-- Removals compare a profile's rows with the ids its sync saw.
CREATE INDEX ad_groups_profile_id_idx ON ad_groups (profile_id);
CREATE INDEX keywords_profile_id_idx ON keywords (profile_id);

CREATE TABLE sync_runs (
  id            bigserial PRIMARY KEY,
  profile_id    bigint NOT NULL REFERENCES profiles (id),
  -- The request (SyncProfile message) this run serves: its redelivery resumes this run.
  request_id    uuid NOT NULL,
  requested_at  timestamptz NOT NULL,
  trigger       text NOT NULL CHECK (trigger IN ('schedule', 'bulk', 'operator', 'follow-up')),
  -- The trigger's particulars: a bulk job id, the requests a follow-up folded together.
  trigger_detail jsonb NOT NULL DEFAULT '{}',
  status        text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'succeeded', 'failed', 'superseded')),
  started_at    timestamptz NOT NULL DEFAULT now(),
  -- Advanced with every page; NULL while released (deploy, rate-limit deferral) and
  -- waiting for its message to come back. A running run whose heartbeat is old lost its worker.
  heartbeat_at  timestamptz DEFAULT now(),
  -- The worker process running it: a process that finds its own run without holding it
  -- (after an outage cut it short) resumes it at once instead of waiting for it to go stale.
  holder        text,
  finished_at   timestamptz,
  -- When the last page was recorded: the age of the checkpoint a resume would start from.
  checkpoint_at timestamptz,
  -- { campaigns: { seen, inserted, changed, restored, removed }, adGroups: …, keywords: … }
  counts        jsonb NOT NULL DEFAULT '{}',
  pages         integer NOT NULL DEFAULT 0,
  -- Time spent waiting for the profile's rate budget (pacing and 429 Retry-After).
  throttled_ms  bigint NOT NULL DEFAULT 0,
  throttled_requests integer NOT NULL DEFAULT 0,
  attempts      integer NOT NULL DEFAULT 1,
  -- The stale run this one took over (and its checkpoint), or the one that took this over.
  resumed_from  bigint REFERENCES sync_runs (id),
  superseded_by bigint REFERENCES sync_runs (id),
  -- Why a resume started from the first page after all (e.g. the checkpoint had expired).
  resume_note   text,
  error         text,
  trace_id      text
);
CREATE INDEX sync_runs_profile_idx ON sync_runs (profile_id, started_at DESC);
CREATE INDEX sync_runs_request_idx ON sync_runs (request_id);
CREATE INDEX sync_runs_started_idx ON sync_runs (started_at DESC);

CREATE TABLE sync_run_pages (
  run_id     bigint NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('campaigns', 'adGroups', 'keywords')),
  page       integer NOT NULL CHECK (page >= 1),
  entity_ids bigint[] NOT NULL,
  -- The token for the page after this one; NULL: this was the kind's last page.
  next_token text,
  PRIMARY KEY (run_id, kind, page)
);

-- Per profile: what is queued or running, and how its syncs have gone. One row per profile,
-- locked by every request and every run start and end: the place where pile-ups are refused.
CREATE TABLE profile_sync_state (
  profile_id        bigint PRIMARY KEY REFERENCES profiles (id),
  -- A SyncProfile message was sent and no run has started since.
  queued_at         timestamptz,
  queued_request_id uuid,
  running_run_id    bigint REFERENCES sync_runs (id),
  -- Requests that arrived while a run was going; one follow-up sync serves them all.
  follow_up         jsonb,
  last_good_run_id  bigint REFERENCES sync_runs (id),
  last_failed_run_id bigint REFERENCES sync_runs (id),
  last_error        text,
  last_error_at     timestamptz,
  -- First failure since the last good sync; NULL while healthy.
  failing_since     timestamptz
);

-- Down Migration
DROP TABLE profile_sync_state;
DROP TABLE sync_run_pages;
DROP TABLE sync_runs;
DROP INDEX keywords_profile_id_idx;
DROP INDEX ad_groups_profile_id_idx;
ALTER TABLE keywords DROP COLUMN removed_at;
ALTER TABLE ad_groups DROP COLUMN removed_at;
ALTER TABLE campaigns DROP COLUMN removed_at;
