-- Up Migration

-- Bulk jobs (domain/bulk/, workers/bulk-item/). A job is one submitted file of bid, budget
-- and state changes; each row of the file is one item, applied to Amazon in per-profile
-- batches and ending SUCCEEDED, FAILED (with Amazon's code and message) or CANCELLED.

-- Submit order of jobs: "the later-submitted job wins" compares these numbers.
CREATE SEQUENCE bulk_job_seq;

CREATE TABLE bulk_jobs (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq            bigint NOT NULL UNIQUE DEFAULT nextval('bulk_job_seq'),
  kind           text NOT NULL DEFAULT 'entity-update',
  status         text NOT NULL DEFAULT 'SUBMITTED'
                 CHECK (status IN ('SUBMITTED', 'RUNNING', 'CANCELLING', 'COMPLETED',
                                   'COMPLETED_WITH_ERRORS', 'CANCELLED')),
  file_name      text NOT NULL,
  submitted_by   text NOT NULL,
  -- Item counts per status, kept equal to the items' statuses by a trigger on bulk_items.
  total          integer NOT NULL DEFAULT 0,
  pending        integer NOT NULL DEFAULT 0,
  running        integer NOT NULL DEFAULT 0,
  retry          integer NOT NULL DEFAULT 0,
  succeeded      integer NOT NULL DEFAULT 0,
  failed         integer NOT NULL DEFAULT 0,
  cancelled      integer NOT NULL DEFAULT 0,
  -- Set by `bulk cancel`: the job ends CANCELLED rather than COMPLETED.
  cancel_requested_at timestamptz,
  error          text,
  -- The trace of `bulk submit` (W3C carrier): messages the sweeper re-sends stay in it.
  trace_id       text,
  trace_carrier  jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now(),
  dispatched_at  timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE INDEX bulk_jobs_created_at_idx ON bulk_jobs (created_at DESC);
CREATE INDEX bulk_jobs_live_idx ON bulk_jobs (status) WHERE status IN ('RUNNING', 'CANCELLING');

CREATE TABLE bulk_items (
  id             bigserial PRIMARY KEY,
  job_id         uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
  -- The job's submit sequence, copied here so the supersede check is one index probe.
  job_seq        bigint NOT NULL,
  -- Line of the submitted file (CSV: the header is line 1).
  line           integer NOT NULL,
  profile_id     bigint NOT NULL,
  entity_type    text NOT NULL CHECK (entity_type IN ('keyword', 'campaign')),
  entity_id      text NOT NULL,
  -- The requested change: keyword {bid?, state?}, campaign {budget?, state?}.
  change         jsonb NOT NULL,
  status         text NOT NULL DEFAULT 'PENDING'
                 CHECK (status IN ('PENDING', 'RUNNING', 'RETRY', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  attempts       integer NOT NULL DEFAULT 0,
  -- Who applies it now (one claim of one batch) and until when; past it the item is recovered.
  lease_owner    text,
  lease_expires_at timestamptz,
  -- When the message carrying this item is due; NULL until dispatched. Long past it the
  -- sweeper re-sends the item (its message was lost).
  due_at         timestamptz,
  -- Amazon's answer: the 207 success entry, or its errors; code and message of a failure.
  response       jsonb,
  error_code     text,
  error_message  text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
-- Report and status: a job's items in file order, optionally by status.
CREATE INDEX bulk_items_job_idx ON bulk_items (job_id, id);
CREATE INDEX bulk_items_job_status_idx ON bulk_items (job_id, status);
-- Dispatch: a job's undispatched items grouped by profile and kind.
CREATE INDEX bulk_items_undispatched_idx ON bulk_items (job_id, profile_id, entity_type, id)
  WHERE due_at IS NULL AND status = 'PENDING';
-- Last submitted wins: the newest item per entity.
CREATE INDEX bulk_items_entity_idx ON bulk_items (entity_type, entity_id, job_seq);
-- Per-profile in-flight cap, lease recovery.
CREATE INDEX bulk_items_running_idx ON bulk_items (profile_id, lease_expires_at) WHERE status = 'RUNNING';
-- Sweeper: live items whose message may be lost.
CREATE INDEX bulk_items_due_idx ON bulk_items (due_at) WHERE status IN ('PENDING', 'RETRY');

-- Keeps bulk_jobs' per-status counts equal to its items' statuses: every UPDATE of items
-- moves the counts by what it changed, in the same transaction (and, by locking the job
-- row, serialises the completion check of racing batches).
CREATE FUNCTION bulk_items_count_statuses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  WITH delta AS (
    SELECT job_id, status, -count(*)::int AS n FROM old_items GROUP BY job_id, status
    UNION ALL
    SELECT job_id, status, count(*)::int AS n FROM new_items GROUP BY job_id, status
  ), per_job AS (
    SELECT job_id,
           coalesce(sum(n) FILTER (WHERE status = 'PENDING'), 0) AS pending,
           coalesce(sum(n) FILTER (WHERE status = 'RUNNING'), 0) AS running,
           coalesce(sum(n) FILTER (WHERE status = 'RETRY'), 0) AS retry,
           coalesce(sum(n) FILTER (WHERE status = 'SUCCEEDED'), 0) AS succeeded,
           coalesce(sum(n) FILTER (WHERE status = 'FAILED'), 0) AS failed,
           coalesce(sum(n) FILTER (WHERE status = 'CANCELLED'), 0) AS cancelled
      FROM delta GROUP BY job_id
  )
  UPDATE bulk_jobs j
     SET pending = j.pending + d.pending, running = j.running + d.running,
         retry = j.retry + d.retry, succeeded = j.succeeded + d.succeeded,
         failed = j.failed + d.failed, cancelled = j.cancelled + d.cancelled,
         updated_at = now()
    FROM per_job d
   WHERE j.id = d.job_id
     AND (d.pending, d.running, d.retry, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0, 0);
  RETURN NULL;
END $$;
CREATE TRIGGER bulk_items_count_statuses AFTER UPDATE ON bulk_items
  REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
  FOR EACH STATEMENT EXECUTE FUNCTION bulk_items_count_statuses();

-- BulkJobCompleted events recorded with the completion, in its transaction, and published
-- after commit by whoever sees them unpublished (the completing handler, else the sweeper).
CREATE TABLE bulk_outbox (
  id             bigserial PRIMARY KEY,
  job_id         uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
  detail_type    text NOT NULL,
  detail         jsonb NOT NULL,
  -- The completing span's trace context: the event stays in the job's trace.
  trace_carrier  jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now(),
  published_at   timestamptz
);
CREATE INDEX bulk_outbox_pending_idx ON bulk_outbox (created_at) WHERE published_at IS NULL;

-- Down Migration
DROP TABLE bulk_outbox;
DROP TRIGGER bulk_items_count_statuses ON bulk_items;
DROP FUNCTION bulk_items_count_statuses();
DROP TABLE bulk_items;
DROP TABLE bulk_jobs;
DROP SEQUENCE bulk_job_seq;
