import { SANDBOX_DEFAULTS } from '../../sandbox/ads-api/server.ts';
import { LwaTokenProvider } from '../../shared/ads/lwa.ts';

/** An LWA token provider for an Ads sandbox at `sandboxUrl`, with the sandbox's own credentials. */
export function lwaFor(sandboxUrl: string, overrides: { clientSecret?: string } = {}): LwaTokenProvider {
  const { credentials } = SANDBOX_DEFAULTS;
  return new LwaTokenProvider({
    tokenUrl: new URL('/auth/o2/token', sandboxUrl).toString(),
    clientId: credentials.clientId,
    clientSecret: overrides.clientSecret ?? credentials.clientSecret,
    refreshToken: credentials.refreshToken,
  });
}
