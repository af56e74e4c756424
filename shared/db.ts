import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';

export const MIGRATIONS_DIR = fileURLToPath(new URL('./db/migrations', import.meta.url));
export const MIGRATIONS_TABLE = 'schema_migrations';

export interface PoolOptions {
  /** Connections this process may hold; a worker's concurrency bounds what it can use anyway. */
  max?: number;
  applicationName?: string;
}

// bigint ids and counts come back as JS numbers: Amazon's ids and our row counts stay far
// below 2^53, and strings everywhere would leak into every handler.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));

export function createPool(databaseUrl: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'adfleet',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's connection dropping (database restart) must not crash the process;
  // the next query gets a fresh connection or a classified error.
  pool.on('error', () => {});
  return pool;
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
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
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
