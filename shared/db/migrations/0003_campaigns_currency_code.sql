-- Up Migration

-- The currency a campaign's budget and bids are in. Nullable and without a default, so
-- adding it is a catalog-only change on a table of any size; the `campaign-currency`
-- backfill fills existing rows from each profile's marketplace, and the sync writes it for
-- new ones.
ALTER TABLE campaigns ADD COLUMN currency_code text;

-- Down Migration
ALTER TABLE campaigns DROP COLUMN currency_code;
