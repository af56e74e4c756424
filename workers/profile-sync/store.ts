import type pg from 'pg';
import type { AdGroup, Campaign, Keyword, Profile } from '../../shared/ads/types.ts';

/**
 * profile-sync's writes: one upsert per entity type, a page at a time (`unnest` of column
 * arrays: one round trip per page, whatever its size). Upserts by Amazon's id make a
 * repeated or duplicate sync change nothing but `synced_at`.
 */

type Queryable = Pick<pg.Pool, 'query'>;

export async function upsertProfiles(db: Queryable, profiles: readonly Profile[]): Promise<void> {
  if (profiles.length === 0) return;
  await db.query(
    `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
     ON CONFLICT (id) DO UPDATE SET
       country_code = EXCLUDED.country_code, currency_code = EXCLUDED.currency_code,
       marketplace = EXCLUDED.marketplace, account_name = EXCLUDED.account_name, updated_at = now()`,
    [
      profiles.map((profile) => profile.profileId),
      profiles.map((profile) => profile.countryCode),
      profiles.map((profile) => profile.currencyCode),
      profiles.map((profile) => profile.accountInfo.marketplaceStringId),
      profiles.map((profile) => profile.accountInfo.name),
    ],
  );
}

export async function profileExists(db: Queryable, profileId: number): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM profiles WHERE id = $1', [profileId]);
  return rowCount === 1;
}

export async function upsertCampaigns(db: Queryable, profileId: number, campaigns: readonly Campaign[]) {
  if (campaigns.length === 0) return;
  // New campaigns get the profile's currency; the campaign-currency backfill fills old ones.
  await db.query(
    `INSERT INTO campaigns (id, profile_id, name, state, targeting_type, daily_budget, currency_code, synced_at)
     SELECT c.id, $1, c.name, c.state, c.targeting_type, c.daily_budget, p.currency_code, now()
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::numeric[])
            AS c (id, name, state, targeting_type, daily_budget)
       JOIN profiles p ON p.id = $1
     ON CONFLICT (id) DO UPDATE SET
       name = EXCLUDED.name, state = EXCLUDED.state, targeting_type = EXCLUDED.targeting_type,
       daily_budget = EXCLUDED.daily_budget, synced_at = now()`,
    [
      profileId,
      campaigns.map((campaign) => campaign.campaignId),
      campaigns.map((campaign) => campaign.name),
      campaigns.map((campaign) => campaign.state),
      campaigns.map((campaign) => campaign.targetingType),
      campaigns.map((campaign) => campaign.budget.budget),
    ],
  );
}

export async function upsertAdGroups(db: Queryable, profileId: number, adGroups: readonly AdGroup[]) {
  if (adGroups.length === 0) return;
  await db.query(
    `INSERT INTO ad_groups (id, campaign_id, profile_id, name, state, default_bid, synced_at)
     SELECT g.id, g.campaign_id, $1, g.name, g.state, g.default_bid, now()
       FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::numeric[])
            AS g (id, campaign_id, name, state, default_bid)
     ON CONFLICT (id) DO UPDATE SET
       name = EXCLUDED.name, state = EXCLUDED.state, default_bid = EXCLUDED.default_bid, synced_at = now()`,
    [
      profileId,
      adGroups.map((group) => group.adGroupId),
      adGroups.map((group) => group.campaignId),
      adGroups.map((group) => group.name),
      adGroups.map((group) => group.state),
      adGroups.map((group) => group.defaultBid),
    ],
  );
}

export async function upsertKeywords(db: Queryable, profileId: number, keywords: readonly Keyword[]) {
  if (keywords.length === 0) return;
  await db.query(
    `INSERT INTO keywords (id, ad_group_id, campaign_id, profile_id, keyword_text, match_type, state, bid, synced_at)
     SELECT k.id, k.ad_group_id, k.campaign_id, $1, k.keyword_text, k.match_type, k.state, k.bid, now()
       FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::numeric[])
            AS k (id, ad_group_id, campaign_id, keyword_text, match_type, state, bid)
     ON CONFLICT (id) DO UPDATE SET
       keyword_text = EXCLUDED.keyword_text, match_type = EXCLUDED.match_type, state = EXCLUDED.state,
       bid = EXCLUDED.bid, synced_at = now()`,
    [
      profileId,
      keywords.map((keyword) => keyword.keywordId),
      keywords.map((keyword) => keyword.adGroupId),
      keywords.map((keyword) => keyword.campaignId),
      keywords.map((keyword) => keyword.keywordText),
      keywords.map((keyword) => keyword.matchType),
      keywords.map((keyword) => keyword.state),
      keywords.map((keyword) => keyword.bid),
    ],
  );
}

export async function markSynced(db: Queryable, profileId: number): Promise<void> {
  await db.query('UPDATE profiles SET last_synced_at = now(), updated_at = now() WHERE id = $1', [profileId]);
}

/** Freshness: seconds since the least recently synced profile's last good sync (never: since it appeared). */
export async function oldestSyncAgeSeconds(db: Queryable): Promise<number | undefined> {
  const { rows } = await db.query<{ age: number | null }>(
    `SELECT EXTRACT(EPOCH FROM now() - min(coalesce(last_synced_at, created_at)))::float8 AS age FROM profiles`,
  );
  return rows[0]?.age ?? undefined;
}
