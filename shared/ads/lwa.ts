import { ThrottledError } from '../errors.ts';
import { AdsAuthError, AdsRetryableError } from './errors.ts';
import { parseRetryAfterMs } from './retry-after.ts';

/**
 * Login with Amazon access tokens, cached per process. Every Ads call needs a bearer token;
 * tokens last about an hour. One refresh serves every caller: concurrent callers that find
 * no valid token wait on the same in-flight exchange, and a burst of 401s caused by one
 * expired token invalidates it once (only the caller holding the current token can clear it).
 */

export interface LwaOptions {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly refreshToken: string;
  /** Refresh this long before `expires_in` runs out, so no call leaves with a token about to die. */
  readonly refreshSkewMs?: number;
  readonly timeoutMs?: number;
}

interface CachedToken {
  readonly value: string;
  readonly expiresAt: number;
}

export interface AccessTokenSource {
  accessToken(signal?: AbortSignal): Promise<string>;
  /** The API said 401 to `token`: drop it if it is still the cached one. */
  invalidate(token: string): void;
}

export class LwaTokenProvider implements AccessTokenSource {
  private readonly options: LwaOptions;
  private cached: CachedToken | undefined;
  private refreshing: Promise<CachedToken> | undefined;
  /** Token exchanges made by this process; tests read it to prove "refreshed once". */
  refreshCount = 0;

  constructor(options: LwaOptions) {
    this.options = options;
  }

  async accessToken(signal?: AbortSignal): Promise<string> {
    const skew = this.options.refreshSkewMs ?? 60_000;
    if (this.cached !== undefined && this.cached.expiresAt - skew > Date.now()) return this.cached.value;
    this.refreshing ??= this.exchange().finally(() => {
      this.refreshing = undefined;
    });
    // The caller's signal abandons its wait, not the shared exchange other callers rely on.
    const token = signal === undefined ? await this.refreshing : await abortable(this.refreshing, signal);
    return token.value;
  }

  invalidate(token: string): void {
    if (this.cached?.value === token) this.cached = undefined;
  }

  private async exchange(): Promise<CachedToken> {
    const { tokenUrl, clientId, clientSecret, refreshToken } = this.options;
    const startedAt = Date.now();
    let response: Response;
    try {
      response = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          client_id: clientId,
          client_secret: clientSecret,
        }),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new AdsRetryableError(undefined, 'LWA token exchange failed: network error or timeout', {
        cause: error,
      });
    }
    const body = (await response.json().catch(() => ({}))) as {
      access_token?: unknown;
      expires_in?: unknown;
      error?: unknown;
    };
    if (!response.ok) {
      // LWA's `error` is a code like invalid_grant: safe to log, unlike the request that caused it.
      const code = typeof body.error === 'string' ? body.error : 'unknown_error';
      if (response.status === 429) {
        // Rate limited like any Ads call: deferred by the chassis, not spent from the DLQ budget.
        throw new ThrottledError(
          `LWA token exchange rate limited (${code})`,
          parseRetryAfterMs(response.headers.get('retry-after')),
        );
      }
      if (response.status >= 500) {
        throw new AdsRetryableError(
          response.status,
          `LWA token exchange failed with ${response.status} (${code})`,
        );
      }
      throw new AdsAuthError(`LWA refused the app's credentials with ${response.status} (${code})`, {
        status: response.status,
      });
    }
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
      throw new AdsRetryableError(response.status, 'LWA token response lacks access_token or expires_in');
    }
    this.refreshCount += 1;
    // Expiry counts from when we asked, not when the answer arrived: never overestimate it.
    this.cached = { value: body.access_token, expiresAt: startedAt + body.expires_in * 1000 };
    return this.cached;
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
