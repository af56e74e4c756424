import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createPool, databaseUrlFor, MIGRATIONS_DIR, runAdminStatement } from '../../shared/db.ts';

/**
 * Migrated once by the global setup; each test file clones it (fast, isolated). Named after
 * the migrations it holds, so checkouts with different migrations can share one server
 * without seeing each other's schema, and an unchanged schema is not rebuilt per run.
 */
export const TEMPLATE_DATABASE = (() => {
  const hash = createHash('sha256');
  for (const file of readdirSync(MIGRATIONS_DIR).sort()) {
    hash.update(file).update(readFileSync(join(MIGRATIONS_DIR, file)));
  }
  return `adfleet_test_template_${hash.digest('hex').slice(0, 12)}`;
})();

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

/**
 * Creates the template unless a complete one is there. It is built under a temporary name
 * and renamed when migrated, so a run that died half-way never leaves a template that looks
 * complete; an advisory lock keeps two runs from building it at once.
 */
export async function ensureTemplate(databaseUrl: string, migrateInto: (url: string) => Promise<unknown>) {
  const admin = new pg.Client({ connectionString: databaseUrlFor(databaseUrl, 'postgres') });
  await admin.connect();
  try {
    await admin.query("SELECT pg_advisory_lock(hashtext('adfleet test template'))");
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      TEMPLATE_DATABASE,
    ]);
    if (rowCount === 1) return;
    const building = `${TEMPLATE_DATABASE}_building`;
    await admin.query(`DROP DATABASE IF EXISTS ${building} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${building}`);
    await migrateInto(databaseUrlFor(databaseUrl, building));
    await admin.query(`ALTER DATABASE ${building} RENAME TO ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
}
