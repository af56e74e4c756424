/** Limits Amazon enforces on every request, whatever the capacity. */
export const SANDBOX_LIMITS = {
  /**
   * Items per call of the SP v3 bulk updates (`PUT /sp/keywords`, `PUT /sp/campaigns`): the
   * `keywords` and `campaigns` arrays of Amazon's SponsoredProducts v3 OpenAPI document carry
   * `maxItems: 1000` (as in the request models generated from it). A larger request is refused
   * whole with 400 before any item is looked at.
   */
  maxItemsPerUpdate: 1_000,
} as const;
