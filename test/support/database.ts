import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { createPool, databaseUrlFor, runAdminStatement } from '../../shared/db.ts';

/** Migrated once per run by the global setup; each test file clones it (fast, isolated). */
export const TEMPLATE_DATABASE = 'adfleet_test_template';

export interface TestDatabase {
  readonly url: string;
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh database for one test file, cloned from the migrated template. */
export async function createTestDatabase(databaseUrl: string): Promise<TestDatabase> {
  const name = `adfleet_test_${randomBytes(5).toString('hex')}`;
  await runAdminStatement(databaseUrl, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
  const url = databaseUrlFor(databaseUrl, name);
  const pool = createPool(url, { max: 20, applicationName: 'adfleet-test' });
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      await runAdminStatement(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** An empty database (no migrations), for testing the migrations themselves. */
export async function createEmptyDatabase(databaseUrl: string) {
  const name = `adfleet_empty_${randomBytes(5).toString('hex')}`;
  await runAdminStatement(databaseUrl, `CREATE DATABASE ${name}`);
  return {
    url: databaseUrlFor(databaseUrl, name),
    drop: () => runAdminStatement(databaseUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

export async function recreateTemplate(databaseUrl: string, migrateInto: (url: string) => Promise<unknown>) {
  await runAdminStatement(databaseUrl, `DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
  await runAdminStatement(databaseUrl, `CREATE DATABASE ${TEMPLATE_DATABASE}`);
  await migrateInto(databaseUrlFor(databaseUrl, TEMPLATE_DATABASE));
}
