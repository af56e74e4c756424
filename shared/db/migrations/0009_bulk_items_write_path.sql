-- Up Migration

-- bulk_items, fitted to what `bulk submit` writes and to the queries that read it.
--
-- `bulk submit` COPYs every item of a file in one statement, so each index an item enters
-- when it is written, and each per-row check, is paid a million times for a million-row
-- file. An item is written PENDING and undispatched (due_at NULL): a partial index whose
-- predicate excludes that state costs the COPY nothing, so indexes over RUNNING, RETRY,
-- FAILED or dispatched items stay, and what every new item enters is kept to three:
--
--   bulk_items_pkey (job_id, id)   every query names the job: claim, record, release and
--                                  mark-due look items up by (job, id); report pages a
--                                  job's items by id; cancel, completion and the dashboard
--                                  scan one job's range. It replaces both the primary key on
--                                  id alone and the (job_id, id) index.
--   bulk_items_undispatched_idx    dispatch: a job's PENDING, undispatched items grouped by
--                                  profile (batches are per profile; plan.ts splits the
--                                  entity types itself, so entity_type left the key).
--   bulk_items_entity_idx          last submitted wins: the newest item per entity id.
--
-- Gone: (job_id, status), which served the FAILED-only reads (now a partial index that no
-- new item enters) and otherwise duplicated the job range; the sweeper's (due_at) index
-- now covers dispatched items only (due_at IS NOT NULL) — undispatched ones are found
-- through their job (domain/bulk/sweep.ts).
--
-- The foreign key to bulk_jobs goes: its check is a trigger per row, a lookup of the same
-- job a million times: a 200,000-row COPY into the table without its secondary indexes took
-- 2.8 s with the key and 1.2 s without it. The relation it guarded holds by construction: items are written only
-- by `bulk submit`, in the transaction that inserts their job (the job's id comes from that
-- INSERT), and no code deletes a job. ON DELETE CASCADE went with it; a job removed by hand
-- must have its items removed with it.
--
-- entity_id becomes bigint: Amazon's keyword and campaign ids are integers, and a bigint key
-- is a third the size of the text one and compares without collation. Submit refuses ids
-- above 2^53 - 1 (domain/bulk/rows.ts), the largest the fleet carries exactly as a JS
-- number (shared/db.ts reads int8 as numbers); queries that hand the id to the Ads API
-- read it back as text.

ALTER TABLE bulk_items DROP CONSTRAINT bulk_items_job_id_fkey;

ALTER TABLE bulk_items DROP CONSTRAINT bulk_items_pkey;
ALTER TABLE bulk_items ADD CONSTRAINT bulk_items_pkey PRIMARY KEY (job_id, id);
DROP INDEX bulk_items_job_idx;
DROP INDEX bulk_items_job_status_idx;
-- report --failed, the failure summary, retry-failed: only FAILED items, which no COPY writes.
CREATE INDEX bulk_items_failed_idx ON bulk_items (job_id, id) WHERE status = 'FAILED';

DROP INDEX bulk_items_undispatched_idx;
CREATE INDEX bulk_items_undispatched_idx ON bulk_items (job_id, profile_id, id)
  WHERE due_at IS NULL AND status = 'PENDING';

DROP INDEX bulk_items_entity_idx;
ALTER TABLE bulk_items ALTER COLUMN entity_id TYPE bigint USING entity_id::bigint;
-- entity_type is checked on the row: keyword and campaign ids rarely share a number.
CREATE INDEX bulk_items_entity_idx ON bulk_items (entity_id, job_seq);

-- Sweeper: dispatched live items whose message may be lost.
DROP INDEX bulk_items_due_idx;
CREATE INDEX bulk_items_due_idx ON bulk_items (due_at)
  WHERE status IN ('PENDING', 'RETRY') AND due_at IS NOT NULL;

-- bulk_items_running_idx (profile_id, lease_expires_at) WHERE status = 'RUNNING' stays: the
-- per-profile in-flight cap and lease recovery; no new item enters it.

-- Down Migration
DROP INDEX bulk_items_due_idx;
CREATE INDEX bulk_items_due_idx ON bulk_items (due_at) WHERE status IN ('PENDING', 'RETRY');
DROP INDEX bulk_items_entity_idx;
ALTER TABLE bulk_items ALTER COLUMN entity_id TYPE text USING entity_id::text;
CREATE INDEX bulk_items_entity_idx ON bulk_items (entity_type, entity_id, job_seq);
DROP INDEX bulk_items_undispatched_idx;
CREATE INDEX bulk_items_undispatched_idx ON bulk_items (job_id, profile_id, entity_type, id)
  WHERE due_at IS NULL AND status = 'PENDING';
DROP INDEX bulk_items_failed_idx;
CREATE INDEX bulk_items_job_status_idx ON bulk_items (job_id, status);
CREATE INDEX bulk_items_job_idx ON bulk_items (job_id, id);
ALTER TABLE bulk_items DROP CONSTRAINT bulk_items_pkey;
ALTER TABLE bulk_items ADD CONSTRAINT bulk_items_pkey PRIMARY KEY (id);
ALTER TABLE bulk_items ADD CONSTRAINT bulk_items_job_id_fkey
  FOREIGN KEY (job_id) REFERENCES bulk_jobs (id) ON DELETE CASCADE;
