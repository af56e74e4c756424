import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { Dependency, isPostgresOutage, tagOutage } from './dependencies.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('./db/migrations', import.meta.url));
export const MIGRATIONS_TABLE = 'schema_migrations';

export interface PoolOptions {
  /** Connections this process may hold; a worker's concurrency bounds what it can use anyway. */
  max?: number;
  applicationName?: string;
  /** Server-side cap of one statement. @defaultValue POOL_DEADLINES.statementTimeoutMs */
  statementTimeoutMs?: number;
  /** Server-side cap of one wait for a lock. @defaultValue POOL_DEADLINES.lockTimeoutMs */
  lockTimeoutMs?: number;
}

/**
 * Deadlines of every pool: nothing a handler does in Postgres can hang its message.
 *
 *  - statement_timeout: one statement (57014, retryable, the message's own failure);
 *  - lock_timeout: one wait for a row or table lock (55P03, retryable); a batch that needs a
 *    busier lock sets a shorter one with SET LOCAL and backs off;
 *  - idle_in_transaction_session_timeout: a transaction left open by a crashed or hung
 *    handler releases its locks;
 *  - query_timeout (client side, above statement_timeout): a server that stops answering
 *    (network black hole, frozen failover) ends in an error, counted as an outage;
 *  - TCP keepalive: a connection whose peer vanished is noticed, not waited on forever.
 */
export const POOL_DEADLINES = {
  statementTimeoutMs: 30_000,
  lockTimeoutMs: 10_000,
  idleInTransactionTimeoutMs: 60_000,
  queryTimeoutMs: 35_000,
  connectionTimeoutMs: 5_000,
  keepAliveInitialDelayMs: 10_000,
} as const;

// bigint ids and counts come back as JS numbers: Amazon's ids and our row counts stay far
// below 2^53, and strings everywhere would leak into every handler.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));

export function createPool(databaseUrl: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'adfleet',
    connectionTimeoutMillis: POOL_DEADLINES.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.statementTimeoutMs ?? POOL_DEADLINES.statementTimeoutMs,
    lock_timeout: options.lockTimeoutMs ?? POOL_DEADLINES.lockTimeoutMs,
    idle_in_transaction_session_timeout: POOL_DEADLINES.idleInTransactionTimeoutMs,
    query_timeout: POOL_DEADLINES.queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: POOL_DEADLINES.keepAliveInitialDelayMs,
  });
  // An idle client's connection dropping (database restart) must not crash the process;
  // the next query gets a fresh connection or a classified error.
  pool.on('error', () => {});
  // pg-pool listens for a client's errors only while it is idle: a connection lost while a
  // client is checked out (between two queries of a probe, a transaction or an outbox
  // publish) is emitted on the client with nobody listening, which ends the process. The
  // query in progress or the next one fails with it anyway, and the pool drops a client
  // whose connection ended when it is released.
  pool.on('connect', (client) => client.on('error', () => {}));
  tagPoolOutages(pool);
  return pool;
}

const tagged = Symbol('adfleet.outage-tagged');

function tagged_<E>(error: E): E {
  return isPostgresOutage(error) ? tagOutage(error, Dependency.Postgres) : error;
}

/**
 * Outage errors (connection refused or lost, shutdown, read-only failover...) of the pool's
 * queries and connections are tagged as a Postgres outage (shared/dependencies.ts), so the
 * queue worker releases their messages instead of spending retries. Wrapping the promise
 * forms only: pg's own internals use the callback forms, which pass through untouched.
 */
function tagPoolOutages(pool: pg.Pool) {
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    const result = query(...args);
    return result instanceof Promise
      ? result.catch((error: unknown) => Promise.reject(tagged_(error)))
      : result;
  }) as typeof pool.query;
  const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
  pool.connect = ((...args: unknown[]) => {
    if (args.length > 0) return connect(...args);
    return (connect() as Promise<pg.PoolClient>).then(tagClientOutages, (error: unknown) =>
      Promise.reject(tagged_(error)),
    );
  }) as typeof pool.connect;
}

function tagClientOutages(client: pg.PoolClient): pg.PoolClient {
  const marked = client as pg.PoolClient & { [tagged]?: true };
  if (marked[tagged]) return client;
  marked[tagged] = true;
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const result = query(...args);
    return result instanceof Promise
      ? result.catch((error: unknown) => Promise.reject(tagged_(error)))
      : result;
  }) as typeof client.query;
  return client;
}

export interface MigrationResult {
  applied: string[];
}

/**
 * Applies every pending migration in `shared/db/migrations` (numbered SQL files), under
 * node-pg-migrate's advisory lock so that several tasks starting at once apply each once.
 */
export async function migrate(databaseUrl: string, log: (message: string) => void = () => {}) {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: MIGRATIONS_TABLE,
    migrationLoaderStrategies: [{ extensions: ['.sql'], loader: 'sql' }],
    checkOrder: true,
    advisoryLockMode: 'wait',
    log,
  });
  return { applied: applied.map((migration) => migration.name) } satisfies MigrationResult;
}

/** Runs `work` in one transaction; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>) {
  const client = await pool.connect();
  // A connection lost while the client is checked out (between two of `work`'s queries) is
  // emitted on the client, where the pool does not listen: unheard, it would crash the
  // process. The next query fails with it anyway, and release(error) below drops the client.
  const ignore = () => {};
  client.on('error', ignore);
  let failure: unknown;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    failure = error;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.off('error', ignore);
    // A client whose transaction failed may have lost its connection: not back into the pool.
    client.release(failure instanceof Error ? failure : undefined);
  }
}

/** The same server, another database: `postgres://…/adfleet` → `postgres://…/<name>`. */
export function databaseUrlFor(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/**
 * Runs one statement that cannot run inside a database it affects (CREATE/DROP DATABASE)
 * from the server's `postgres` database. For tooling: tests, benchmarks, the stack.
 */
export async function runAdminStatement(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrlFor(url, 'postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
