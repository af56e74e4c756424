import { readdirSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, MIGRATIONS_TABLE, migrate } from '../../../shared/db.ts';
import { createEmptyDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';

describe('migrations', () => {
  let database: Awaited<ReturnType<typeof createEmptyDatabase>>;

  beforeAll(async () => {
    database = await createEmptyDatabase(stackEnv().DATABASE_URL as string);
  });
  afterAll(async () => {
    await database.drop();
  });

  it('apply every migration to an empty database, then re-apply as a no-op', async () => {
    const files = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith('.sql'));
    expect(files.length).toBeGreaterThan(0);

    const first = await migrate(database.url);
    expect(first.applied).toHaveLength(files.length);

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const tables = await client.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
      );
      const names = tables.rows.map((row) => row.table_name);
      expect(names).toEqual(
        expect.arrayContaining(['profiles', 'campaigns', 'ad_groups', 'keywords', MIGRATIONS_TABLE]),
      );

      const second = await migrate(database.url);
      expect(second.applied).toEqual([]);
      const recorded = await client.query(`SELECT name FROM ${MIGRATIONS_TABLE}`);
      expect(recorded.rowCount).toBe(files.length);
    } finally {
      await client.end();
    }
  });

  it('two processes migrating at once apply each migration once', async () => {
    const other = await createEmptyDatabase(stackEnv().DATABASE_URL as string);
    try {
      const [a, b] = await Promise.all([migrate(other.url), migrate(other.url)]);
      const files = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith('.sql'));
      expect(a.applied.length + b.applied.length).toBe(files.length);
    } finally {
      await other.drop();
    }
  });
});
