import { SANDBOX_DEFAULTS, startAdsSandbox } from './server.ts';

/**
 * The sandbox as its own process, for `npm run stack` and the demo:
 * `node sandbox/ads-api/main.ts`. Listens on 127.0.0.1 only (it is a test double with no
 * authentication worth the name), port from ADFLEET_SANDBOX_PORT (default 4580, the
 * default ADFLEET_ADS_API_URL points at). Profiles from ADFLEET_SANDBOX_PROFILES.
 */

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    process.exit(1);
  }
  return value;
}

const sandbox = await startAdsSandbox({
  port: intFromEnv('ADFLEET_SANDBOX_PORT', 4580),
  host: SANDBOX_DEFAULTS.host,
  seed: intFromEnv('ADFLEET_SANDBOX_SEED', SANDBOX_DEFAULTS.seed),
  sizes: {
    ...SANDBOX_DEFAULTS.sizes,
    profiles: intFromEnv('ADFLEET_SANDBOX_PROFILES', SANDBOX_DEFAULTS.sizes.profiles),
  },
});
console.log(`ads-api sandbox listening on ${sandbox.url}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void sandbox.close().then(() => process.exit(0));
  });
}
