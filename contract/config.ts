import { z } from 'zod';
import { handlerDeadlineSeconds, LONGEST_HANDLER_DEADLINE_SECONDS } from './deadlines.ts';
import { PROFILE_SYNC_FRESHNESS_SECONDS } from './metrics.ts';

/**
 * The fleet's configuration, read from the environment once at start.
 *
 * Standard names where they exist (AWS_*, DATABASE_URL, REDIS_URL, OTEL_*, LOG_LEVEL);
 * everything the project owns lives under ADFLEET_. A bad or missing value stops the
 * process with ONE message that names every bad variable, so an operator fixes the task
 * definition in one pass instead of one crash per variable.
 */

const url = z.url({ protocol: /^(https?|postgres(ql)?|rediss?)$/ });
const positiveInt = z.coerce.number().int().positive();
/**
 * What a worker waits for in-flight handlers on SIGTERM: the longest handler deadline and a
 * margin, so a drain cuts no handler short; infra fits the ECS stop timeout to it.
 */
export const DEFAULT_DRAIN_TIMEOUT_MS = (LONGEST_HANDLER_DEADLINE_SECONDS + 5) * 1000;
/** The nightly run (03:00 UTC) plus two hours for it to finish (contract/metrics.ts); infra's freshness alarm uses the same. */
export const DEFAULT_SYNC_FRESHNESS_SLO_HOURS = PROFILE_SYNC_FRESHNESS_SECONDS / 3_600;

/**
 * How long one SyncProfile message works on a sync before handing the rest on: its handler
 * deadline less a margin for the run's final transaction (removals, the run record).
 */
export const DEFAULT_SYNC_SLICE_SECONDS = handlerDeadlineSeconds('SyncProfile') - 15;

export const configSchema = z.object({
  AWS_ENDPOINT_URL: url.optional(),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  DATABASE_URL: url,
  REDIS_URL: url,
  OTEL_EXPORTER_OTLP_ENDPOINT: url.optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  // Read by the OpenTelemetry SDK itself, which takes exactly `true`: checked here by its rule.
  OTEL_SDK_DISABLED: z.enum(['true', 'false']).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  /** Prefix of every queue, DLQ, bus and schedule name; lets tests and stages share one account. */
  ADFLEET_RESOURCE_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,30}$/, 'lower-case letters, digits and dashes, at most 31 characters')
    .default('adfleet'),
  ADFLEET_ADS_API_URL: url.default('http://127.0.0.1:4580'),
  ADFLEET_LWA_TOKEN_URL: url.optional(),
  /** LWA credentials: required unless the Ads API URL is the local sandbox (see loadConfig). */
  ADFLEET_ADS_CLIENT_ID: z.string().min(1).optional(),
  ADFLEET_ADS_CLIENT_SECRET: z.string().min(1).optional(),
  ADFLEET_ADS_REFRESH_TOKEN: z.string().min(1).optional(),
  /** Per-attempt timeout of an Ads API call. */
  ADFLEET_ADS_TIMEOUT_MS: positiveInt.default(10_000),
  /**
   * How long one Ads API call may wait for its profile's rate budget (or a Retry-After) before
   * giving up with a ThrottledError, which defers the message instead of holding a worker slot.
   */
  ADFLEET_ADS_MAX_THROTTLE_WAIT_MS: positiveInt.default(20_000),
  /** Starting rate (requests/s) of a profile the fleet has no shared rate for yet; it adapts from there. */
  ADFLEET_ADS_INITIAL_PROFILE_RATE: z.coerce.number().positive().default(5),
  /** Fleet-wide ceiling (requests/s) of the whole Ads API client, shared by every task; profiles adapt beneath it. */
  ADFLEET_ADS_CLIENT_RATE_LIMIT: z.coerce.number().positive().default(2_000),
  /**
   * Items per bulk item batch, i.e. per Ads API call. At most Amazon's per-call maximum for
   * Sponsored Products v3 bulk updates (MAX_ITEMS_PER_REQUEST, 1,000), which the sandbox
   * enforces the same way; the default is that maximum, because the per-profile request
   * rate, not the items per request, is what Amazon limits.
   */
  ADFLEET_BULK_BATCH_SIZE: positiveInt.max(1_000).default(1_000),
  /** Attempts per bulk item (5xx, timeouts, Amazon's transient item errors) before it is FAILED. */
  ADFLEET_BULK_MAX_ATTEMPTS: positiveInt.max(50).default(5),
  /** First retry delay of a bulk item; later ones double, jittered, up to 5 minutes. */
  ADFLEET_BULK_RETRY_BASE_MS: positiveInt.default(2_000),
  /**
   * How long a claimed batch is its worker's unless renewed; an item still RUNNING past it is
   * recovered. The worker renews it every third of it (at least every 2 s) while the call
   * runs, so it bounds how long a dead worker's items wait, not how long a call may take.
   */
  ADFLEET_BULK_LEASE_MS: positiveInt.min(5_000).default(15_000),
  /**
   * Batches of one profile applied at once across the fleet; more wait as deferred messages.
   * Four: each batch's claim, record and next claim take a round trip or two to Postgres,
   * and on a busy fleet that overhead is longer than a slow profile's token interval; with
   * four calls of the profile queued in the rate limiter one is always ready for the next
   * token, even while another is held by a call Amazon does not answer before the timeout.
   */
  ADFLEET_BULK_PROFILE_IN_FLIGHT: positiveInt.max(100).default(4),
  /** How often each bulk-item worker looks for lost items, unfinished jobs and unpublished events. */
  ADFLEET_BULK_SWEEP_INTERVAL_MS: positiveInt.default(5_000),
  /** An item whose message is this far overdue counts as lost and is sent again. */
  ADFLEET_BULK_STALL_AFTER_MS: positiveInt.default(300_000),
  /** Messages handled at once by one worker process. */
  ADFLEET_CONCURRENCY: positiveInt.max(500).default(20),
  /** How long SIGTERM waits for in-flight handlers before releasing their messages. */
  ADFLEET_DRAIN_TIMEOUT_MS: positiveInt.default(DEFAULT_DRAIN_TIMEOUT_MS),
  /** SQS long-poll wait; a stopping worker lets its last poll finish, so this bounds the stop too. */
  ADFLEET_POLL_WAIT_SECONDS: z.coerce.number().int().min(0).max(20).default(20),
  /** profile-sync's freshness objective: every profile's last good sync younger than this (the alarm's line). */
  ADFLEET_SYNC_FRESHNESS_SLO_HOURS: z.coerce.number().positive().default(DEFAULT_SYNC_FRESHNESS_SLO_HOURS),
  /** How often profile-sync writes the freshness metrics, whether or not anything syncs. */
  ADFLEET_SYNC_FRESHNESS_INTERVAL_SECONDS: positiveInt.default(60),
  /**
   * A running sync whose heartbeat (one per page) is older than this lost its worker and may
   * be taken over; longer than one page can wait for rate budget (ADFLEET_ADS_MAX_THROTTLE_WAIT_MS).
   */
  ADFLEET_SYNC_STALE_AFTER_SECONDS: positiveInt.default(120),
  /**
   * A sync still listing after this long releases its run and hands the rest on to a fresh
   * message (a deferral, which spends no receive), which resumes from the checkpoint; below
   * the SyncProfile handler deadline, which would otherwise cut it and spend a receive.
   */
  ADFLEET_SYNC_SLICE_SECONDS: positiveInt
    .max(handlerDeadlineSeconds('SyncProfile') - 1)
    .default(DEFAULT_SYNC_SLICE_SECONDS),
  /** A sync's checkpoint (the API's nextToken) older than this is not resumed: the listing starts again. */
  ADFLEET_SYNC_RESUME_MAX_AGE_SECONDS: positiveInt.default(3_600),
  /**
   * A profile's keywords are listed in parts side by side (domain/sync/pull.ts) when each
   * part would still list at least this many pages, judged by its last good sync.
   */
  ADFLEET_SYNC_KEYWORD_PART_PAGES: positiveInt.default(25),
  /** Port of the /healthz and /readyz endpoint; 0 disables it. */
  ADFLEET_HEALTH_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  /** How often a worker process writes its heartbeat row (worker_heartbeats); 0 disables it. */
  ADFLEET_HEARTBEAT_INTERVAL_MS: z.coerce.number().int().min(0).default(5_000),
  /** Jaeger's UI, for the trace links `adfleet status` and the dashboard print. */
  ADFLEET_JAEGER_URL: url.default('http://127.0.0.1:16686'),
  /**
   * Token every dashboard request must carry (`Authorization: Bearer`, or `?token=` once in
   * a browser). Required to bind the dashboard to anything but loopback.
   */
  ADFLEET_DASHBOARD_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
});

const CREDENTIAL_VARIABLES = [
  'ADFLEET_ADS_CLIENT_ID',
  'ADFLEET_ADS_CLIENT_SECRET',
  'ADFLEET_ADS_REFRESH_TOKEN',
] as const;
type CredentialVariable = (typeof CREDENTIAL_VARIABLES)[number];

/** The parsed configuration; the LWA credentials always set (real ones, or the local sandbox's). */
export type Config = Omit<z.infer<typeof configSchema>, CredentialVariable> &
  Record<CredentialVariable, string>;

/**
 * The local sandbox's LWA credentials (sandbox/ads-api holds the same). They apply only when
 * the Ads API URL is the local sandbox: a deployment whose secret mapping is missing must
 * refuse to start, not log in to Amazon with a sandbox's values and fail every call.
 */
export const SANDBOX_CREDENTIALS: Readonly<Record<CredentialVariable, string>> = {
  ADFLEET_ADS_CLIENT_ID: 'adfleet-local',
  ADFLEET_ADS_CLIENT_SECRET: 'adfleet-local-secret',
  ADFLEET_ADS_REFRESH_TOKEN: 'adfleet-local-refresh',
};

/** The sandbox runs on this machine: a loopback Ads API URL. */
export function isLocalSandbox(adsApiUrl: string): boolean {
  const host = new URL(adsApiUrl).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly variables: readonly string[];

  constructor(issues: readonly z.core.$ZodIssue[]) {
    const lines = issues.map((issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    super(`invalid configuration, fix these environment variables:\n${lines.join('\n')}`);
    this.variables = [...new Set(issues.map((issue) => String(issue.path[0])))];
  }
}

/** Parses the environment; throws one ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings are "unset": a task definition with `FOO=` should get the default, not an error.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const result = configSchema.safeParse(present);
  if (!result.success) throw new ConfigError(result.error.issues);
  const parsed = result.data;
  const missing = CREDENTIAL_VARIABLES.filter((name) => parsed[name] === undefined);
  if (missing.length > 0 && !isLocalSandbox(parsed.ADFLEET_ADS_API_URL)) {
    throw new ConfigError(
      missing.map((name) => ({
        code: 'custom' as const,
        path: [name],
        input: undefined,
        message: `required: ADFLEET_ADS_API_URL (${new URL(parsed.ADFLEET_ADS_API_URL).host}) is not the local sandbox, whose credentials are the only defaults`,
      })),
    );
  }
  return {
    ...parsed,
    ADFLEET_ADS_CLIENT_ID: parsed.ADFLEET_ADS_CLIENT_ID ?? SANDBOX_CREDENTIALS.ADFLEET_ADS_CLIENT_ID,
    ADFLEET_ADS_CLIENT_SECRET:
      parsed.ADFLEET_ADS_CLIENT_SECRET ?? SANDBOX_CREDENTIALS.ADFLEET_ADS_CLIENT_SECRET,
    ADFLEET_ADS_REFRESH_TOKEN:
      parsed.ADFLEET_ADS_REFRESH_TOKEN ?? SANDBOX_CREDENTIALS.ADFLEET_ADS_REFRESH_TOKEN,
  };
}

/**
 * profile-sync's freshness objective in seconds: the one setting (ADFLEET_SYNC_FRESHNESS_SLO_HOURS)
 * that the worker's freshness metrics, `adfleet sync status` and `adfleet status` (with the
 * dashboard) hold every profile's last good sync to.
 */
export function syncFreshnessSloSeconds(config: Pick<Config, 'ADFLEET_SYNC_FRESHNESS_SLO_HOURS'>): number {
  return config.ADFLEET_SYNC_FRESHNESS_SLO_HOURS * 3_600;
}

/** The LWA token endpoint: explicit, or the Ads API base's /auth/o2/token (the sandbox serves both). */
export function lwaTokenUrl(config: Config): string {
  return config.ADFLEET_LWA_TOKEN_URL ?? new URL('/auth/o2/token', config.ADFLEET_ADS_API_URL).toString();
}
