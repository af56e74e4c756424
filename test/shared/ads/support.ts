import { Redis } from 'ioredis';
import { SANDBOX_DEFAULTS } from '../../../sandbox/ads-api/server.ts';
import { AdsApiClient, type AdsClientOptions } from '../../../shared/ads/client.ts';
import type { LwaTokenProvider } from '../../../shared/ads/lwa.ts';
import { stackEnv } from '../../support/env.ts';
import { lwaFor } from '../../support/sandbox-lwa.ts';

export { lwaFor };

/** Redis of the local stack, for this test process. */
export function testRedis(): Redis {
  return new Redis(stackEnv().REDIS_URL as string, { maxRetriesPerRequest: 2 });
}

export function clientFor(
  sandboxUrl: string,
  options: Partial<AdsClientOptions> = {},
): { client: AdsApiClient; tokens: LwaTokenProvider } {
  const tokens = lwaFor(sandboxUrl);
  const client = new AdsApiClient({
    baseUrl: sandboxUrl,
    clientId: SANDBOX_DEFAULTS.credentials.clientId,
    tokens,
    backoff: { baseMs: 20, capMs: 100 },
    ...options,
  });
  return { client, tokens };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}
