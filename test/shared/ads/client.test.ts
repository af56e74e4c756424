import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../../sandbox/ads-api/server.ts';
import {
  AdsApiError,
  AdsAuthError,
  AdsRetryableError,
  AdsThrottledError,
} from '../../../shared/ads/errors.ts';
import { AdsRateLimiter } from '../../../shared/ads/rate-limit.ts';
import { MediaType } from '../../../shared/ads/types.ts';
import { classifyError, ErrorKind } from '../../../shared/errors.ts';
import { stackEnv, uniquePrefix } from '../../support/env.ts';
import type { LateCallerSpec } from '../../support/late-caller.ts';
import { clientFor, collect, lwaFor, testRedis } from './support.ts';

let sandbox: AdsSandbox;
let profileId: number;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    seed: 7,
    sizes: { profiles: 3, campaignsPerProfile: 4, adGroupsPerCampaign: 5, keywordsPerAdGroup: 50 },
    profileCapacity: { ratePerSecond: 1_000, burst: 1_000 },
  });
  profileId = sandbox.admin.profileIds()[0] as number;
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.admin.reset();
  sandbox.admin.setProfileCapacity({ ratePerSecond: 1_000, burst: 1_000 });
});

describe('listing', () => {
  it('pages through every keyword exactly once', async () => {
    const { client } = clientFor(sandbox.url);
    const keywords = await collect(client.keywords(profileId, { maxResults: 37 }));
    expect(keywords).toHaveLength(4 * 5 * 50);
    expect(new Set(keywords.map((keyword) => keyword.keywordId)).size).toBe(1_000);
    // ceil(1000 / 37) pages, one request each.
    expect(sandbox.admin.stats().profiles[String(profileId)]?.requests).toBe(28);
  });

  it('filters by state and id on the server', async () => {
    const { client } = clientFor(sandbox.url);
    const all = await collect(client.campaigns(profileId));
    const enabled = await collect(client.campaigns(profileId, { stateFilter: { include: ['ENABLED'] } }));
    expect(enabled.length).toBeGreaterThan(0);
    expect(enabled).toEqual(all.filter((campaign) => campaign.state === 'ENABLED'));
    const target = all[1]?.campaignId as string;
    const adGroups = await collect(client.adGroups(profileId, { campaignIdFilter: { include: [target] } }));
    expect(adGroups).toHaveLength(5);
    expect(adGroups.every((adGroup) => adGroup.campaignId === target)).toBe(true);
  });

  it('lists profiles across marketplaces', async () => {
    const { client } = clientFor(sandbox.url);
    const profiles = await client.listProfiles();
    expect(profiles.map((profile) => profile.countryCode)).toEqual(['US', 'CA', 'MX']);
  });

  it('refreshes an access token that expires mid-run once for all concurrent callers', async () => {
    const { client, tokens } = clientFor(sandbox.url);
    const profiles = sandbox.admin.profileIds();
    let pagesSeen = 0;
    const runs = Array.from({ length: 12 }, async (_, index) => {
      const ids: string[] = [];
      for await (const keyword of client.keywords(profiles[index % 3] as number, { maxResults: 100 })) {
        ids.push(keyword.keywordId);
        if (ids.length % 100 === 0 && ++pagesSeen === 24) sandbox.admin.expireTokens();
      }
      return ids.length;
    });
    expect(await Promise.all(runs)).toEqual(Array(12).fill(1_000));
    const stats = sandbox.admin.stats();
    expect(stats.unauthorized).toBeGreaterThan(0);
    expect(tokens.refreshCount).toBe(2);
    expect(stats.lwaGrants).toBe(2);
  });

  it('requires the client id and scope headers, a live token and the vendor media type', async () => {
    const token = await lwaFor(sandbox.url).accessToken();
    const call = (headers: Record<string, string>) =>
      fetch(new URL('/sp/campaigns/list', sandbox.url), { method: 'POST', headers, body: '{}' }).then(
        (r) => r.status,
      );
    const full = {
      authorization: `Bearer ${token}`,
      'amazon-advertising-api-clientid': 'adfleet-local',
      'amazon-advertising-api-scope': String(profileId),
      'content-type': MediaType.campaign,
    };
    expect(await call(full)).toBe(200);
    expect(await call({ ...full, authorization: 'Bearer nope' })).toBe(401);
    expect(await call({ ...full, 'amazon-advertising-api-clientid': 'someone-else' })).toBe(400);
    const { 'amazon-advertising-api-scope': _scope, ...unscoped } = full;
    expect(await call(unscoped)).toBe(400);
    expect(await call({ ...full, 'content-type': 'application/json' })).toBe(415);
  });

  it('reports refused LWA credentials as an outage of the credentials without echoing the secret', async () => {
    const tokens = lwaFor(sandbox.url, { clientSecret: 'wrong-secret-value' });
    const error = await tokens.accessToken().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AdsAuthError);
    // Not the message's fault: released and the credentials breaker told, never dead-lettered.
    expect(classifyError(error)).toMatchObject({
      kind: ErrorKind.Unavailable,
      dependency: 'ads-credentials',
    });
    expect(String((error as Error).message)).not.toContain('wrong-secret-value');
  });
});

describe('bulk updates (207)', () => {
  it('maps mixed results back to each item with Amazon error, and applies each valid change once', async () => {
    const { client } = clientFor(sandbox.url);
    const keywords = await collect(client.keywords(profileId));
    const archived = keywords.find((keyword) => keyword.state === 'ARCHIVED');
    const live = keywords.filter((keyword) => keyword.state !== 'ARCHIVED');
    const [first, second] = live;
    if (archived === undefined || first === undefined || second === undefined)
      throw new Error('seed lacks states');
    const results = await client.updateKeywords(profileId, [
      { keywordId: first.keywordId, bid: 1.25 },
      { keywordId: '999', bid: 1 },
      { keywordId: second.keywordId, bid: 5_000 },
      { keywordId: archived.keywordId, state: 'PAUSED' },
      { keywordId: first.keywordId, bid: 2 },
      { keywordId: second.keywordId, state: 'PAUSED' },
    ]);
    expect(results.map((result) => [result.index, result.ok ? 'ok' : result.code])).toEqual([
      [0, 'ok'],
      [1, 'entityNotFoundError'],
      [2, 'bidError'],
      [3, 'entityStateError'],
      [4, 'duplicateValueError'],
      // the bad bid at index 2 used the id; Amazon rejects the second mention too
      [5, 'duplicateValueError'],
    ]);
    expect(results[2]).toMatchObject({
      ok: false,
      retryable: false,
      message: 'bid must be between 0.02 and 1000 USD',
    });
    expect(sandbox.admin.mutations().keywords).toEqual({ [first.keywordId]: 1 });
    const after = await collect(
      client.keywords(profileId, { keywordIdFilter: { include: [first.keywordId] } }),
    );
    expect(after[0]?.bid).toBe(1.25);
  });

  it('validates campaign budgets per marketplace', async () => {
    const { client } = clientFor(sandbox.url);
    const japan = sandbox.admin.profileIds()[2] as number; // MX; budgets from 1 MXN
    const campaign = (
      await collect(client.campaigns(japan, { stateFilter: { include: ['ENABLED', 'PAUSED'] } }))
    )[0];
    if (campaign === undefined) throw new Error('seed lacks an editable campaign');
    const results = await client.updateCampaigns(japan, [
      { campaignId: campaign.campaignId, budget: { budget: 0.5, budgetType: 'DAILY' } },
    ]);
    expect(results[0]).toMatchObject({ ok: false, code: 'budgetError' });
    expect(sandbox.admin.mutations().campaigns).toEqual({});
  });

  it('refuses a batch larger than Amazon accepts before sending it', async () => {
    const { client } = clientFor(sandbox.url);
    const updates = Array.from({ length: 1_001 }, (_, index) => ({ keywordId: String(index), bid: 1 }));
    await expect(client.updateKeywords(profileId, updates)).rejects.toBeInstanceOf(AdsApiError);
    expect(sandbox.admin.stats().totals.requests).toBe(0);
  });
});

describe('failures', () => {
  it('retries 5xx and succeeds when the fault clears', async () => {
    const { client } = clientFor(sandbox.url);
    sandbox.admin.injectFaults({ failNext: 2, status: 503 });
    expect(await client.listProfiles()).toHaveLength(3);
    expect(sandbox.admin.stats().totals).toMatchObject({ requests: 3, failed: 2 });
  });

  it('surfaces persistent 5xx as an Ads API outage after maxAttempts', async () => {
    const { client } = clientFor(sandbox.url, { maxAttempts: 3 });
    sandbox.admin.injectFaults({ errorRate: 1, status: 500 });
    const error = await client.listProfiles().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AdsRetryableError);
    expect((error as AdsRetryableError).status).toBe(500);
    expect(classifyError(error)).toMatchObject({ kind: ErrorKind.Unavailable, dependency: 'ads-api' });
    expect(sandbox.admin.stats().totals.failed).toBe(3);
  });

  it('times out slow responses, retries, then surfaces a retryable error', async () => {
    const { client } = clientFor(sandbox.url, { timeoutMs: 100, maxAttempts: 2 });
    sandbox.admin.injectFaults({ latencyMs: 400 });
    const error = await client.listProfiles().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AdsRetryableError);
    expect((error as Error).message).toContain('timed out 2 times');
  });

  it('applies a held update its caller timed out on, and counts it as unanswered', async () => {
    const { client } = clientFor(sandbox.url, { timeoutMs: 100, maxAttempts: 1 });
    const keyword = (await collect(client.keywords(profileId))).find((k) => k.state !== 'ARCHIVED');
    if (keyword === undefined) throw new Error('seed lacks an editable keyword');
    sandbox.admin.injectFaults({ slowRate: 1, slowMs: 400 });
    const error = await client
      .updateKeywords(profileId, [{ keywordId: keyword.keywordId, bid: 3.33 }])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AdsRetryableError);
    // The sandbox applies it when the hold ends, after the caller has gone.
    await vi.waitFor(() => expect(sandbox.admin.mutations().keywords).toEqual({ [keyword.keywordId]: 1 }), {
      timeout: 5_000,
      interval: 50,
    });
    expect(sandbox.admin.unansweredMutations().keywords).toEqual({ [keyword.keywordId]: 1 });
    // The caller sends it again and sees the answer this time: applied twice, one unanswered.
    sandbox.admin.injectFaults({});
    const [result] = await client.updateKeywords(profileId, [{ keywordId: keyword.keywordId, bid: 3.33 }]);
    expect(result?.ok).toBe(true);
    expect(sandbox.admin.mutations().keywords).toEqual({ [keyword.keywordId]: 2 });
    expect(sandbox.admin.unansweredMutations().keywords).toEqual({ [keyword.keywordId]: 1 });
  });

  it("stops at once when the caller's signal aborts, without retrying", async () => {
    const { client } = clientFor(sandbox.url, { timeoutMs: 5_000 });
    sandbox.admin.injectFaults({ latencyMs: 1_000 });
    const started = Date.now();
    const error = await client
      .listProfiles({ signal: AbortSignal.timeout(150) })
      .catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('TimeoutError');
    expect(Date.now() - started).toBeLessThan(900);
    expect(sandbox.admin.stats().totals.requests).toBe(1);
  });

  it('honours Retry-After on 429 and then succeeds', async () => {
    const { client } = clientFor(sandbox.url);
    sandbox.admin.setProfileCapacity({ ratePerSecond: 1, burst: 1 }, profileId);
    const started = Date.now();
    await collect(client.campaigns(profileId));
    await collect(client.campaigns(profileId));
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(sandbox.admin.stats().profiles[String(profileId)]).toMatchObject({ requests: 3, throttled: 1 });
  });

  it('shares a Retry-After block fleet-wide through the limiter, and defers past the wait budget', async () => {
    const redis = testRedis();
    try {
      const keyPrefix = uniquePrefix('client');
      const limiter = () => new AdsRateLimiter({ redis, keyPrefix, clientId: 'adfleet-local' });
      // Worker A got a 429 with Retry-After: 1 s for this profile.
      await limiter().recordThrottle(profileId, 1_000);
      // Worker B may wait 300 ms at most: it defers (ThrottledError) without calling Amazon.
      const impatient = clientFor(sandbox.url, { limiter: limiter(), maxThrottleWaitMs: 300 }).client;
      const error = await collect(impatient.campaigns(profileId)).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AdsThrottledError);
      expect(classifyError(error)).toMatchObject({ kind: ErrorKind.Throttled });
      expect((error as AdsThrottledError).retryAfterMs).toBeGreaterThan(300);
      expect(sandbox.admin.stats().totals.requests).toBe(0);
      // Worker C may wait: it calls once, after the block.
      const patient = clientFor(sandbox.url, { limiter: limiter() }).client;
      const started = Date.now();
      await collect(patient.campaigns(profileId));
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(sandbox.admin.stats().totals).toMatchObject({ requests: 1, throttled: 0 });
    } finally {
      redis.disconnect();
    }
  });

  it("restarts a profile's call schedule with a 429's block: the first call after it leaves when the block ends", async () => {
    const redis = testRedis();
    try {
      const keyPrefix = uniquePrefix('client');
      const stateKey = `${keyPrefix}:ads:rate:profile:${profileId}`;
      // A profile at 1 req/s, learned 10 s ago (in its plateau), nothing blocked.
      const now = Date.now();
      await redis.hset(stateKey, {
        version: '1',
        ceiling: '1',
        since: String(now - 10_000),
        throttledBefore: '1',
        successes: '10',
        blockedUntil: '0',
      });
      const limiter = new AdsRateLimiter({ redis, keyPrefix, clientId: 'adfleet-local' });
      // One call leaves now; another books the slot about 1 s ahead and waits for it.
      await limiter.acquire(profileId);
      const sleeper = limiter.acquire(profileId).then(() => Date.now());
      await sleep(50);
      // The first call's answer is a 429 with Retry-After 300 ms: the booked slot is forfeit,
      // and the throttled call asks again.
      const throttledAt = Date.now();
      await limiter.recordThrottle(profileId, 300);
      await limiter.acquire(profileId);
      const retried = Date.now();
      // It leaves when the block ends, not behind the slot booked before the 429 (that was
      // 1.9 s after it); the sleeper, finding its slot forfeit, books the one after it.
      expect(retried - throttledAt).toBeGreaterThanOrEqual(290);
      expect(retried - throttledAt).toBeLessThan(700);
      expect((await sleeper) - retried).toBeGreaterThan(800);
      await limiter.close();
    } finally {
      redis.disconnect();
    }
  });

  it('keeps departures one interval apart when a caller leaves late, whoever leaves next', async () => {
    const redis = testRedis();
    const keyPrefix = uniquePrefix('client');
    const rate = { adaptive: false, profileRate: { initialRate: 1 } } as const;
    // Another process: its first call leaves now, its second books the slot 1 s on, and its
    // event loop is stalled from 0.9 s to 1.3 s, so that call leaves 0.3 s late.
    const late = new Worker(new URL('../../support/late-caller.ts', import.meta.url), {
      workerData: {
        redisUrl: stackEnv().REDIS_URL as string,
        keyPrefix,
        profileId,
        ratePerSecond: 1,
        blockAtMs: 900,
        blockForMs: 400,
      } satisfies LateCallerSpec,
    });
    try {
      const departures = new Promise<{ first: number; second: number }>((resolve, reject) => {
        late.on('message', (message: { first: number; second?: number }) => {
          if (message.second !== undefined) resolve({ first: message.first, second: message.second });
        });
        late.on('error', reject);
      });
      await once(late, 'message');
      await sleep(100);
      // This process books the slot after it (2 s on) and its timer fires on time: 0.7 s
      // after the late call, which a bucket of one at 1 request/s answers with a 429.
      const limiter = new AdsRateLimiter({ redis, keyPrefix, clientId: 'adfleet-local', ...rate });
      await limiter.acquire(profileId);
      const mine = Date.now();
      const { first, second } = await departures;
      expect(second - first).toBeGreaterThan(1_250);
      // It waits until one interval after the late call left instead.
      expect(mine - second).toBeGreaterThanOrEqual(970);
      await limiter.close();
    } finally {
      await late.terminate();
      redis.disconnect();
    }
  });

  it('starts a profile whose rate it learned before an idle spell at that rate, not from a stale curve', async () => {
    const redis = testRedis();
    try {
      const keyPrefix = uniquePrefix('client');
      const stateKey = `${keyPrefix}:ads:rate:profile:${profileId}`;
      // Last night: a ceiling of 20 req/s learned at a 429 an hour ago, 5,000 successes since.
      const anHourAgo = Date.now() - 3_600_000;
      await redis.hset(stateKey, {
        version: '3',
        ceiling: '20',
        since: String(anHourAgo),
        throttledBefore: '1',
        successes: '5000',
        blockedUntil: String(anHourAgo + 1_000),
      });
      const limiter = new AdsRateLimiter({ redis, keyPrefix, clientId: 'adfleet-local' });
      expect(await limiter.currentRate(profileId)).toBeCloseTo(20, 0);
      const resumed = await redis.hgetall(stateKey);
      expect(Number(resumed.ceiling)).toBe(20);
      expect(Number(resumed.successes)).toBe(40);
      expect(Date.now() - Number(resumed.since)).toBeGreaterThanOrEqual(2_000);
      expect(Date.now() - Number(resumed.since)).toBeLessThan(3_000);
      // A second process reading it now finds it resumed and writes nothing.
      const other = new AdsRateLimiter({ redis, keyPrefix, clientId: 'adfleet-local' });
      expect(await other.currentRate(profileId)).toBeCloseTo(20, 0);
      expect((await redis.hgetall(stateKey)).version).toBe(resumed.version);
      await limiter.close();
      await other.close();
    } finally {
      redis.disconnect();
    }
  });
});
