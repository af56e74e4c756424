/**
 * Amazon's marketplaces with the bounds Amazon validates Sponsored Products bids and daily
 * budgets against: `bulk submit` refuses rows outside them before anything is sent, and the
 * sandbox seeds its profiles in these marketplaces and enforces the same bounds. Bounds follow Amazon's published per-marketplace
 * limits closely enough that a client which respects them here respects them there.
 */

export interface Marketplace {
  readonly countryCode: string;
  readonly marketplaceStringId: string;
  readonly currencyCode: string;
  readonly timezone: string;
  readonly bid: { readonly min: number; readonly max: number };
  readonly dailyBudget: { readonly min: number; readonly max: number };
}

export const MARKETPLACES: readonly Marketplace[] = [
  {
    countryCode: 'US',
    marketplaceStringId: 'ATVPDKIKX0DER',
    currencyCode: 'USD',
    timezone: 'America/Los_Angeles',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'CA',
    marketplaceStringId: 'A2EUQ1WTGCTBG2',
    currencyCode: 'CAD',
    timezone: 'America/Los_Angeles',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'MX',
    marketplaceStringId: 'A1AM78C64UM0Y8',
    currencyCode: 'MXN',
    timezone: 'America/Los_Angeles',
    bid: { min: 0.1, max: 20_000 },
    dailyBudget: { min: 1, max: 21_000_000 },
  },
  {
    countryCode: 'UK',
    marketplaceStringId: 'A1F83G8C2ARO7P',
    currencyCode: 'GBP',
    timezone: 'Europe/London',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'DE',
    marketplaceStringId: 'A1PA6795UKMFR9',
    currencyCode: 'EUR',
    timezone: 'Europe/Paris',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'FR',
    marketplaceStringId: 'A13V1IB3VIYZZH',
    currencyCode: 'EUR',
    timezone: 'Europe/Paris',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'IT',
    marketplaceStringId: 'APJ6JRA9NG5V4',
    currencyCode: 'EUR',
    timezone: 'Europe/Paris',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'ES',
    marketplaceStringId: 'A1RKKUPIHCS9HS',
    currencyCode: 'EUR',
    timezone: 'Europe/Paris',
    bid: { min: 0.02, max: 1_000 },
    dailyBudget: { min: 1, max: 1_000_000 },
  },
  {
    countryCode: 'JP',
    marketplaceStringId: 'A1VC38T7YXB528',
    currencyCode: 'JPY',
    timezone: 'Asia/Tokyo',
    bid: { min: 2, max: 100_000 },
    dailyBudget: { min: 100, max: 21_000_000 },
  },
  {
    countryCode: 'AU',
    marketplaceStringId: 'A39IBJ37TRP1C6',
    currencyCode: 'AUD',
    timezone: 'Australia/Sydney',
    bid: { min: 0.1, max: 1_410 },
    dailyBudget: { min: 1.4, max: 1_500_000 },
  },
  {
    countryCode: 'IN',
    marketplaceStringId: 'A21TJRUUN4KGV',
    currencyCode: 'INR',
    timezone: 'Asia/Kolkata',
    bid: { min: 1, max: 5_000 },
    dailyBudget: { min: 50, max: 21_000_000 },
  },
];

export function marketplaceOf(countryCode: string): Marketplace {
  const found = MARKETPLACES.find((marketplace) => marketplace.countryCode === countryCode);
  if (found === undefined) throw new Error(`unknown marketplace ${countryCode}`);
  return found;
}
