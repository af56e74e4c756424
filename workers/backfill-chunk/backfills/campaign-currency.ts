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
  readonly marketplace: string;
  readonly profile_currency: string;
}

export const campaignCurrency = defineBackfill<CampaignRow>({
  name: 'campaign-currency',
  description: "Fill campaigns.currency_code from each profile's marketplace",
  table: 'campaigns',
  async readBatch(client, { after, until, limit }) {
    const { rows } = await client.query<CampaignRow>(
      `SELECT c.id, p.marketplace, p.currency_code AS profile_currency
         FROM campaigns c JOIN profiles p ON p.id = c.profile_id
        WHERE c.id > $1 AND c.id <= $2
        ORDER BY c.id
        LIMIT $3`,
      [after, until, limit],
    );
    return rows;
  },
  async writeBatch(client, rows) {
    const ids = rows.map((row) => row.id);
    const currencies = rows.map((row) => MARKETPLACE_CURRENCY[row.marketplace] ?? row.profile_currency);
    // IS DISTINCT FROM: a row that already holds the right value costs no write (no WAL,
    // no dead tuple), which keeps a re-run after a partial failure cheap.
    const { rowCount } = await client.query(
      `UPDATE campaigns c SET currency_code = v.currency
         FROM unnest($1::bigint[], $2::text[]) AS v (id, currency)
        WHERE c.id = v.id AND c.currency_code IS DISTINCT FROM v.currency`,
      [ids, currencies],
    );
    return rowCount ?? 0;
  },
  defaults: { batchSize: 1_000, batchesPerChunk: 10 },
});
