import { trace } from '@opentelemetry/api';
import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths whose values never reach a log line: LWA credentials and tokens, Authorization
 * headers, connection strings with passwords. pino's redaction is applied on write, so it
 * covers objects logged deep inside a library call too.
 */
export const REDACTED_PATHS = [
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  'access_token',
  'refresh_token',
  'client_secret',
  'accessToken',
  'refreshToken',
  'clientSecret',
  '*.access_token',
  '*.refresh_token',
  '*.client_secret',
  '*.accessToken',
  '*.refreshToken',
  '*.clientSecret',
  'password',
  '*.password',
  'config.ADFLEET_ADS_CLIENT_SECRET',
  'config.ADFLEET_ADS_REFRESH_TOKEN',
  'config.DATABASE_URL',
  'config.REDIS_URL',
];

export interface LoggerSettings {
  readonly level: string;
  readonly name: string;
  /** Human-readable output; defaults to "stdout is a terminal". */
  readonly pretty?: boolean;
  /** Where JSON lines go (tests capture them); defaults to stdout. */
  readonly destination?: NodeJS.WritableStream;
}

/**
 * The fleet's logger: JSON lines, secrets redacted, and `trace_id`/`span_id` of the active
 * span on every line written inside one — so a log line leads to its trace in Jaeger.
 */
export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    name: settings.name,
    level: settings.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    base: { service: settings.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const span = trace.getActiveSpan();
      if (span === undefined) return {};
      const { traceId, spanId, traceFlags } = span.spanContext();
      return { trace_id: traceId, span_id: spanId, trace_flags: `0${traceFlags.toString(16)}` };
    },
  };
  const pretty = settings.pretty ?? (settings.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname,service' } },
    });
  }
  return settings.destination === undefined ? pino(options) : pino(options, settings.destination);
}
