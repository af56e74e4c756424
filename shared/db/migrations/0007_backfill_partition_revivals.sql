-- Up Migration

-- How often the watchdog restarted a partition's chain since that chain last committed a
-- batch. Past a stated limit (domain/backfill/partitions.ts, MAX_REVIVALS) the watchdog
-- stops restarting it and fails the partition with the reason, instead of reviving a
-- chain that keeps dying while the job says `running`.
ALTER TABLE backfill_partitions ADD COLUMN revivals integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE backfill_partitions DROP COLUMN revivals;
