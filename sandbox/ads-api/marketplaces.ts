// The bounds live with the fleet's Ads code: `bulk submit` checks rows against the same ones.
export * from '../../shared/ads/marketplaces.ts';
