import type pg from 'pg';
import { SEED_MARKETPLACES } from '../../scripts/fixtures/seed-campaigns.ts';

// The campaign-currency result checks without vitest, for the tests and the fault drill alike.

/**
 * Counts every write of campaigns.currency_code per row: the proof that no row is written
 * twice (max = 1) and every row once (count = rows).
 */
export async function installWriteCounter(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE campaign_currency_writes (id bigint PRIMARY KEY, writes integer NOT NULL);
    CREATE FUNCTION count_campaign_currency_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO campaign_currency_writes (id, writes) VALUES (NEW.id, 1)
      ON CONFLICT (id) DO UPDATE SET writes = campaign_currency_writes.writes + 1;
      RETURN NEW;
    END $$;
    CREATE TRIGGER campaign_currency_writes AFTER UPDATE OF currency_code ON campaigns
      FOR EACH ROW EXECUTE FUNCTION count_campaign_currency_write();
  `);
}

/**
 * What campaign-currency must write, stated independently of its implementation: the
 * currency of the campaign's marketplace for the marketplaces it knows; for the one seed
 * marketplace it does not know (Egypt), the profile's own currency.
 */
const UNLISTED_MARKETPLACE = 'ARBP9OOSHTCHU';
const EXPECTED_CURRENCY = SEED_MARKETPLACES.filter(
  ([, , marketplace]) => marketplace !== UNLISTED_MARKETPLACE,
)
  .map(([, currency, marketplace]) => `('${marketplace}', '${currency}')`)
  .join(', ');

export interface ResultCheck {
  readonly campaigns: number;
  readonly filled: number;
  /** Campaigns whose currency is not the expected one. */
  readonly wrong: number;
  /** Campaigns whose expected currency is not their profile's: the transform is exercised. */
  readonly notProfileCurrency: number;
  /** Campaigns of the unlisted marketplace: the fallback is exercised. */
  readonly fallback: number;
  readonly writtenRows: number;
  readonly maxWrites: number;
}

/** What the campaign-currency backfill left behind, against what it should have. */
export async function checkResult(pool: pg.Pool): Promise<ResultCheck> {
  const { rows } = await pool.query<ResultCheck>(`
    WITH expected AS (
      SELECT c.id, c.currency_code AS actual, p.currency_code AS profile_currency, p.marketplace,
             coalesce(m.currency, p.currency_code) AS currency
        FROM campaigns c
        JOIN profiles p ON p.id = c.profile_id
        LEFT JOIN (VALUES ${EXPECTED_CURRENCY}) AS m (marketplace, currency) ON m.marketplace = p.marketplace)
    SELECT (SELECT count(*) FROM campaigns)::int AS campaigns,
           (SELECT count(*) FROM campaigns WHERE currency_code IS NOT NULL)::int AS filled,
           (SELECT count(*) FROM expected WHERE actual IS DISTINCT FROM currency)::int AS wrong,
           (SELECT count(*) FROM expected WHERE currency <> profile_currency)::int AS "notProfileCurrency",
           (SELECT count(*) FROM expected WHERE marketplace = '${UNLISTED_MARKETPLACE}')::int AS fallback,
           (SELECT count(*) FROM campaign_currency_writes)::int AS "writtenRows",
           (SELECT coalesce(max(writes), 0) FROM campaign_currency_writes)::int AS "maxWrites"`);
  return rows[0] as ResultCheck;
}
