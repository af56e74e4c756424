import type { Redis } from 'ioredis';
import { type Config, lwaTokenUrl } from '../../contract/config.ts';
import { AdsApiClient, type AdsClientOptions } from './client.ts';
import { LwaTokenProvider } from './lwa.ts';
import { AdsRateLimiter } from './rate-limit.ts';

/**
 * The Ads client a worker uses, wired from the fleet's configuration: one LWA token cache and
 * one rate limiter per process, sharing budgets with every other process through `redis`.
 * `overrides` lets a worker tune the call policy (bulk-item retries per item, not per call).
 */
export function createAdsClient(
  config: Config,
  redis: Redis,
  overrides: Partial<Pick<AdsClientOptions, 'maxAttempts' | 'maxThrottleWaitMs' | 'backoff'>> = {},
): { client: AdsApiClient; limiter: AdsRateLimiter } {
  const tokens = new LwaTokenProvider({
    tokenUrl: lwaTokenUrl(config),
    clientId: config.ADFLEET_ADS_CLIENT_ID,
    clientSecret: config.ADFLEET_ADS_CLIENT_SECRET,
    refreshToken: config.ADFLEET_ADS_REFRESH_TOKEN,
    timeoutMs: config.ADFLEET_ADS_TIMEOUT_MS,
  });
  const limiter = new AdsRateLimiter({
    redis,
    keyPrefix: config.ADFLEET_RESOURCE_PREFIX,
    clientId: config.ADFLEET_ADS_CLIENT_ID,
    profileRate: { initialRate: config.ADFLEET_ADS_INITIAL_PROFILE_RATE },
    clientRatePerSecond: config.ADFLEET_ADS_CLIENT_RATE_LIMIT,
  });
  const client = new AdsApiClient({
    baseUrl: config.ADFLEET_ADS_API_URL,
    clientId: config.ADFLEET_ADS_CLIENT_ID,
    tokens,
    limiter,
    timeoutMs: config.ADFLEET_ADS_TIMEOUT_MS,
    maxThrottleWaitMs: config.ADFLEET_ADS_MAX_THROTTLE_WAIT_MS,
    ...overrides,
  });
  return { client, limiter };
}
