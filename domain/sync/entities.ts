import type { AdGroup, Campaign, Keyword, Profile } from '../../shared/ads/types.ts';
import type { EntityCounts, EntityKind, Queryable } from './model.ts';

/**
 * The synced entity tables. Each page is one statement (`unnest` of column arrays) that
 * writes only what differs: rows whose fields all match the API are filtered out before the
 * INSERT, so they are neither rewritten nor locked, and a sync of unchanged data leaves
 * every entity row as it was (same tuple, same xmin). `synced_at` is when the sync last
 * changed a row; a row the API stopped returning gets `removed_at`, cleared when it is seen
 * again.
 */

type PageCounts = Pick<EntityCounts, 'inserted' | 'changed' | 'restored'>;

const TABLES = { campaigns: 'campaigns', adGroups: 'ad_groups', keywords: 'keywords' } as const;

/**
 * `incoming` (the page) against the current rows: the changed or new ones, flagged. The
 * caller's INSERT takes `candidates`; `(xmax = 0)` in its RETURNING tells an insert from
 * an update.
 */
function upsertStatement(table: string, incoming: string, columns: readonly string[], insert: string) {
  const differs = columns.map((column) => `existing.${column}`).join(', ');
  const fresh = columns.map((column) => `c.${column}`).join(', ');
  return `
    WITH c AS (${incoming}),
    candidates AS (
      SELECT c.*, existing.removed_at IS NOT NULL AS restoring
        FROM c LEFT JOIN ${table} existing ON existing.id = c.id
       WHERE existing.id IS NULL OR existing.removed_at IS NOT NULL
          OR (${differs}) IS DISTINCT FROM (${fresh})
    ),
    written AS (${insert} RETURNING (xmax = 0) AS inserted)
    SELECT count(*) FILTER (WHERE inserted)::int AS inserted,
           count(*) FILTER (WHERE NOT inserted)::int AS changed,
           (SELECT count(*) FROM candidates WHERE restoring)::int AS restored
      FROM written`;
}

async function run(db: Queryable, sql: string, values: unknown[]): Promise<PageCounts> {
  const { rows } = await db.query<PageCounts>(sql, values);
  return rows[0] ?? { inserted: 0, changed: 0, restored: 0 };
}

const CAMPAIGN_COLUMNS = ['name', 'state', 'targeting_type', 'daily_budget'] as const;
const CAMPAIGNS_SQL = upsertStatement(
  'campaigns',
  `SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::numeric[])
            AS c (id, name, state, targeting_type, daily_budget)`,
  CAMPAIGN_COLUMNS,
  // New campaigns get the profile's currency; the campaign-currency backfill fills old ones.
  `INSERT INTO campaigns (id, profile_id, name, state, targeting_type, daily_budget, currency_code, synced_at)
   SELECT c.id, $1, c.name, c.state, c.targeting_type, c.daily_budget, p.currency_code, now()
     FROM candidates c JOIN profiles p ON p.id = $1
   ON CONFLICT (id) DO UPDATE SET
     name = EXCLUDED.name, state = EXCLUDED.state, targeting_type = EXCLUDED.targeting_type,
     daily_budget = EXCLUDED.daily_budget, removed_at = NULL, synced_at = now()`,
);

export function upsertCampaigns(db: Queryable, profileId: number, campaigns: readonly Campaign[]) {
  return run(db, CAMPAIGNS_SQL, [
    profileId,
    campaigns.map((campaign) => campaign.campaignId),
    campaigns.map((campaign) => campaign.name),
    campaigns.map((campaign) => campaign.state),
    campaigns.map((campaign) => campaign.targetingType),
    campaigns.map((campaign) => campaign.budget.budget),
  ]);
}

const AD_GROUP_COLUMNS = ['campaign_id', 'name', 'state', 'default_bid'] as const;
const AD_GROUPS_SQL = upsertStatement(
  'ad_groups',
  `SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::numeric[])
            AS g (id, campaign_id, name, state, default_bid)`,
  AD_GROUP_COLUMNS,
  `INSERT INTO ad_groups (id, campaign_id, profile_id, name, state, default_bid, synced_at)
   SELECT c.id, c.campaign_id, $1, c.name, c.state, c.default_bid, now() FROM candidates c
   ON CONFLICT (id) DO UPDATE SET
     campaign_id = EXCLUDED.campaign_id, name = EXCLUDED.name, state = EXCLUDED.state,
     default_bid = EXCLUDED.default_bid, removed_at = NULL, synced_at = now()`,
);

export function upsertAdGroups(db: Queryable, profileId: number, adGroups: readonly AdGroup[]) {
  return run(db, AD_GROUPS_SQL, [
    profileId,
    adGroups.map((group) => group.adGroupId),
    adGroups.map((group) => group.campaignId),
    adGroups.map((group) => group.name),
    adGroups.map((group) => group.state),
    adGroups.map((group) => group.defaultBid),
  ]);
}

const KEYWORD_COLUMNS = ['ad_group_id', 'campaign_id', 'keyword_text', 'match_type', 'state', 'bid'] as const;
const KEYWORDS_SQL = upsertStatement(
  'keywords',
  `SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::numeric[])
            AS k (id, ad_group_id, campaign_id, keyword_text, match_type, state, bid)`,
  KEYWORD_COLUMNS,
  `INSERT INTO keywords (id, ad_group_id, campaign_id, profile_id, keyword_text, match_type, state, bid, synced_at)
   SELECT c.id, c.ad_group_id, c.campaign_id, $1, c.keyword_text, c.match_type, c.state, c.bid, now()
     FROM candidates c
   ON CONFLICT (id) DO UPDATE SET
     ad_group_id = EXCLUDED.ad_group_id, campaign_id = EXCLUDED.campaign_id,
     keyword_text = EXCLUDED.keyword_text, match_type = EXCLUDED.match_type, state = EXCLUDED.state,
     bid = EXCLUDED.bid, removed_at = NULL, synced_at = now()`,
);

export function upsertKeywords(db: Queryable, profileId: number, keywords: readonly Keyword[]) {
  return run(db, KEYWORDS_SQL, [
    profileId,
    keywords.map((keyword) => keyword.keywordId),
    keywords.map((keyword) => keyword.adGroupId),
    keywords.map((keyword) => keyword.campaignId),
    keywords.map((keyword) => keyword.keywordText),
    keywords.map((keyword) => keyword.matchType),
    keywords.map((keyword) => keyword.state),
    keywords.map((keyword) => keyword.bid),
  ]);
}

/** The entity ids of one API page, as the run's checkpoint records them. */
export function entityIds(kind: EntityKind, items: readonly unknown[]): string[] {
  switch (kind) {
    case 'campaigns':
      return (items as Campaign[]).map((campaign) => campaign.campaignId);
    case 'adGroups':
      return (items as AdGroup[]).map((group) => group.adGroupId);
    case 'keywords':
      return (items as Keyword[]).map((keyword) => keyword.keywordId);
  }
}

export function upsertPage(db: Queryable, kind: EntityKind, profileId: number, items: readonly unknown[]) {
  if (items.length === 0) return Promise.resolve({ inserted: 0, changed: 0, restored: 0 });
  switch (kind) {
    case 'campaigns':
      return upsertCampaigns(db, profileId, items as Campaign[]);
    case 'adGroups':
      return upsertAdGroups(db, profileId, items as AdGroup[]);
    case 'keywords':
      return upsertKeywords(db, profileId, items as Keyword[]);
  }
}

/**
 * Marks removed what the profile has live but the run's pages never listed: children
 * first, so a removed campaign's ad groups and keywords go with it. Returns the count per kind.
 *
 * Must run inside the caller's transaction: it plans the anti-join for itself there. On the
 * first sync of a large profile the planner has no statistics for the rows the run just
 * wrote (autovacuum has not analysed them yet), estimates a handful, and picks a nested
 * loop that rescans every page's ids for every row — 20,000 keywords against their own 200
 * pages ran past the 30 s statement timeout and failed the sync at its very end. A hash
 * anti-join is right at every size (one pass over the ids, one over the rows), so nested
 * loops are switched off for these statements (and JIT, whose compile the huge nested-loop
 * cost estimate would otherwise trigger), then back to the defaults.
 */
export async function markRemoved(
  db: Queryable,
  profileId: number,
  runId: number,
): Promise<Record<EntityKind, number>> {
  const removed: Record<EntityKind, number> = { campaigns: 0, adGroups: 0, keywords: 0 };
  await db.query('SET LOCAL enable_nestloop = off');
  await db.query('SET LOCAL jit = off');
  for (const kind of ['keywords', 'adGroups', 'campaigns'] as const) {
    const { rowCount } = await db.query(
      `UPDATE ${TABLES[kind]} e SET removed_at = now()
        WHERE e.profile_id = $1 AND e.removed_at IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM sync_run_pages p, unnest(p.entity_ids) AS seen (id)
             WHERE p.run_id = $2 AND p.kind = $3 AND seen.id = e.id)`,
      [profileId, runId, kind],
    );
    removed[kind] = rowCount ?? 0;
  }
  await db.query('SET LOCAL enable_nestloop TO DEFAULT');
  await db.query('SET LOCAL jit TO DEFAULT');
  return removed;
}

/** Every profile the credentials can see; a profile whose fields did not change is not rewritten. */
export async function upsertProfiles(db: Queryable, profiles: readonly Profile[]): Promise<void> {
  if (profiles.length === 0) return;
  await db.query(
    `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
     ON CONFLICT (id) DO UPDATE SET
       country_code = EXCLUDED.country_code, currency_code = EXCLUDED.currency_code,
       marketplace = EXCLUDED.marketplace, account_name = EXCLUDED.account_name, updated_at = now()
     WHERE (profiles.country_code, profiles.currency_code, profiles.marketplace, profiles.account_name)
           IS DISTINCT FROM (EXCLUDED.country_code, EXCLUDED.currency_code, EXCLUDED.marketplace, EXCLUDED.account_name)`,
    [
      profiles.map((profile) => profile.profileId),
      profiles.map((profile) => profile.countryCode),
      profiles.map((profile) => profile.currencyCode),
      profiles.map((profile) => profile.accountInfo.marketplaceStringId),
      profiles.map((profile) => profile.accountInfo.name),
    ],
  );
}

export async function existingProfiles(db: Queryable, profileIds: readonly number[]): Promise<Set<number>> {
  const { rows } = await db.query<{ id: number }>('SELECT id FROM profiles WHERE id = ANY($1::bigint[])', [
    profileIds,
  ]);
  return new Set(rows.map((row) => row.id));
}
