/**
 * The services a worker depends on, and how an error says "that service is down" rather
 * than "this message is bad". The client of each dependency tags the errors that mean an
 * outage (connection refused or lost, a timeout, a 5xx after the client's own retries, a
 * failover's read-only answer, refused credentials) with the dependency's name; the queue
 * worker then releases the message without spending its retry budget and feeds the
 * dependency's circuit breaker (shared/breakers.ts). Errors a message itself causes (a
 * constraint violation, a statement timeout, a 400) are never tagged.
 */

export const Dependency = {
  Postgres: 'postgres',
  Redis: 'redis',
  Sqs: 'sqs',
  EventBridge: 'eventbridge',
  /** The Amazon Ads API answering 5xx or timing out after the client's own retries. */
  AdsApi: 'ads-api',
  /** Login with Amazon refusing the app's grant, or the Ads API answering 401/403. */
  AdsCredentials: 'ads-credentials',
} as const;
export type Dependency = (typeof Dependency)[keyof typeof Dependency];

const TAG = Symbol.for('adfleet.dependency');

/** Marks `error` as an outage of `dependency` (first tag wins) and returns it. */
export function tagOutage<E>(error: E, dependency: Dependency): E {
  if (typeof error === 'object' && error !== null && !Object.hasOwn(error, TAG)) {
    Object.defineProperty(error, TAG, { value: dependency, enumerable: false });
  }
  return error;
}

/** The dependency whose outage caused `error`, looking through `cause`s; undefined if none. */
export function outageOf(error: unknown): Dependency | undefined {
  for (let current = error, depth = 0; depth < 8; depth += 1) {
    if (typeof current !== 'object' || current === null) return undefined;
    const tag = (current as { [TAG]?: Dependency })[TAG];
    if (tag !== undefined) return tag;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Node / undici socket error codes: the peer cannot be reached or went away. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function codeOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; depth < 4; depth += 1) {
    if (typeof current !== 'object' || current === null) return undefined;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isNetworkError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && NETWORK_ERROR_CODES.has(code);
}

/**
 * SQLSTATEs of a server that is down, restarting, failing over or full: 08 (connection
 * exception), 25006 (read-only transaction: a replica promoted mid-failover answers so),
 * 53300 (too many connections), 57P01–57P03 (shutdown, crash, cannot connect now).
 */
const POSTGRES_OUTAGE_CODES = new Set(['25006', '53300', '57P01', '57P02', '57P03']);
/** node-postgres' own connection failures carry no code, only these messages. */
const POSTGRES_OUTAGE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|Connection is closed|not queryable/i;

export function isPostgresOutage(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (NETWORK_ERROR_CODES.has(code) || POSTGRES_OUTAGE_CODES.has(code) || code.startsWith('08'))
      return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return false;
  }
  return error instanceof Error && POSTGRES_OUTAGE_MESSAGES.test(error.message);
}

/** An AWS SDK failure that says the service (or the way to it) is down, not that the request is wrong. */
export function isAwsOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (isNetworkError(error)) return true;
  if (
    ['TimeoutError', 'RequestTimeout', 'ServiceUnavailable', 'InternalError', 'InternalFailure'].includes(
      error.name,
    )
  )
    return true;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}
