import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool } from '../../shared/db.ts';

/** Migrated once per run by the global setup; each test file clones it (fast, isolated). */
export const TEMPLATE_DATABASE = 'adfleet_test_template';

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function adminQuery(databaseUrl: string, sql: string) {
  const client = new pg.Client({ connectionString: withDatabase(databaseUrl, 'postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
export async function createTestDatabase(databaseUrl: string): Promise<TestDatabase> {
  const name = `adfleet_test_${randomBytes(5).toString('hex')}`;
  await adminQuery(databaseUrl, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
  const url = withDatabase(databaseUrl, name);
  const pool = createPool(url, { max: 20, applicationName: 'adfleet-test' });
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      await adminQuery(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** An empty database (no migrations), for testing the migrations themselves. */
export async function createEmptyDatabase(databaseUrl: string) {
  const name = `adfleet_empty_${randomBytes(5).toString('hex')}`;
  await adminQuery(databaseUrl, `CREATE DATABASE ${name}`);
  return {
    url: withDatabase(databaseUrl, name),
    drop: () => adminQuery(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

export async function recreateTemplate(databaseUrl: string, migrateInto: (url: string) => Promise<unknown>) {
  await adminQuery(databaseUrl, `DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
  await adminQuery(databaseUrl, `CREATE DATABASE ${TEMPLATE_DATABASE}`);
  await migrateInto(withDatabase(databaseUrl, TEMPLATE_DATABASE));
}
