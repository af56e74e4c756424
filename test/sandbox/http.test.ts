import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AdsSandbox, SANDBOX_DEFAULTS, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { MediaType } from '../../shared/ads/types.ts';
import { accessToken } from './support.ts';

/**
 * The sandbox's wire behaviour, byte for byte: status, the headers clients read and the exact
 * body of each refusal in the request pipeline, so a change of router cannot shift any of it.
 */

let sandbox: AdsSandbox;
let token: string;
let profileId: number;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    seed: 3,
    sizes: { profiles: 2, campaignsPerProfile: 2, adGroupsPerCampaign: 1, keywordsPerAdGroup: 2 },
    profileCapacity: { ratePerSecond: 1_000, burst: 1_000 },
  });
  token = await accessToken(sandbox.url);
  profileId = sandbox.admin.profileIds()[0] as number;
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.admin.reset();
  sandbox.admin.setProfileCapacity({ ratePerSecond: 1_000, burst: 1_000 });
});

interface Wire {
  status: number;
  contentType: string | null;
  retryAfter?: string;
  text: string;
}

async function wire(path: string, init: RequestInit = {}): Promise<Wire> {
  const response = await fetch(new URL(path, sandbox.url), init);
  const text = await response.text();
  expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
  const retryAfter = response.headers.get('retry-after');
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    ...(retryAfter === null ? {} : { retryAfter }),
    text,
  };
}

function scoped(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const headers: Record<string, string | undefined> = {
    authorization: `Bearer ${token}`,
    'amazon-advertising-api-clientid': SANDBOX_DEFAULTS.credentials.clientId,
    'amazon-advertising-api-scope': String(profileId),
    'content-type': MediaType.campaign,
    accept: MediaType.campaign,
    ...overrides,
  };
  return Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined)) as Record<
    string,
    string
  >;
}

const refusal = (status: number, code: string, details: string, extra: Partial<Wire> = {}): Wire => ({
  status,
  contentType: 'application/json',
  text: JSON.stringify({ code, details }),
  ...extra,
});

const listCampaigns = (headers: Record<string, string>, body = '{}') =>
  wire('/sp/campaigns/list', { method: 'POST', headers, body });

describe('API pipeline', () => {
  it('refuses in order: token, client id, scope, media types, body', async () => {
    expect(await listCampaigns(scoped({ authorization: undefined }))).toEqual(
      refusal(401, 'UNAUTHORIZED', 'Not authorized to access this advertiser'),
    );
    expect(await listCampaigns(scoped({ 'amazon-advertising-api-clientid': 'someone-else' }))).toEqual(
      refusal(400, 'MISSING_CLIENT_ID', 'Amazon-Advertising-API-ClientId header is missing or unknown'),
    );
    const scopeDetails = 'Amazon-Advertising-API-Scope header is missing or not a profile of this client';
    expect(await listCampaigns(scoped({ 'amazon-advertising-api-scope': undefined }))).toEqual(
      refusal(400, 'INVALID_SCOPE', scopeDetails),
    );
    expect(await listCampaigns(scoped({ 'amazon-advertising-api-scope': '12345' }))).toEqual(
      refusal(401, 'INVALID_SCOPE', scopeDetails),
    );
    expect(await listCampaigns(scoped({ 'content-type': 'application/json' }))).toEqual(
      refusal(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${MediaType.campaign}`),
    );
    expect(await listCampaigns(scoped({ accept: 'application/json' }))).toEqual(
      refusal(406, 'NOT_ACCEPTABLE', `Accept must include ${MediaType.campaign}`),
    );
    expect(await listCampaigns(scoped(), '{"maxResults":')).toEqual(
      refusal(400, 'MALFORMED_REQUEST', 'request body is not valid JSON'),
    );
    expect(await listCampaigns(scoped(), JSON.stringify({ pad: 'x'.repeat(5 * 1024 * 1024) }))).toEqual(
      refusal(413, 'PAYLOAD_TOO_LARGE', 'request body too large'),
    );
    // Nothing above reached the capacity check.
    expect(sandbox.admin.stats().totals.requests).toBe(0);
    expect(sandbox.admin.stats().unauthorized).toBe(1);
  });

  it('answers in the vendor media type, with parameters and */* accepted', async () => {
    const response = await listCampaigns(
      scoped({ 'content-type': `${MediaType.campaign}; charset=utf-8`, accept: '*/*' }),
      '{"maxResults":1}',
    );
    expect(response.status).toBe(200);
    expect(response.contentType).toBe(MediaType.campaign);
    const body = JSON.parse(response.text) as {
      campaigns: unknown[];
      totalResults: number;
      nextToken: string;
    };
    expect(body.campaigns).toHaveLength(1);
    expect(body.totalResults).toBe(2);
    expect(typeof body.nextToken).toBe('string');
    const noBody = await wire('/sp/campaigns/list?ignored=1', { method: 'POST', headers: scoped() });
    expect(noBody.status).toBe(200);
  });

  it('refuses bad list arguments with 400', async () => {
    expect(await listCampaigns(scoped(), '{"maxResults":1001}')).toEqual(
      refusal(400, 'INVALID_ARGUMENT', 'maxResults must be an integer from 1 to 1000'),
    );
    expect(await listCampaigns(scoped(), '{"nextToken":"nope"}')).toEqual(
      refusal(400, 'INVALID_ARGUMENT', 'nextToken is invalid'),
    );
    const empty = await wire('/sp/keywords', {
      method: 'PUT',
      headers: scoped({ 'content-type': MediaType.keyword, accept: MediaType.keyword }),
      body: '{"keywords":[]}',
    });
    expect(empty).toEqual(refusal(400, 'INVALID_ARGUMENT', 'keywords must be a non-empty array'));
  });

  it('throttles with 429 and Retry-After in whole seconds, and injects faults after admission', async () => {
    sandbox.admin.setProfileCapacity({ ratePerSecond: 0.5, burst: 1 }, profileId);
    expect((await listCampaigns(scoped())).status).toBe(200);
    expect(await listCampaigns(scoped())).toEqual(
      refusal(429, 'TOO_MANY_REQUESTS', 'Request was throttled', { retryAfter: '2' }),
    );
    sandbox.admin.setProfileCapacity({ ratePerSecond: 1_000, burst: 1_000 }, profileId);
    // A raised limit does not fill the bucket: its first token comes 1 ms later (a call
    // within that millisecond of the change was refused 429 in a CI run).
    await sleep(20);
    sandbox.admin.injectFaults({ failNext: 1, status: 502 });
    expect(await listCampaigns(scoped())).toEqual(refusal(502, 'SERVER_IS_BUSY', 'Injected failure'));
    expect(sandbox.admin.stats().totals).toEqual({ requests: 3, throttled: 1, failed: 1 });
  });

  it('lists profiles unscoped, as plain JSON', async () => {
    const response = await wire('/v2/profiles', {
      headers: { authorization: `Bearer ${token}`, 'amazon-advertising-api-clientid': 'adfleet-local' },
    });
    expect(response.status).toBe(200);
    expect(response.contentType).toBe('application/json');
    expect((JSON.parse(response.text) as unknown[]).length).toBe(2);
  });

  it('answers 404 for unknown routes and methods', async () => {
    expect(await wire('/nope')).toEqual(refusal(404, 'NOT_FOUND', 'no route GET /nope'));
    expect(await wire('/sp/keywords', { headers: scoped() })).toEqual(
      refusal(404, 'NOT_FOUND', 'no route GET /sp/keywords'),
    );
    expect(await wire('/_sandbox/nope', { method: 'POST' })).toEqual(
      refusal(404, 'NOT_FOUND', 'no admin route POST /_sandbox/nope'),
    );
  });
});

describe('LWA token grant', () => {
  const grant = (form: Record<string, string>) =>
    wire('/auth/o2/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  const { clientId, clientSecret, refreshToken } = SANDBOX_DEFAULTS.credentials;

  it('answers OAuth errors as LWA does', async () => {
    expect(await grant({ grant_type: 'password' })).toEqual({
      status: 400,
      contentType: 'application/json',
      text: '{"error":"unsupported_grant_type","error_description":"only refresh_token is supported"}',
    });
    expect(
      await grant({
        grant_type: 'refresh_token',
        client_id: clientId,
        client_secret: 'x',
        refresh_token: refreshToken,
      }),
    ).toEqual({
      status: 401,
      contentType: 'application/json',
      text: '{"error":"invalid_client","error_description":"Client authentication failed"}',
    });
    const ok = await grant({
      grant_type: 'refresh_token',
      client_id: clientId,
      client_secret: clientSecret,
      refresh_token: refreshToken,
    });
    expect(ok.status).toBe(200);
    expect(ok.contentType).toBe('application/json');
    expect(JSON.parse(ok.text)).toMatchObject({ token_type: 'bearer', expires_in: 3_600 });
  });
});

describe('admin routes', () => {
  it('answers stats, mutations and the existing setters', async () => {
    const stats = await wire('/_sandbox/stats');
    expect(stats.status).toBe(200);
    expect(JSON.parse(stats.text)).toMatchObject({ totals: { requests: 0 } });
    expect((await wire('/_sandbox/mutations')).text).toBe('{"keywords":{},"campaigns":{}}');
    const post = (path: string, body: unknown) =>
      wire(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/_sandbox/capacity', { profileId, ratePerSecond: 7 })).text).toBe('{"ok":true}');
    expect(sandbox.admin.profileCapacity(profileId)).toEqual({ ratePerSecond: 7, burst: 7 });
    expect((await post('/_sandbox/client-capacity', { ratePerSecond: 50, burst: 60 })).status).toBe(200);
    expect((await post('/_sandbox/faults', { failNext: 1 })).status).toBe(200);
    expect((await post('/_sandbox/tokens/expire', {})).status).toBe(200);
    expect((await post('/_sandbox/reset', {})).status).toBe(200);
    const bad = await post('/_sandbox/capacity', { ratePerSecond: 'fast' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).details).toMatch(/^ratePerSecond: /);
    const malformed = await wire('/_sandbox/faults', { method: 'POST', body: '{' });
    expect(malformed).toEqual(refusal(400, 'MALFORMED_REQUEST', 'request body is not valid JSON'));
  });
});
