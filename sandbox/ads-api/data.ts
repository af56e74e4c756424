import type { AdGroup, Campaign, EntityState, Keyword, Profile } from '../../shared/ads/types.ts';
import { MARKETPLACES, type Marketplace, marketplaceOf } from './marketplaces.ts';

/**
 * Deterministic seeded data: the same seed and sizes always give the same profiles,
 * campaigns, ad groups and keywords, so a test can predict counts and ids. A profile's
 * entities are generated on first use (200 profiles × thousands of keywords would otherwise
 * slow every sandbox start) from a seed derived from the profile id, so generation order
 * does not matter.
 */

export interface DataSizes {
  readonly profiles: number;
  readonly campaignsPerProfile: number;
  readonly adGroupsPerCampaign: number;
  readonly keywordsPerAdGroup: number;
}

export const DEFAULT_SIZES: DataSizes = {
  profiles: 20,
  campaignsPerProfile: 5,
  adGroupsPerCampaign: 3,
  keywordsPerAdGroup: 10,
};

/** First profile id; ids are consecutive from here. */
const PROFILE_ID_BASE = 1_000_000_000_000;

/**
 * mulberry32: a tiny, well-known 32-bit PRNG. Hand-written because seeding is all we need and
 * Math.random cannot be seeded; statistical quality is irrelevant for test data.
 */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const WORDS = [
  'running',
  'shoes',
  'organic',
  'coffee',
  'wireless',
  'earbuds',
  'yoga',
  'mat',
  'stainless',
  'bottle',
  'kids',
  'backpack',
  'led',
  'lamp',
  'dog',
  'treats',
];
const MATCH_TYPES = ['EXACT', 'PHRASE', 'BROAD'] as const;

/** Mutable copies: the sandbox applies updates to these. */
export type MutableCampaign = { -readonly [K in keyof Campaign]: Campaign[K] };
export type MutableKeyword = { -readonly [K in keyof Keyword]: Keyword[K] };

export interface ProfileData {
  readonly profile: Profile;
  readonly marketplace: Marketplace;
  readonly campaigns: MutableCampaign[];
  readonly adGroups: AdGroup[];
  readonly keywords: MutableKeyword[];
  readonly campaignsById: Map<string, MutableCampaign>;
  readonly keywordsById: Map<string, MutableKeyword>;
}

function pickState(random: () => number): EntityState {
  const roll = random();
  if (roll < 0.1) return 'ARCHIVED';
  if (roll < 0.3) return 'PAUSED';
  return 'ENABLED';
}

/** Money amounts with two decimals, without binary-fraction noise like 621.0500000000001. */
function roundTo(value: number, step: number): number {
  return Number((Math.round(value / step) * step).toFixed(2));
}

export class SeededAdsData {
  readonly sizes: DataSizes;
  readonly profiles: readonly Profile[];
  private readonly seed: number;
  private readonly generated = new Map<number, ProfileData>();

  constructor(seed: number, sizes: DataSizes) {
    this.seed = seed;
    this.sizes = sizes;
    const random = seededRandom(seed);
    this.profiles = Array.from({ length: sizes.profiles }, (_, index) => {
      const marketplace = MARKETPLACES[index % MARKETPLACES.length] as Marketplace;
      const profileId = PROFILE_ID_BASE + index;
      return {
        profileId,
        countryCode: marketplace.countryCode,
        currencyCode: marketplace.currencyCode,
        dailyBudget: roundTo(marketplace.dailyBudget.min * (50 + random() * 950), 0.01),
        timezone: marketplace.timezone,
        accountInfo: {
          marketplaceStringId: marketplace.marketplaceStringId,
          id: `A${(profileId * 7919).toString(36).toUpperCase()}`,
          type: 'seller',
          name: `Advertiser ${index + 1}`,
        },
      } satisfies Profile;
    });
  }

  profileData(profileId: number): ProfileData | undefined {
    const existing = this.generated.get(profileId);
    if (existing !== undefined) return existing;
    const profile = this.profiles.find((candidate) => candidate.profileId === profileId);
    if (profile === undefined) return undefined;
    const data = this.generate(profile);
    this.generated.set(profileId, data);
    return data;
  }

  private generate(profile: Profile): ProfileData {
    const marketplace = marketplaceOf(profile.countryCode);
    const random = seededRandom(this.seed ^ (profile.profileId % 2_147_483_647));
    const { campaignsPerProfile, adGroupsPerCampaign, keywordsPerAdGroup } = this.sizes;
    // Ids are unique across profiles: the profile's ordinal is part of every id.
    const ordinal = profile.profileId - PROFILE_ID_BASE;
    const campaigns: MutableCampaign[] = [];
    const adGroups: AdGroup[] = [];
    const keywords: MutableKeyword[] = [];
    const bidSpan = Math.min(marketplace.bid.max, marketplace.bid.min * 250) - marketplace.bid.min;

    for (let c = 0; c < campaignsPerProfile; c += 1) {
      const campaignId = String(3_000_000_000_000 + ordinal * 100_000 + c);
      campaigns.push({
        campaignId,
        name: `Campaign ${c + 1} of ${profile.accountInfo.name}`,
        state: pickState(random),
        targetingType: random() < 0.8 ? 'MANUAL' : 'AUTO',
        startDate: '2025-01-01',
        budget: {
          budget: roundTo(marketplace.dailyBudget.min * (10 + random() * 90), 0.01),
          budgetType: 'DAILY',
        },
      });
      for (let g = 0; g < adGroupsPerCampaign; g += 1) {
        const adGroupId = String(4_000_000_000_000 + ordinal * 1_000_000 + c * 1_000 + g);
        adGroups.push({
          adGroupId,
          campaignId,
          name: `Ad group ${g + 1}`,
          state: pickState(random),
          defaultBid: roundTo(marketplace.bid.min + random() * bidSpan, 0.01),
        });
        for (let k = 0; k < keywordsPerAdGroup; k += 1) {
          const first = WORDS[Math.floor(random() * WORDS.length)] as string;
          const second = WORDS[Math.floor(random() * WORDS.length)] as string;
          keywords.push({
            keywordId: String(5_000_000_000_000 + ordinal * 100_000_000 + c * 100_000 + g * 1_000 + k),
            adGroupId,
            campaignId,
            keywordText: `${first} ${second}`,
            matchType: MATCH_TYPES[Math.floor(random() * MATCH_TYPES.length)] as Keyword['matchType'],
            state: pickState(random),
            bid: roundTo(marketplace.bid.min + random() * bidSpan, 0.01),
          });
        }
      }
    }
    return {
      profile,
      marketplace,
      campaigns,
      adGroups,
      keywords,
      campaignsById: new Map(campaigns.map((campaign) => [campaign.campaignId, campaign])),
      keywordsById: new Map(keywords.map((keyword) => [keyword.keywordId, keyword])),
    };
  }
}
