import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { type Campaign, type Keyword, MediaType } from '../../shared/ads/types.ts';
import { accessToken, adminGet, adminPost, api } from './support.ts';

let sandbox: AdsSandbox;
let token: string;
let profileId: number;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    seed: 11,
    sizes: { profiles: 2, campaignsPerProfile: 3, adGroupsPerCampaign: 2, keywordsPerAdGroup: 5 },
    profileCapacity: { ratePerSecond: 1_000, burst: 1_000 },
  });
  token = await accessToken(sandbox.url);
  profileId = sandbox.admin.profileIds()[1] as number;
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.admin.reset();
});

async function listKeywords(): Promise<{ keywords: Keyword[]; totalResults: number }> {
  const response = await api(sandbox.url, {
    path: '/sp/keywords/list',
    token,
    profileId,
    mediaType: MediaType.keyword,
    body: { maxResults: 1_000 },
  });
  expect(response.status).toBe(200);
  return response.body as { keywords: Keyword[]; totalResults: number };
}

async function listCampaigns(): Promise<Campaign[]> {
  const response = await api(sandbox.url, {
    path: '/sp/campaigns/list',
    token,
    profileId,
    mediaType: MediaType.campaign,
    body: {},
  });
  return (response.body as { campaigns: Campaign[] }).campaigns;
}

function editable<T extends { state: string }>(entities: readonly T[]): T[] {
  return entities.filter((entity) => entity.state !== 'ARCHIVED');
}

describe('entity', () => {
  it('reads an entity as the list endpoint returns it, in process and over HTTP', async () => {
    const { keywords } = await listKeywords();
    const keyword = keywords[7] as Keyword;
    expect(sandbox.admin.entity('keyword', Number(keyword.keywordId))).toEqual(keyword);
    const response = await adminGet(sandbox.url, `/_sandbox/entities/keyword/${keyword.keywordId}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual(keyword);
    const [campaign] = await listCampaigns();
    expect((await adminGet(sandbox.url, `/_sandbox/entities/campaign/${campaign?.campaignId}`)).body).toEqual(
      campaign,
    );
  });

  it('returns a copy: changing it changes nothing in the sandbox', async () => {
    const { keywords } = await listKeywords();
    const id = Number(keywords[0]?.keywordId);
    const copy = sandbox.admin.entity('keyword', id) as { bid: number };
    copy.bid = 999;
    expect(sandbox.admin.entity('keyword', id)?.bid).toBe(keywords[0]?.bid);
  });

  it('answers undefined / 404 for an unknown id and 400 for an unknown kind', async () => {
    expect(sandbox.admin.entity('keyword', 5_000_000_000_000 + 99_999_999)).toBeUndefined();
    expect(sandbox.admin.entity('adGroup', 1)).toBeUndefined();
    expect((await adminGet(sandbox.url, '/_sandbox/entities/keyword/123')).status).toBe(404);
    const badKind = await adminGet(sandbox.url, '/_sandbox/entities/target/123');
    expect(badKind.status).toBe(400);
    expect(JSON.stringify(badKind.body)).toContain('kind');
  });
});

describe('removeEntities / restoreEntities', () => {
  it('drops removed keywords from the list and refuses updates to them until restored', async () => {
    const before = await listKeywords();
    const targets = editable(before.keywords).slice(0, 2);
    const ids = targets.map((keyword) => keyword.keywordId);

    const removed = await adminPost(sandbox.url, '/_sandbox/entities/remove', { kind: 'keyword', ids });
    expect(removed.status).toBe(200);
    const after = await listKeywords();
    expect(after.totalResults).toBe(before.totalResults - 2);
    expect(after.keywords.map((keyword) => keyword.keywordId)).not.toContain(ids[0]);
    expect(sandbox.admin.entity('keyword', Number(ids[0]))).toBeUndefined();
    expect((await adminGet(sandbox.url, `/_sandbox/entities/keyword/${ids[0]}`)).status).toBe(404);

    const update = await api(sandbox.url, {
      method: 'PUT',
      path: '/sp/keywords',
      token,
      profileId,
      mediaType: MediaType.keyword,
      body: { keywords: [{ keywordId: ids[0], bid: 1.5 }] },
    });
    expect(update.status).toBe(207);
    expect(update.body).toMatchObject({
      keywords: { success: [], error: [{ index: 0, errors: [{ errorType: 'entityNotFoundError' }] }] },
    });
    expect(sandbox.admin.mutations().keywords).toEqual({});

    sandbox.admin.restoreEntities(
      'keyword',
      ids.map((id) => Number(id)),
    );
    const restored = await listKeywords();
    expect(restored).toEqual(before);
  });

  it('restores over HTTP and removes campaigns from the campaign list', async () => {
    const campaigns = await listCampaigns();
    const id = Number(campaigns[0]?.campaignId);
    sandbox.admin.removeEntities('campaign', [id]);
    expect((await listCampaigns()).map((campaign) => campaign.campaignId)).not.toContain(String(id));
    const restored = await adminPost(sandbox.url, '/_sandbox/entities/restore', {
      kind: 'campaign',
      ids: [id],
    });
    expect(restored.status).toBe(200);
    expect(await listCampaigns()).toEqual(campaigns);
  });

  it('rejects an unknown id (404) and a body without ids (400, naming the field)', async () => {
    expect(() => sandbox.admin.removeEntities('keyword', [42])).toThrow('no keyword 42');
    const unknown = await adminPost(sandbox.url, '/_sandbox/entities/remove', { kind: 'keyword', ids: [42] });
    expect(unknown.status).toBe(404);
    const missing = await adminPost(sandbox.url, '/_sandbox/entities/remove', { kind: 'keyword' });
    expect(missing.status).toBe(400);
    expect((missing.body as { details: string }).details).toMatch(/^ids: /);
  });
});

describe('updateEntities', () => {
  it('changes bids, budgets and states behind the fleet: lists show them, no mutation is counted', async () => {
    const { keywords } = await listKeywords();
    const keyword = editable(keywords)[0] as Keyword;
    const [campaign] = await listCampaigns();
    const response = await adminPost(sandbox.url, '/_sandbox/entities/update', {
      kind: 'keyword',
      changes: [{ id: keyword.keywordId, bid: 3.21, state: 'ARCHIVED' }],
    });
    expect(response.status).toBe(200);
    sandbox.admin.updateEntities('campaign', [
      { id: Number(campaign?.campaignId), budget: 77.5, state: 'PAUSED' },
    ]);

    const listed = (await listKeywords()).keywords.find(
      (candidate) => candidate.keywordId === keyword.keywordId,
    );
    expect(listed).toEqual({ ...keyword, bid: 3.21, state: 'ARCHIVED' });
    expect((await listCampaigns())[0]).toEqual({
      ...campaign,
      state: 'PAUSED',
      budget: { budget: 77.5, budgetType: 'DAILY' },
    });
    const adGroupId = Number(keyword.adGroupId);
    sandbox.admin.updateEntities('adGroup', [{ id: adGroupId, bid: 0.77 }]);
    expect(sandbox.admin.entity('adGroup', adGroupId)?.defaultBid).toBe(0.77);
    expect(sandbox.admin.mutations()).toEqual({ keywords: {}, campaigns: {} });
  });

  it('applies nothing when one change does not fit, and names the wrong field', async () => {
    const { keywords } = await listKeywords();
    const [first, second] = keywords as [Keyword, Keyword];
    const budgetOnKeyword = await adminPost(sandbox.url, '/_sandbox/entities/update', {
      kind: 'keyword',
      changes: [
        { id: first.keywordId, bid: 9.99 },
        { id: second.keywordId, budget: 10 },
      ],
    });
    expect(budgetOnKeyword.status).toBe(400);
    expect((budgetOnKeyword.body as { details: string }).details).toContain('no budget');
    expect(sandbox.admin.entity('keyword', Number(first.keywordId))?.bid).toBe(first.bid);

    const badBid = await adminPost(sandbox.url, '/_sandbox/entities/update', {
      kind: 'keyword',
      changes: [{ id: first.keywordId, bid: 'high' }],
    });
    expect(badBid.status).toBe(400);
    expect((badBid.body as { details: string }).details).toMatch(/^changes\.0\.bid: /);

    const badState = await adminPost(sandbox.url, '/_sandbox/entities/update', {
      kind: 'keyword',
      changes: [{ id: first.keywordId, state: 'DELETED' }],
    });
    expect((badState.body as { details: string }).details).toMatch(/^changes\.0\.state: /);
  });
});
