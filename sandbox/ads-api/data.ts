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

export type EntityKind = 'campaign' | 'adGroup' | 'keyword';
export const ENTITY_KINDS = ['campaign', 'adGroup', 'keyword'] as const satisfies readonly EntityKind[];

/**
 * Entity ids carry the profile's ordinal (`base + ordinal × perProfile + position`), so an id
 * alone finds its profile without generating every profile to search them.
 */
const ID_SCHEME: Record<EntityKind, { readonly base: number; readonly perProfile: number }> = {
  campaign: { base: 3_000_000_000_000, perProfile: 100_000 },
  adGroup: { base: 4_000_000_000_000, perProfile: 1_000_000 },
  keyword: { base: 5_000_000_000_000, perProfile: 100_000_000 },
};

/**
 * The largest sizes the id scheme has room for: a campaign's position takes 3 digits in ad group
 * and keyword ids, an ad group's 2 in keyword ids, a keyword's 3.
 */
export const MAX_SIZES = { campaigns: 1_000, adGroupsPerCampaign: 100, keywordsPerAdGroup: 1_000 } as const;

/** One profile's shape: how many entities of each kind it holds. */
export interface ProfileSizes {
  readonly campaigns: number;
  readonly adGroupsPerCampaign: number;
  readonly keywordsPerAdGroup: number;
}

function checkProfileSizes(sizes: ProfileSizes): void {
  for (const field of ['campaigns', 'adGroupsPerCampaign', 'keywordsPerAdGroup'] as const) {
    const value = sizes[field];
    if (!Number.isInteger(value) || value < 0 || value > MAX_SIZES[field]) {
      throw new RangeError(`${field} must be an integer from 0 to ${MAX_SIZES[field]}, got ${value}`);
    }
  }
}

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
export type MutableAdGroup = { -readonly [K in keyof AdGroup]: AdGroup[K] };

export interface EntityOf {
  campaign: MutableCampaign;
  adGroup: MutableAdGroup;
  keyword: MutableKeyword;
}

export interface ProfileData {
  readonly profile: Profile;
  readonly marketplace: Marketplace;
  readonly campaigns: MutableCampaign[];
  readonly adGroups: MutableAdGroup[];
  readonly keywords: MutableKeyword[];
  /** Every generated entity by id, removed ones included (so they can be restored). */
  readonly byId: { readonly [K in EntityKind]: Map<string, EntityOf[K]> };
  /** Ids removed behind the fleet's back: the API neither lists nor updates them. */
  readonly removed: Record<EntityKind, Set<string>>;
}

/** The entity as the API sees it: undefined when unknown or removed. */
export function liveEntity<K extends EntityKind>(
  data: ProfileData,
  kind: K,
  id: string,
): EntityOf[K] | undefined {
  if (data.removed[kind].has(id)) return undefined;
  return data.byId[kind].get(id) as EntityOf[K] | undefined;
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
  private readonly seed: number;
  private readonly profileList: Profile[];
  /** Sizes of profiles added at run time; seeded profiles use `sizes`. */
  private readonly addedSizes = new Map<number, ProfileSizes>();
  private readonly generated = new Map<number, ProfileData>();

  constructor(seed: number, sizes: DataSizes) {
    this.seed = seed;
    this.sizes = sizes;
    checkProfileSizes(this.seededSizes());
    const random = seededRandom(seed);
    this.profileList = Array.from({ length: sizes.profiles }, (_, index) =>
      this.makeProfile(index, MARKETPLACES[index % MARKETPLACES.length] as Marketplace, random),
    );
  }

  get profiles(): readonly Profile[] {
    return this.profileList;
  }

  /**
   * A new profile of the given shape, appended after the others. Its entities are generated on
   * first use like every profile's, so adding one of 100,000 keywords costs nothing until listed.
   */
  addProfile(sizes: ProfileSizes & { readonly countryCode?: string }): Profile {
    checkProfileSizes(sizes);
    const marketplace = marketplaceOf(sizes.countryCode ?? 'US');
    const index = this.profileList.length;
    const profile = this.makeProfile(index, marketplace, seededRandom(this.seed ^ (index + 1)));
    this.addedSizes.set(profile.profileId, {
      campaigns: sizes.campaigns,
      adGroupsPerCampaign: sizes.adGroupsPerCampaign,
      keywordsPerAdGroup: sizes.keywordsPerAdGroup,
    });
    this.profileList.push(profile);
    return profile;
  }

  profileData(profileId: number): ProfileData | undefined {
    const existing = this.generated.get(profileId);
    if (existing !== undefined) return existing;
    const profile = this.profileList[profileId - PROFILE_ID_BASE];
    if (profile === undefined || profile.profileId !== profileId) return undefined;
    const data = this.generate(profile, this.addedSizes.get(profileId) ?? this.seededSizes());
    this.generated.set(profileId, data);
    return data;
  }

  /** The profile an entity id belongs to (decoded from the id), and the entity, removed or not. */
  locate<K extends EntityKind>(
    kind: K,
    id: string,
  ): { readonly data: ProfileData; readonly entity: EntityOf[K] } | undefined {
    if (!/^\d+$/.test(id)) return undefined;
    const { base, perProfile } = ID_SCHEME[kind];
    const ordinal = Math.floor((Number(id) - base) / perProfile);
    if (ordinal < 0) return undefined;
    const data = this.profileData(PROFILE_ID_BASE + ordinal);
    const entity = data?.byId[kind].get(id) as EntityOf[K] | undefined;
    return data === undefined || entity === undefined ? undefined : { data, entity };
  }

  private seededSizes(): ProfileSizes {
    return {
      campaigns: this.sizes.campaignsPerProfile,
      adGroupsPerCampaign: this.sizes.adGroupsPerCampaign,
      keywordsPerAdGroup: this.sizes.keywordsPerAdGroup,
    };
  }

  private makeProfile(index: number, marketplace: Marketplace, random: () => number): Profile {
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
  }

  private generate(profile: Profile, sizes: ProfileSizes): ProfileData {
    const marketplace = marketplaceOf(profile.countryCode);
    const random = seededRandom(this.seed ^ (profile.profileId % 2_147_483_647));
    const { campaigns: campaignCount, adGroupsPerCampaign, keywordsPerAdGroup } = sizes;
    // Ids are unique across profiles: the profile's ordinal is part of every id.
    const ordinal = profile.profileId - PROFILE_ID_BASE;
    const idOf = (kind: EntityKind, position: number) =>
      String(ID_SCHEME[kind].base + ordinal * ID_SCHEME[kind].perProfile + position);
    const campaigns: MutableCampaign[] = [];
    const adGroups: MutableAdGroup[] = [];
    const keywords: MutableKeyword[] = [];
    const bidSpan = Math.min(marketplace.bid.max, marketplace.bid.min * 250) - marketplace.bid.min;

    for (let c = 0; c < campaignCount; c += 1) {
      const campaignId = idOf('campaign', c);
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
        const adGroupId = idOf('adGroup', c * 1_000 + g);
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
            keywordId: idOf('keyword', c * 100_000 + g * 1_000 + k),
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
      byId: {
        campaign: new Map(campaigns.map((campaign) => [campaign.campaignId, campaign])),
        adGroup: new Map(adGroups.map((adGroup) => [adGroup.adGroupId, adGroup])),
        keyword: new Map(keywords.map((keyword) => [keyword.keywordId, keyword])),
      },
      removed: { campaign: new Set(), adGroup: new Set(), keyword: new Set() },
    };
  }
}
