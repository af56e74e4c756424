import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AdsSandbox, startAdsSandbox } from '../../sandbox/ads-api/server.ts';
import { accessToken, adminPost, api, grantToken } from './support.ts';

let sandbox: AdsSandbox;

beforeAll(async () => {
  sandbox = await startAdsSandbox({
    sizes: { profiles: 1, campaignsPerProfile: 1, adGroupsPerCampaign: 1, keywordsPerAdGroup: 1 },
  });
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  sandbox.admin.reset();
});

const profilesWith = (token: string) => api(sandbox.url, { method: 'GET', path: '/v2/profiles', token });

describe('refuseCredentials', () => {
  it('answers invalid_grant and 401 while on, and lets the same token back in when off', async () => {
    const token = await accessToken(sandbox.url);
    expect((await profilesWith(token)).status).toBe(200);

    const on = await adminPost(sandbox.url, '/_sandbox/credentials', { refuse: true });
    expect(on.status).toBe(200);
    const grant = await grantToken(sandbox.url);
    expect(grant.status).toBe(400);
    expect(grant.body).toMatchObject({ error: 'invalid_grant' });
    const refused = await profilesWith(token);
    expect(refused.status).toBe(401);
    expect(sandbox.admin.stats()).toMatchObject({ unauthorized: 1, lwaGrants: 1 });

    sandbox.admin.refuseCredentials(false);
    expect((await profilesWith(token)).status).toBe(200);
    expect((await grantToken(sandbox.url)).status).toBe(200);
  });

  it('is turned off by reset, and its body is checked', async () => {
    sandbox.admin.refuseCredentials(true);
    expect((await grantToken(sandbox.url)).status).toBe(400);
    sandbox.admin.reset();
    expect((await grantToken(sandbox.url)).status).toBe(200);
    const bad = await adminPost(sandbox.url, '/_sandbox/credentials', { refuse: 'yes' });
    expect(bad.status).toBe(400);
    expect((bad.body as { details: string }).details).toMatch(/^refuse: /);
  });
});
