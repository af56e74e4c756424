import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { type Keyword, MediaType, type Profile } from '../../shared/ads/types.ts';
import { accessToken, adminPost, api } from './support.ts';

let sandbox: AdsSandbox;
let token: string;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    sizes: { profiles: 2, campaignsPerProfile: 1, adGroupsPerCampaign: 1, keywordsPerAdGroup: 1 },
    profileCapacity: { ratePerSecond: 10_000, burst: 10_000 },
  });
  token = await accessToken(sandbox.url);
});

afterAll(async () => {
  await sandbox.close();
});

async function profiles(): Promise<Profile[]> {
  return (await api(sandbox.url, { method: 'GET', path: '/v2/profiles', token })).body as Profile[];
}

describe('addProfile', () => {
  it('adds a profile of 100,000 keywords that lists page by page, each keyword once', async () => {
    const response = await adminPost(sandbox.url, '/_sandbox/profiles', {
      campaigns: 100,
      adGroupsPerCampaign: 10,
      keywordsPerAdGroup: 100,
      countryCode: 'DE',
    });
    expect(response.status).toBe(201);
    const { profileId } = response.body as { profileId: number };
    expect(sandbox.admin.profileIds()).toEqual([...sandbox.admin.profileIds().slice(0, 2), profileId]);
    expect((await profiles()).find((profile) => profile.profileId === profileId)?.countryCode).toBe('DE');

    const ids = new Set<string>();
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await api(sandbox.url, {
        path: '/sp/keywords/list',
        token,
        profileId,
        mediaType: MediaType.keyword,
        body: { maxResults: 1_000, ...(nextToken === undefined ? {} : { nextToken }) },
      });
      expect(page.status).toBe(200);
      const body = page.body as { keywords: Keyword[]; totalResults: number; nextToken?: string };
      expect(body.totalResults).toBe(100_000);
      for (const keyword of body.keywords) ids.add(keyword.keywordId);
      nextToken = body.nextToken;
      pages += 1;
    } while (nextToken !== undefined);
    expect(pages).toBe(100);
    expect(ids.size).toBe(100_000);

    const last = [...ids].at(-1) as string;
    expect(sandbox.admin.entity('keyword', Number(last))).toMatchObject({ keywordId: last });
    const campaigns = await api(sandbox.url, {
      path: '/sp/campaigns/list',
      token,
      profileId,
      mediaType: MediaType.campaign,
      body: { maxResults: 1_000 },
    });
    expect((campaigns.body as { totalResults: number }).totalResults).toBe(100);
  });

  it('adds in process, in the US by default, with entities of its own ids', async () => {
    const profileId = sandbox.admin.addProfile({
      campaigns: 2,
      adGroupsPerCampaign: 3,
      keywordsPerAdGroup: 4,
    });
    const profile = (await profiles()).find((candidate) => candidate.profileId === profileId);
    expect(profile?.countryCode).toBe('US');
    const listed = await api(sandbox.url, {
      path: '/sp/keywords/list',
      token,
      profileId,
      mediaType: MediaType.keyword,
      body: {},
    });
    const { keywords } = listed.body as { keywords: Keyword[] };
    expect(keywords).toHaveLength(24);
    const firstProfile = sandbox.admin.profileIds()[0] as number;
    const other = await api(sandbox.url, {
      path: '/sp/keywords/list',
      token,
      profileId: firstProfile,
      mediaType: MediaType.keyword,
      body: {},
    });
    const otherIds = (other.body as { keywords: Keyword[] }).keywords.map((keyword) => keyword.keywordId);
    expect(keywords.some((keyword) => otherIds.includes(keyword.keywordId))).toBe(false);
  });

  it('refuses sizes the id scheme has no room for, naming the field', async () => {
    const response = await adminPost(sandbox.url, '/_sandbox/profiles', {
      campaigns: 1,
      adGroupsPerCampaign: 1,
      keywordsPerAdGroup: 100_000,
    });
    expect(response.status).toBe(400);
    expect((response.body as { details: string }).details).toMatch(/^keywordsPerAdGroup: /);
    expect(() =>
      sandbox.admin.addProfile({ campaigns: 1, adGroupsPerCampaign: 101, keywordsPerAdGroup: 1 }),
    ).toThrow('adGroupsPerCampaign');
    const country = await adminPost(sandbox.url, '/_sandbox/profiles', {
      campaigns: 1,
      adGroupsPerCampaign: 1,
      keywordsPerAdGroup: 1,
      countryCode: 'ZZ',
    });
    expect((country.body as { details: string }).details).toMatch(/^countryCode: /);
  });
});
