import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markRemoved } from '../../../domain/sync/entities.ts';
import { inTransaction } from '../../../shared/db.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';

/**
 * Removals at the end of a large profile's first sync, when the planner has no statistics
 * for the rows the run has just written: the anti-join must not become a nested loop over
 * every page's ids per row (which ran past the statement timeout and failed the sync).
 */
describe('markRemoved on a large profile without statistics', () => {
  let database: TestDatabase;
  const KEYWORDS = 20_000;
  const PAGES = KEYWORDS / 100;
  const UNLISTED = [701, 15_042];

  beforeAll(async () => {
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    const q = (sql: string, values: unknown[] = []) => database.pool.query(sql, values);
    await q(`INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name)
             VALUES (1, 'US', 'USD', 'ATVPDKIKX0DER', 'big')`);
    await q(`INSERT INTO campaigns (id, profile_id, name, state, targeting_type, daily_budget)
             VALUES (1, 1, 'c', 'ENABLED', 'MANUAL', 1)`);
    await q(`INSERT INTO ad_groups (id, campaign_id, profile_id, name, state, default_bid)
             VALUES (1, 1, 1, 'g', 'ENABLED', 1)`);
    await q(
      `INSERT INTO keywords (id, ad_group_id, campaign_id, profile_id, keyword_text, match_type, state, bid)
       SELECT g, 1, 1, 1, 'k' || g, 'EXACT', 'ENABLED', 1 FROM generate_series(1, $1::int) g`,
      [KEYWORDS],
    );
    await q(`INSERT INTO sync_runs (id, profile_id, request_id, requested_at, trigger)
             VALUES (1, 1, gen_random_uuid(), now(), 'schedule')`);
    // The run listed every keyword but two, 100 per page.
    await q(
      `INSERT INTO sync_run_pages (run_id, kind, page, entity_ids, next_token)
       SELECT 1, 'keywords', p,
              (SELECT array_agg(g) FROM generate_series((p - 1) * 100 + 1, p * 100) g WHERE g <> ALL($2::bigint[])),
              CASE WHEN p < $1 THEN 't' || p END
         FROM generate_series(1, $1::int) p`,
      [PAGES, UNLISTED],
    );
    await q(`INSERT INTO sync_run_pages (run_id, kind, page, entity_ids, next_token)
             VALUES (1, 'campaigns', 1, '{1}', NULL), (1, 'adGroups', 1, '{1}', NULL)`);
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('marks exactly the unlisted keywords, well within a statement timeout', async () => {
    const removed = await inTransaction(database.pool, async (client) => {
      // Far below the fleet's 30 s: the nested-loop plan takes minutes, a hash anti-join well under a second.
      await client.query("SET LOCAL statement_timeout = '5s'");
      return markRemoved(client, 1, 1);
    });
    expect(removed).toEqual({ campaigns: 0, adGroups: 0, keywords: UNLISTED.length });
    const { rows } = await database.pool.query<{ id: string }>(
      'SELECT id FROM keywords WHERE removed_at IS NOT NULL ORDER BY id',
    );
    expect(rows.map((row) => Number(row.id))).toEqual(UNLISTED);
    // The planner settings were put back for the rest of the transaction's statements.
    const settings = await inTransaction(database.pool, async (client) => {
      await markRemoved(client, 1, 1);
      const { rows: after } = await client.query<{ nestloop: string; jit: string }>(
        `SELECT current_setting('enable_nestloop') AS nestloop, current_setting('jit') AS jit`,
      );
      return after[0];
    });
    expect(settings?.nestloop).toBe('on');
  });
});
