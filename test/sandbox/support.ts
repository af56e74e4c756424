import { SANDBOX_DEFAULTS } from '../../sandbox/ads-api/server.ts';

/**
 * Raw HTTP against a sandbox, as a client or an operator would speak to it, so the tests see
 * status codes, headers and bodies exactly as sent.
 */

export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

async function read(response: Response): Promise<RawResponse> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? undefined : JSON.parse(text),
  };
}

export async function grantToken(
  url: string,
  refreshToken: string = SANDBOX_DEFAULTS.credentials.refreshToken,
) {
  const { clientId, clientSecret } = SANDBOX_DEFAULTS.credentials;
  return read(
    await fetch(new URL('/auth/o2/token', url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: clientId,
        client_secret: clientSecret,
      }).toString(),
    }),
  );
}

export async function accessToken(url: string): Promise<string> {
  const { status, body } = await grantToken(url);
  if (status !== 200) throw new Error(`token grant answered ${status}: ${JSON.stringify(body)}`);
  return (body as { access_token: string }).access_token;
}

export interface ApiCall {
  readonly method?: string;
  readonly path: string;
  readonly token: string;
  readonly profileId?: number;
  readonly mediaType?: string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

export async function api(url: string, call: ApiCall): Promise<RawResponse> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${call.token}`,
    'amazon-advertising-api-clientid': SANDBOX_DEFAULTS.credentials.clientId,
    ...(call.profileId === undefined ? {} : { 'amazon-advertising-api-scope': String(call.profileId) }),
    ...(call.mediaType === undefined ? {} : { 'content-type': call.mediaType, accept: call.mediaType }),
    ...call.headers,
  };
  return read(
    await fetch(new URL(call.path, url), {
      method: call.method ?? 'POST',
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
    }),
  );
}

export async function adminGet(url: string, path: string): Promise<RawResponse> {
  return read(await fetch(new URL(path, url)));
}

export async function adminPost(url: string, path: string, body: unknown): Promise<RawResponse> {
  return read(
    await fetch(new URL(path, url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    }),
  );
}
