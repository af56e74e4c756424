-- Up Migration

-- The advertising model the fleet keeps in sync with the Amazon Ads API. Ids are Amazon's
-- (numeric strings that fit bigint); rows are upserted by id, so a duplicate sync changes nothing.

CREATE TABLE profiles (
  id            bigint PRIMARY KEY,
  country_code  text NOT NULL,
  currency_code text NOT NULL,
  marketplace   text NOT NULL,
  account_name  text NOT NULL,
  -- Freshness: when this profile's last sync finished without error.
  last_synced_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
  id            bigint PRIMARY KEY,
  profile_id    bigint NOT NULL REFERENCES profiles (id),
  name          text NOT NULL,
  state         text NOT NULL CHECK (state IN ('ENABLED', 'PAUSED', 'ARCHIVED')),
  targeting_type text NOT NULL,
  daily_budget  numeric(12, 2) NOT NULL,
  synced_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_profile_id_idx ON campaigns (profile_id);

CREATE TABLE ad_groups (
  id            bigint PRIMARY KEY,
  campaign_id   bigint NOT NULL REFERENCES campaigns (id),
  profile_id    bigint NOT NULL REFERENCES profiles (id),
  name          text NOT NULL,
  state         text NOT NULL CHECK (state IN ('ENABLED', 'PAUSED', 'ARCHIVED')),
  default_bid   numeric(12, 2) NOT NULL,
  synced_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ad_groups_campaign_id_idx ON ad_groups (campaign_id);

CREATE TABLE keywords (
  id            bigint PRIMARY KEY,
  ad_group_id   bigint NOT NULL REFERENCES ad_groups (id),
  campaign_id   bigint NOT NULL REFERENCES campaigns (id),
  profile_id    bigint NOT NULL REFERENCES profiles (id),
  keyword_text  text NOT NULL,
  match_type    text NOT NULL CHECK (match_type IN ('EXACT', 'PHRASE', 'BROAD')),
  state         text NOT NULL CHECK (state IN ('ENABLED', 'PAUSED', 'ARCHIVED')),
  bid           numeric(12, 2) NOT NULL,
  synced_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keywords_ad_group_id_idx ON keywords (ad_group_id);

-- Down Migration
DROP TABLE keywords;
DROP TABLE ad_groups;
DROP TABLE campaigns;
DROP TABLE profiles;
