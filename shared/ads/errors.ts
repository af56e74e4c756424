import { Dependency, tagOutage } from '../dependencies.ts';
import { FatalError, RetryableError, ThrottledError } from '../errors.ts';

/**
 * Ads API failures in the fleet's error vocabulary (shared/errors.ts), so `classifyError`
 * already knows what each means for a message: a 4xx the request itself caused is fatal,
 * 5xx and timeouts (after the client's own retries) are an Ads API outage, refused
 * credentials (LWA, 401 after a fresh token, 403) an outage of the app's credentials: both
 * release the message and feed a circuit breaker (shared/breakers.ts) instead of spending
 * its budget or dead-lettering it. Rate limiting is throttled with the delay to wait.
 * Messages carry status and Amazon's code, never a token or a header value.
 */

/** Amazon refused the request as such (400, 403, 404, 415...): retrying will not help. */
export class AdsApiError extends FatalError {
  override readonly name: string = 'AdsApiError';
  readonly status: number;
  readonly code: string | undefined;

  constructor(status: number, code: string | undefined, message: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
    this.code = code;
  }
}

/**
 * The app's credentials were refused (LWA, or the API's 401/403): an operator must fix the
 * configuration. Not the message's fault, so it is an outage of the credentials, never a
 * dead letter.
 */
export class AdsAuthError extends FatalError {
  override readonly name: string = 'AdsAuthError';
  /** HTTP status of the refusal. */
  readonly status: number | undefined;

  constructor(message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options);
    this.status = options?.status;
    tagOutage(this, Dependency.AdsCredentials);
  }
}

/** 5xx, timeout or network failure that outlasted the client's retries. */
export class AdsRetryableError extends RetryableError {
  override readonly name: string = 'AdsRetryableError';
  /** HTTP status, or undefined for a timeout or network failure. */
  readonly status: number | undefined;

  constructor(status: number | undefined, message: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
    tagOutage(this, Dependency.AdsApi);
  }
}

/** A profile's (or the client's) rate budget is exhausted for longer than the caller may wait. */
export class AdsThrottledError extends ThrottledError {
  override readonly name: string = 'AdsThrottledError';
  readonly profileId: number | undefined;

  constructor(profileId: number | undefined, retryAfterMs: number, options?: ErrorOptions) {
    super(
      `Ads API rate limit${profileId === undefined ? '' : ` for profile ${profileId}`}: retry in ${Math.ceil(retryAfterMs)} ms`,
      retryAfterMs,
      options,
    );
    this.profileId = profileId;
  }
}
