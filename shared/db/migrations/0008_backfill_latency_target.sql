-- Up Migration

-- The latency-targeted throttle (domain/backfill/latency-target.ts). Its settings live in
-- the job's throttle_policy (`latencyTarget`, NULL when the job is throttled on database
-- health only); these columns record what it decided and why.

-- 'learning': the chain holds its batches while the throttle learns production's idle
-- latency (before the first batch, and again after a long stretch without a quiet moment).
ALTER TABLE backfill_partitions DROP CONSTRAINT backfill_partitions_throttle_state_check;
ALTER TABLE backfill_partitions ADD CONSTRAINT backfill_partitions_throttle_state_check
  CHECK (throttle_state IN ('healthy', 'slowed', 'paused', 'ceiling', 'learning'));

-- Per decision: the target ratio in force, the baseline (p99 of the probe while no batch
-- ran), the probe's recent p99, and the batch size the throttle chose.
ALTER TABLE backfill_throttle_events
  ADD COLUMN target_ratio    double precision,
  ADD COLUMN baseline_p99_ms double precision,
  ADD COLUMN probe_p99_ms    double precision,
  ADD COLUMN batch_size      integer;

-- Down Migration
ALTER TABLE backfill_throttle_events
  DROP COLUMN batch_size,
  DROP COLUMN probe_p99_ms,
  DROP COLUMN baseline_p99_ms,
  DROP COLUMN target_ratio;
ALTER TABLE backfill_partitions DROP CONSTRAINT backfill_partitions_throttle_state_check;
ALTER TABLE backfill_partitions ADD CONSTRAINT backfill_partitions_throttle_state_check
  CHECK (throttle_state IN ('healthy', 'slowed', 'paused', 'ceiling'));
