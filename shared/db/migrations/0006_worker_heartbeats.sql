-- Up Migration

-- What runs: one row per worker process (an ECS task, locally a process), upserted by the
-- chassis every few seconds (shared/runtime/heartbeat.ts) and deleted on a clean stop. A
-- row whose beat is older than a few intervals belongs to a process that died without
-- stopping (kill -9, OOM, a lost host): `adfleet status` marks it stale.
CREATE TABLE worker_heartbeats (
  instance_id      uuid PRIMARY KEY,
  service          text NOT NULL,
  host             text NOT NULL,
  -- The ECS task ARN (from the task metadata endpoint); NULL outside ECS.
  task             text,
  pid              integer NOT NULL,
  version          text NOT NULL,
  started_at       timestamptz NOT NULL,
  beat_at          timestamptz NOT NULL DEFAULT now(),
  -- How often this process beats: staleness is judged against its own pace.
  interval_ms      integer NOT NULL CHECK (interval_ms > 0),
  last_poll_at     timestamptz,
  in_flight        integer NOT NULL DEFAULT 0,
  handled          bigint NOT NULL DEFAULT 0,
  failed           bigint NOT NULL DEFAULT 0,
  ready            boolean NOT NULL,
  not_ready_reason text
);
CREATE INDEX worker_heartbeats_service_idx ON worker_heartbeats (service, beat_at DESC);

-- Rows per second over time for the dashboard's backfill chart. The chains refresh their
-- job's summary after every chunk; this trigger keeps at most one sample per job every five
-- seconds of those refreshes, so the history costs the chains nothing they do not already
-- write, and needs no change to how they write it.
CREATE TABLE backfill_progress_samples (
  job_id         uuid NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
  at             timestamptz NOT NULL DEFAULT now(),
  rows_processed bigint NOT NULL,
  current_rate   double precision NOT NULL,
  PRIMARY KEY (job_id, at)
);

CREATE FUNCTION record_backfill_progress_sample() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.rows_processed IS DISTINCT FROM OLD.rows_processed OR NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO backfill_progress_samples (job_id, at, rows_processed, current_rate)
    SELECT NEW.id, now(), NEW.rows_processed, NEW.current_rate
     WHERE NOT EXISTS (
       SELECT 1 FROM backfill_progress_samples
        WHERE job_id = NEW.id AND at > now() - interval '5 seconds')
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER backfill_jobs_progress_sample
  AFTER UPDATE OF rows_processed, status ON backfill_jobs
  FOR EACH ROW EXECUTE FUNCTION record_backfill_progress_sample();

-- Down Migration
DROP TRIGGER backfill_jobs_progress_sample ON backfill_jobs;
DROP FUNCTION record_backfill_progress_sample();
DROP TABLE backfill_progress_samples;
DROP TABLE worker_heartbeats;
