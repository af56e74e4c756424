-- Up Migration

-- Backfill jobs (see workers/backfill-chunk/). A job walks one table's id space, split into
-- partitions; each partition is one chain of chunk messages with its own durable cursor.
-- Cursor, counters and throttle state live on the partition row because that row is what
-- each batch's transaction locks and advances; the job row carries the lifecycle, the
-- bounds fixed at start, and a summary refreshed from its partitions after every chunk.

CREATE TABLE backfill_jobs (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name              text NOT NULL,
  status            text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'pausing', 'paused', 'cancelling', 'cancelled', 'completed', 'failed')),
  batch_size        integer NOT NULL CHECK (batch_size > 0),
  batches_per_chunk integer NOT NULL CHECK (batches_per_chunk > 0),
  parallel          integer NOT NULL CHECK (parallel > 0),
  -- Operator ceiling for the whole job, rows per second; NULL: no ceiling.
  max_rate          double precision CHECK (max_rate > 0),
  -- The effective throttle policy (the backfill's, with operator overrides).
  throttle_policy   jsonb NOT NULL,
  -- Id space at start: ids in (low_id, high_water_id] are processed; rows inserted later
  -- are the application's to fill.
  low_id            bigint NOT NULL,
  high_water_id     bigint NOT NULL,
  rows_estimate     bigint NOT NULL,
  -- Summary of the partitions, refreshed after every chunk (the partitions are the truth).
  rows_processed    bigint NOT NULL DEFAULT 0,
  current_rate      double precision NOT NULL DEFAULT 0,
  last_throttle     jsonb,
  error             text,
  -- The trace the job started in (the CLI span); later chunk traces link to it.
  trace_id          text,
  span_id           text,
  -- A partition whose chain shows no sign of life for this long is restarted from its cursor.
  stall_after_ms    integer NOT NULL DEFAULT 120000 CHECK (stall_after_ms > 0),
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz
);
-- One live job per backfill: two chains rewriting the same rows help nobody.
CREATE UNIQUE INDEX backfill_jobs_one_live_per_name ON backfill_jobs (name)
  WHERE status IN ('running', 'pausing', 'paused', 'cancelling');
CREATE INDEX backfill_jobs_created_at_idx ON backfill_jobs (created_at DESC);

CREATE TABLE backfill_partitions (
  job_id            uuid NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
  partition         integer NOT NULL CHECK (partition >= 0),
  status            text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'paused', 'completed', 'cancelled', 'failed')),
  -- This partition's ids: (range_start, range_end].
  range_start       bigint NOT NULL,
  range_end         bigint NOT NULL,
  -- Last id processed. Every batch advances it with compare-and-set in the batch's own
  -- transaction: a chunk message carrying any other cursor is stale and does nothing.
  cursor            bigint NOT NULL,
  -- The SQS message whose batch last advanced the cursor: its redelivery (after a crash
  -- between commit and sending the next chunk) may carry on from the cursor it moved.
  owner_message_id  text,
  rows_processed    bigint NOT NULL DEFAULT 0,
  rows_written      bigint NOT NULL DEFAULT 0,
  batches           integer NOT NULL DEFAULT 0,
  chunks            integer NOT NULL DEFAULT 0,
  -- Rows per second over recent batches (EWMA).
  current_rate      double precision NOT NULL DEFAULT 0,
  -- The throttle's current limit, rows per second; NULL: unlimited.
  rate_limit        double precision,
  throttle_state    text NOT NULL DEFAULT 'healthy'
                    CHECK (throttle_state IN ('healthy', 'slowed', 'paused', 'ceiling')),
  -- The last throttle decision with the health readings behind it.
  last_throttle     jsonb,
  throttled_ms      bigint NOT NULL DEFAULT 0,
  -- Trace of the chain's current segment (a new one starts every N chunks).
  trace_id          text,
  error             text,
  -- Past this instant without progress, the chain is considered lost and restarted.
  stall_deadline    timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, partition),
  CHECK (range_start <= cursor AND cursor <= range_end)
);
CREATE INDEX backfill_partitions_live_idx ON backfill_partitions (stall_deadline)
  WHERE status IN ('running', 'paused');

-- Every change of a partition's throttle state, with the readings that caused it.
CREATE TABLE backfill_throttle_events (
  id                 bigserial PRIMARY KEY,
  job_id             uuid NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
  partition          integer NOT NULL,
  at                 timestamptz NOT NULL DEFAULT now(),
  state              text NOT NULL,
  reason             text NOT NULL,
  probe_ms           double precision,
  active_connections integer,
  replication_lag_ms double precision,
  rate_limit         double precision
);
CREATE INDEX backfill_throttle_events_job_idx ON backfill_throttle_events (job_id, at);

-- The health probe's heartbeat: a tiny write and commit per probe, timed. Its latency is
-- what a write costs right now (WAL flush, I/O, lock queues), pt-heartbeat style.
CREATE TABLE backfill_heartbeats (
  job_id    uuid NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
  partition integer NOT NULL,
  beat_at   timestamptz NOT NULL,
  PRIMARY KEY (job_id, partition)
);

-- Down Migration
DROP TABLE backfill_heartbeats;
DROP TABLE backfill_throttle_events;
DROP TABLE backfill_partitions;
DROP TABLE backfill_jobs;
