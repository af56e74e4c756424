import type pg from 'pg';

/**
 * Deterministic advertising data for the backfill's tests, demo and benchmark: `profiles`
 * advertiser profiles spread over eleven marketplaces and `campaigns` campaigns spread over
 * the profiles, generated inside Postgres (generate_series), so a million rows take seconds
 * and the same arguments always give the same rows. Ids sit far above the Ads sandbox's, so
 * seeded rows never collide with synced ones. `currency_code` is left NULL: that is what
 * the campaign-currency backfill fills.
 *
 * So that the backfill's transform is tested and not just its plumbing, a profile's own
 * currency is not always its marketplace's: every tenth profile is billed in US dollars
 * (SEED_BILLED_IN_USD), and one marketplace (Egypt) is one the backfill does not list,
 * where it must fall back to the profile's currency.
 */

export const SEED_PROFILE_ID_BASE = 7_000_000_000_000;
export const SEED_CAMPAIGN_ID_BASE = 700_000_000_000_000;

/** Marketplaces the seed uses: country, currency, Amazon marketplace id. */
export const SEED_MARKETPLACES: ReadonlyArray<readonly [string, string, string]> = [
  ['US', 'USD', 'ATVPDKIKX0DER'],
  ['CA', 'CAD', 'A2EUQ1WTGCTBG2'],
  ['MX', 'MXN', 'A1AM78C64UM0Y8'],
  ['UK', 'GBP', 'A1F83G8C2ARO7P'],
  ['DE', 'EUR', 'A1PA6795UKMFR9'],
  ['FR', 'EUR', 'A13V1IB3VIYZZH'],
  ['IT', 'EUR', 'APJ6JRA9NG5V4'],
  ['ES', 'EUR', 'A1RKKUPIHCS9HS'],
  ['JP', 'JPY', 'A1VC38T7YXB528'],
  ['AU', 'AUD', 'A39IBJ37TRP1C6'],
  ['IN', 'INR', 'A21TJRUUN4KGV'],
  ['EG', 'EGP', 'ARBP9OOSHTCHU'],
];

/** Profiles whose seed index g has g % 10 = 3 are billed in USD, whatever their marketplace. */
export const SEED_BILLED_IN_USD = { modulus: 10, remainder: 3 } as const;

export interface SeedOptions {
  readonly profiles: number;
  readonly campaigns: number;
}

export interface SeedResult {
  readonly profiles: number;
  readonly campaigns: number;
  /** Campaign ids are SEED_CAMPAIGN_ID_BASE + 1 … + campaigns, consecutive. */
  readonly firstCampaignId: number;
  readonly lastCampaignId: number;
}

/** Inserts the seed rows that are missing (idempotent) and analyzes the tables. */
export async function seedCampaigns(
  db: Pick<pg.ClientBase, 'query'>,
  options: SeedOptions,
): Promise<SeedResult> {
  const marketplaces = SEED_MARKETPLACES.map(
    ([country, currency, marketplace], index) => `(${index}, '${country}', '${currency}', '${marketplace}')`,
  ).join(', ');
  await db.query(
    `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name)
     SELECT $1::bigint + g, m.country,
            CASE WHEN g % ${SEED_BILLED_IN_USD.modulus} = ${SEED_BILLED_IN_USD.remainder} THEN 'USD' ELSE m.currency END,
            m.marketplace, 'Seed advertiser ' || g
       FROM generate_series(1, $2::int) AS g
       JOIN (VALUES ${marketplaces}) AS m (idx, country, currency, marketplace)
         ON m.idx = g % ${SEED_MARKETPLACES.length}
     ON CONFLICT (id) DO NOTHING`,
    [SEED_PROFILE_ID_BASE, options.profiles],
  );
  await db.query(
    `INSERT INTO campaigns (id, profile_id, name, state, targeting_type, daily_budget)
     SELECT $1::bigint + g, $2::bigint + 1 + (g % $3::int), 'Seed campaign ' || g,
            (ARRAY['ENABLED', 'PAUSED', 'ARCHIVED'])[1 + g % 3],
            CASE WHEN g % 2 = 0 THEN 'MANUAL' ELSE 'AUTO' END,
            (10 + g % 490)::numeric(12, 2)
       FROM generate_series(1, $4::int) AS g
     ON CONFLICT (id) DO NOTHING`,
    [SEED_CAMPAIGN_ID_BASE, SEED_PROFILE_ID_BASE, options.profiles, options.campaigns],
  );
  await db.query('ANALYZE profiles');
  await db.query('ANALYZE campaigns');
  return {
    profiles: options.profiles,
    campaigns: options.campaigns,
    firstCampaignId: SEED_CAMPAIGN_ID_BASE + 1,
    lastCampaignId: SEED_CAMPAIGN_ID_BASE + options.campaigns,
  };
}
