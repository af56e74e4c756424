import { z } from 'zod';
import { configSchema } from '../contract/config.ts';

/**
 * Everything a deploying team may choose, read from CDK context (`-c key=value` or
 * `infra/cdk.json`). Like the workers' own config, a bad value stops synth with ONE message
 * naming every bad key. Values from `-c` arrive as strings, hence the coercions.
 */

const secretArn = z
  .string({ error: 'required: the complete ARN of a secret you created (see README.md, "Deploy")' })
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/,
    'a complete secret ARN',
  );
const httpsUrl = z.url({ protocol: /^https?$/ });
const booleanish = z.union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')]);

export const TRACES_BACKENDS = ['xray', 'jaeger', 'tempo'] as const;
export type TracesBackend = (typeof TRACES_BACKENDS)[number];

export const settingsSchema = z.object({
  /** Prefix of every queue, DLQ, bus, rule and schedule name: the workers' own rule for it. */
  prefix: configSchema.shape.ADFLEET_RESOURCE_PREFIX,
  /** A pushed image (e.g. from CI); when absent the repo's Dockerfile is built at deploy time. */
  imageUri: z.string().min(1).optional(),
  /** An existing VPC to run in; when absent the stack creates one. Needs an account and region. */
  vpcId: z
    .string()
    .regex(/^vpc-[0-9a-f]+$/)
    .optional(),
  /**
   * `existing`: Postgres and Redis are the team's, referenced by URL secrets.
   * `create`: the stack creates RDS Postgres and ElastiCache Redis (stages, evaluations).
   */
  dataStores: z.enum(['existing', 'create']).default('existing'),
  /**
   * Complete ARNs (with the 6-character suffix) of secrets the team creates before the
   * first deploy: ECS resolves `secrets` by complete ARN, and IAM can then name the exact
   * secret instead of a `-??????` wildcard.
   */
  /** Plain-text secret holding `DATABASE_URL`; required with dataStores=existing. */
  databaseUrlSecretArn: secretArn.optional(),
  /** Plain-text secret holding `REDIS_URL`; required with dataStores=existing. */
  redisUrlSecretArn: secretArn.optional(),
  /** JSON secret `{"clientId","clientSecret","refreshToken"}`: the LWA client and refresh token. */
  adsApiSecretArn: secretArn,
  /** Regional Ads API host: NA `advertising-api`, EU `advertising-api-eu`, FE `advertising-api-fe`. */
  adsApiUrl: httpsUrl.default('https://advertising-api.amazon.com'),
  /** LWA token endpoint: NA `api.amazon.com`, EU `api.amazon.co.uk`, FE `api.amazon.co.jp`. */
  lwaTokenUrl: httpsUrl.default('https://api.amazon.com/auth/o2/token'),
  tracesBackend: z.enum(TRACES_BACKENDS).default('xray'),
  /** OTLP/HTTP base URL of Jaeger or Tempo (e.g. `https://tempo.internal:4318`). */
  tracesEndpoint: httpsUrl.optional(),
  /** The collector image; pinned, bumped on purpose. ADOT ships the `/healthcheck` binary. */
  collectorImage: z.string().min(1).default('public.ecr.aws/aws-observability/aws-otel-collector:v0.42.0'),
  /** Where alarm notifications are mailed, besides the SNS topic every alarm publishes to. */
  alarmEmail: z.email().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  /**
   * profile-sync's freshness objective in hours (the workers' ADFLEET_SYNC_FRESHNESS_SLO_HOURS):
   * the freshness alarm's line, and what `adfleet sync status --stale` holds profiles to.
   */
  syncFreshnessSloHours: configSchema.shape.ADFLEET_SYNC_FRESHNESS_SLO_HOURS,
  /** Container Insights is what publishes RunningTaskCount, the denominator of backlog per task. */
  containerInsights: booleanish.default(true),
});

export type FleetSettings = z.infer<typeof settingsSchema>;

/**
 * Rules between keys, checked on the raw values (defaults applied by hand) so that they are
 * reported together with per-key problems instead of only after those are fixed.
 */
function crossKeyProblems(raw: Readonly<Record<string, unknown>>): string[] {
  const problems: string[] = [];
  const tracesBackend = raw.tracesBackend ?? 'xray';
  if (tracesBackend !== 'xray' && raw.tracesEndpoint === undefined) {
    problems.push(`tracesEndpoint: required when tracesBackend is ${String(tracesBackend)}`);
  }
  const dataStores = raw.dataStores ?? 'existing';
  for (const key of ['databaseUrlSecretArn', 'redisUrlSecretArn']) {
    if (dataStores === 'existing' && raw[key] === undefined) {
      problems.push(`${key}: required when dataStores is existing`);
    }
    if (dataStores === 'create' && raw[key] !== undefined) {
      problems.push(`${key}: dataStores=create makes its own URL secrets, drop this key`);
    }
  }
  return problems;
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** Reads the settings from a context lookup (`node.tryGetContext`); throws one error naming every bad key. */
export function readSettings(context: (key: string) => unknown): FleetSettings {
  const raw = Object.fromEntries(
    Object.keys(settingsSchema.shape)
      .map((key) => [key, context(key)] as const)
      .filter(([, value]) => value !== undefined && value !== ''),
  );
  const result = settingsSchema.safeParse(raw);
  const problems = [
    ...(result.success
      ? []
      : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)),
    ...crossKeyProblems(raw),
  ];
  if (!result.success || problems.length > 0) {
    throw new SettingsError(
      `invalid CDK context, fix these keys:\n${problems.map((line) => `  ${line}`).join('\n')}`,
    );
  }
  return result.data;
}
