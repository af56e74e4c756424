/**
 * Wire types of the Amazon Ads API as the fleet uses them: profiles (v2) and Sponsored
 * Products v3 campaigns, ad groups and keywords. Only the fields the fleet reads or writes;
 * Amazon sends more, and the client passes unknown fields through untouched.
 */

export const EntityState = {
  Enabled: 'ENABLED',
  Paused: 'PAUSED',
  Archived: 'ARCHIVED',
} as const;
export type EntityState = (typeof EntityState)[keyof typeof EntityState];

/** States a PUT may set: archiving is a separate (delete) call in v3. */
export type EditableState = typeof EntityState.Enabled | typeof EntityState.Paused;

export interface Profile {
  readonly profileId: number;
  readonly countryCode: string;
  readonly currencyCode: string;
  readonly dailyBudget: number;
  readonly timezone: string;
  readonly accountInfo: {
    readonly marketplaceStringId: string;
    readonly id: string;
    readonly type: 'seller' | 'vendor' | 'agency';
    readonly name: string;
  };
}

export interface Campaign {
  readonly campaignId: string;
  readonly name: string;
  readonly state: EntityState;
  readonly targetingType: 'MANUAL' | 'AUTO';
  readonly startDate: string;
  readonly budget: { readonly budget: number; readonly budgetType: 'DAILY' };
}

export interface AdGroup {
  readonly adGroupId: string;
  readonly campaignId: string;
  readonly name: string;
  readonly state: EntityState;
  readonly defaultBid: number;
}

export interface Keyword {
  readonly keywordId: string;
  readonly adGroupId: string;
  readonly campaignId: string;
  readonly keywordText: string;
  readonly matchType: 'EXACT' | 'PHRASE' | 'BROAD';
  readonly state: EntityState;
  readonly bid: number;
}

export interface KeywordUpdate {
  readonly keywordId: string;
  readonly bid?: number;
  readonly state?: EditableState;
}

export interface CampaignUpdate {
  readonly campaignId: string;
  readonly state?: EditableState;
  readonly budget?: { readonly budget: number; readonly budgetType: 'DAILY' };
}

/** Filters of the v3 list endpoints: `{ include: [...] }` per field. */
export interface ListFilter {
  readonly stateFilter?: { readonly include: readonly EntityState[] };
  readonly campaignIdFilter?: { readonly include: readonly string[] };
  readonly adGroupIdFilter?: { readonly include: readonly string[] };
  readonly keywordIdFilter?: { readonly include: readonly string[] };
}

export interface ListRequest extends ListFilter {
  readonly maxResults?: number;
  readonly nextToken?: string;
}

/** One error of a 207 item, as Amazon sends it: `errorValue` is keyed by `errorType`. */
export interface AmazonItemError {
  readonly errorType: string;
  readonly errorValue: Readonly<Record<string, { readonly reason?: string; readonly message: string }>>;
}

/** The body of a v3 bulk create/update: one part per entity kind, e.g. `{ keywords: {...} }`. */
export interface MultiStatusPart {
  readonly success: readonly ({ readonly index: number } & Readonly<Record<string, unknown>>)[];
  readonly error: readonly { readonly index: number; readonly errors: readonly AmazonItemError[] }[];
}

/** Vendor media types of the v3 endpoints (Content-Type and Accept). */
export const MediaType = {
  campaign: 'application/vnd.spCampaign.v3+json',
  adGroup: 'application/vnd.spAdGroup.v3+json',
  keyword: 'application/vnd.spKeyword.v3+json',
} as const;

/** Items per v3 bulk request Amazon accepts; larger requests are rejected whole with 400. */
export const MAX_ITEMS_PER_REQUEST = {
  keywords: 1_000,
  campaigns: 1_000,
} as const;
