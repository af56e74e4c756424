import { defineBackfill } from '../definition.ts';

/**
 * campaign-currency: fills `campaigns.currency_code` (migration 0003) from the currency of
 * the profile's marketplace. The marketplace decides the currency a campaign's budget is
 * in; the profile's own currency_code is the fallback for a marketplace not listed here.
 */

/** Amazon marketplace ids (`accountInfo.marketplaceStringId`) and their currencies. */
export const MARKETPLACE_CURRENCY: Readonly<Record<string, string>> = {
  ATVPDKIKX0DER: 'USD', // US
  A2EUQ1WTGCTBG2: 'CAD', // CA
  A1AM78C64UM0Y8: 'MXN', // MX
  A2Q3Y263D00KWC: 'BRL', // BR
  A1F83G8C2ARO7P: 'GBP', // UK
  A1PA6795UKMFR9: 'EUR', // DE
  A13V1IB3VIYZZH: 'EUR', // FR
  APJ6JRA9NG5V4: 'EUR', // IT
  A1RKKUPIHCS9HS: 'EUR', // ES
  A1805IZSGTT6HS: 'EUR', // NL
  A2NODRKZP88ZB9: 'SEK', // SE
  A1C3SOZRARQ6R3: 'PLN', // PL
  A1VC38T7YXB528: 'JPY', // JP
  A39IBJ37TRP1C6: 'AUD', // AU
  A21TJRUUN4KGV: 'INR', // IN
  A2VIGQ35RCS4UG: 'AED', // AE
  A17E79C6D8DWNP: 'SAR', // SA
  A19VAU5U5O7RUS: 'SGD', // SG
};

interface CampaignRow {
  readonly id: number;
}

const MARKETPLACES = Object.keys(MARKETPLACE_CURRENCY);
const CURRENCIES = Object.values(MARKETPLACE_CURRENCY);

export const campaignCurrency = defineBackfill<CampaignRow>({
  name: 'campaign-currency',
  description: "Fill campaigns.currency_code from each profile's marketplace",
  table: 'campaigns',
  async readBatch(client, { after, until, limit }) {
    // Ids only: an index-only range scan finds the batch; the write below covers it.
    const { rows } = await client.query<CampaignRow>({
      name: 'campaign-currency:read',
      text: 'SELECT id FROM campaigns WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3',
      values: [after, until, limit],
    });
    return rows;
  },
  async writeBatch(client, rows) {
    const first = rows[0]?.id ?? 0;
    const last = rows.at(-1)?.id ?? 0;
    // The transform (marketplace → currency, else the profile's own currency) runs in the
    // UPDATE over the batch's id range: one statement, one round trip. Each campaign's
    // profile is looked up by primary key (LATERAL … OFFSET 0 keeps it a lookup): a batch
    // needs at most batch-size profiles, while the hash of the whole profiles table the
    // planner picks for a small one costs more than a small batch's writes. The currency
    // is an array lookup, not a join, for the same reason. IS DISTINCT FROM: a row that
    // already holds the right value costs no write (no WAL, no dead tuple), which keeps a
    // re-run cheap.
    const { rowCount } = await client.query({
      name: 'campaign-currency:write',
      text: `WITH target AS (
               SELECT c.id,
                      coalesce(($4::text[])[array_position($3::text[], p.marketplace)], p.currency_code)
                        AS currency
                 FROM campaigns c
                 CROSS JOIN LATERAL (
                   SELECT currency_code, marketplace FROM profiles WHERE id = c.profile_id OFFSET 0
                 ) p
                WHERE c.id >= $1 AND c.id <= $2)
             UPDATE campaigns c SET currency_code = t.currency
               FROM target t
              WHERE c.id = t.id AND c.currency_code IS DISTINCT FROM t.currency`,
      values: [first, last, MARKETPLACES, CURRENCIES],
    });
    return rowCount ?? 0;
  },
  defaults: { batchSize: 1_000, batchesPerChunk: 20 },
  // What the campaign pages do most: a profile's campaigns, by the profile index.
  latencyProbe: `SELECT id, name, state, daily_budget FROM campaigns
                  WHERE profile_id = (SELECT profile_id FROM campaigns WHERE id >= $1 ORDER BY id LIMIT 1)
                  ORDER BY id LIMIT 20`,
});
