-- Up Migration

-- A large profile's keywords are listed in parts (disjoint campaign filters) side by side, so
-- its sync is not one request at a time: each part has its own pages and its own nextToken,
-- so the checkpoint is per (kind, part). `parts` is how many parts the kind was split into
-- (the same on each of its rows), so a resumed run lists the same parts again.
ALTER TABLE sync_run_pages
  ADD COLUMN part smallint NOT NULL DEFAULT 0,
  ADD COLUMN parts smallint NOT NULL DEFAULT 1,
  ADD CONSTRAINT sync_run_pages_part_check CHECK (part >= 0 AND part < parts);
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_pkey;
ALTER TABLE sync_run_pages ADD PRIMARY KEY (run_id, kind, part, page);

-- Down Migration
DELETE FROM sync_run_pages WHERE part > 0;
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_pkey;
ALTER TABLE sync_run_pages ADD PRIMARY KEY (run_id, kind, page);
ALTER TABLE sync_run_pages DROP CONSTRAINT sync_run_pages_part_check, DROP COLUMN parts, DROP COLUMN part;
