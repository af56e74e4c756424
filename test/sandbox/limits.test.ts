import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdsSandbox, SANDBOX_LIMITS, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { type Campaign, type Keyword, MediaType } from '../../shared/ads/types.ts';
import { accessToken, api } from './support.ts';

let sandbox: AdsSandbox;
let token: string;
let profileId: number;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    sizes: { profiles: 1, campaignsPerProfile: 1, adGroupsPerCampaign: 1, keywordsPerAdGroup: 1 },
    profileCapacity: { ratePerSecond: 1_000, burst: 1_000 },
  });
  token = await accessToken(sandbox.url);
  profileId = sandbox.admin.addProfile({ campaigns: 1_000, adGroupsPerCampaign: 1, keywordsPerAdGroup: 1 });
});

afterAll(async () => {
  await sandbox.close();
});

async function listed<T>(path: string, mediaType: string, field: string): Promise<T[]> {
  const response = await api(sandbox.url, { path, token, profileId, mediaType, body: { maxResults: 1_000 } });
  return (response.body as Record<string, T[]>)[field] as T[];
}

describe('maxItemsPerUpdate', () => {
  it('is 1,000, as in Amazon\u2019s SP v3 schema', () => {
    expect(SANDBOX_LIMITS.maxItemsPerUpdate).toBe(1_000);
  });

  it('accepts a keyword update of exactly the maximum and refuses one more whole, with 400', async () => {
    const keywords = await listed<Keyword>('/sp/keywords/list', MediaType.keyword, 'keywords');
    expect(keywords).toHaveLength(SANDBOX_LIMITS.maxItemsPerUpdate);
    const items = keywords.map((keyword) => ({ keywordId: keyword.keywordId, state: 'PAUSED' }));
    const put = (body: unknown) =>
      api(sandbox.url, {
        method: 'PUT',
        path: '/sp/keywords',
        token,
        profileId,
        mediaType: MediaType.keyword,
        body,
      });

    const tooMany = await put({ keywords: [...items, { keywordId: '1', state: 'PAUSED' }] });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toEqual({
      code: 'INVALID_ARGUMENT',
      details: 'at most 1000 keywords per request, got 1001',
    });
    expect(sandbox.admin.mutations().keywords).toEqual({});

    const atMost = await put({ keywords: items });
    expect(atMost.status).toBe(207);
    const { success, error } = (atMost.body as { keywords: { success: unknown[]; error: unknown[] } })
      .keywords;
    expect(success.length + error.length).toBe(SANDBOX_LIMITS.maxItemsPerUpdate);
  });

  it('holds for campaign updates too', async () => {
    const campaigns = await listed<Campaign>('/sp/campaigns/list', MediaType.campaign, 'campaigns');
    const items = campaigns.map((campaign) => ({ campaignId: campaign.campaignId, state: 'ENABLED' }));
    const tooMany = await api(sandbox.url, {
      method: 'PUT',
      path: '/sp/campaigns',
      token,
      profileId,
      mediaType: MediaType.campaign,
      body: { campaigns: [...items, { campaignId: '1', state: 'ENABLED' }] },
    });
    expect(tooMany.status).toBe(400);
    expect((tooMany.body as { details: string }).details).toBe(
      'at most 1000 campaigns per request, got 1001',
    );
  });
});
