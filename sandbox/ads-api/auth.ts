import { randomBytes } from 'node:crypto';

/**
 * Login with Amazon as the sandbox plays it: a refresh token (with the app's client id and
 * secret) buys an access token that expires after `tokenTtlSeconds`. Access tokens are
 * random and remembered here; an unknown or expired one gets 401, as at Amazon.
 */

export interface LwaCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly refreshToken: string;
}

export type GrantResult =
  | { readonly ok: true; readonly body: Record<string, unknown> }
  | { readonly ok: false; readonly status: number; readonly body: Record<string, unknown> };

export class AccessTokens {
  private readonly credentials: LwaCredentials;
  private readonly tokenTtlSeconds: number;
  private readonly expiries = new Map<string, number>();
  /** While set, the refresh token is treated as revoked and no issued token works. */
  private refusing = false;

  constructor(credentials: LwaCredentials, tokenTtlSeconds: number) {
    this.credentials = credentials;
    this.tokenTtlSeconds = tokenTtlSeconds;
  }

  grant(form: URLSearchParams, now: number): GrantResult {
    if (form.get('grant_type') !== 'refresh_token') {
      return {
        ok: false,
        status: 400,
        body: { error: 'unsupported_grant_type', error_description: 'only refresh_token is supported' },
      };
    }
    if (
      form.get('client_id') !== this.credentials.clientId ||
      form.get('client_secret') !== this.credentials.clientSecret
    ) {
      return {
        ok: false,
        status: 401,
        body: { error: 'invalid_client', error_description: 'Client authentication failed' },
      };
    }
    if (this.refusing || form.get('refresh_token') !== this.credentials.refreshToken) {
      return {
        ok: false,
        status: 400,
        body: { error: 'invalid_grant', error_description: 'The request has an invalid grant parameter' },
      };
    }
    const accessToken = `Atza|${randomBytes(24).toString('base64url')}`;
    this.expiries.set(accessToken, now + this.tokenTtlSeconds * 1000);
    return {
      ok: true,
      body: {
        access_token: accessToken,
        refresh_token: this.credentials.refreshToken,
        token_type: 'bearer',
        expires_in: this.tokenTtlSeconds,
      },
    };
  }

  /** True when the Authorization header carries a live token issued here. */
  isValid(authorization: string | undefined, now: number): boolean {
    if (this.refusing) return false;
    const match = /^Bearer (.+)$/.exec(authorization ?? '');
    const expiresAt = match?.[1] === undefined ? undefined : this.expiries.get(match[1]);
    return expiresAt !== undefined && expiresAt > now;
  }

  /** Every token issued so far stops working now (a test's "token expired mid-run"). */
  expireAll(now: number): void {
    for (const token of this.expiries.keys()) this.expiries.set(token, now);
  }

  /**
   * Plays an advertiser revoking the app's access: grants answer `invalid_grant` and every
   * token, issued before or not, is refused until this is turned off again.
   */
  refuse(refusing: boolean): void {
    this.refusing = refusing;
  }

  clientId(): string {
    return this.credentials.clientId;
  }
}
