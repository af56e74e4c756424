import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitBulkFile } from '../../../domain/bulk/submit.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';
import { insertProfiles, profileRow } from '../../support/factories.ts';

/** `bulk submit`'s checks and writes, against a real database. */
describe('bulk submit', () => {
  let database: TestDatabase;
  const US_PROFILE = 1_000_000_000_000;
  const JP_PROFILE = 1_000_000_000_007;

  beforeAll(async () => {
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    // Synced profiles: their marketplaces' bounds apply.
    await insertProfiles(database.pool, [
      profileRow({ id: US_PROFILE, countryCode: 'US', accountName: 'us', lastSyncedAt: null }),
      profileRow({ id: JP_PROFILE, countryCode: 'JP', accountName: 'jp', lastSyncedAt: null }),
    ]);
  });
  afterAll(async () => {
    await database.drop();
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(tmpdir(), `${process.pid}-${Date.now()}-${name}`);
    await writeFile(path, text);
    return path;
  }

  async function counts() {
    const { rows } = await database.pool.query<{ jobs: number; items: number }>(
      'SELECT (SELECT count(*) FROM bulk_jobs)::int AS jobs, (SELECT count(*) FROM bulk_items)::int AS items',
    );
    return rows[0];
  }

  it('refuses a file with bad rows whole, naming every bad line, and writes nothing', async () => {
    const path = await file(
      'bad.csv',
      [
        'profile_id,entity_type,entity_id,bid,budget,state',
        `${US_PROFILE},keyword,5000000000000001,1.25,,`, // 2 ok
        `${US_PROFILE},keyword,5000000000000002,abc,,`, // 3 bad number
        `${US_PROFILE},keyword,5000000000000003,1500,,`, // 4 bid above the US maximum
        `${US_PROFILE},adgroup,4000000000000001,1.00,,`, // 5 unknown entity type
        `${US_PROFILE},keyword,5000000000000001,2.00,,`, // 6 same entity as line 2
        `${US_PROFILE},campaign,3000000000000001,,25.5,PAUSED`, // 7 ok
        `${US_PROFILE},keyword,5000000000000004,,,ARCHIVED`, // 8 bad state
        `${US_PROFILE},keyword,5000000000000005,,,`, // 9 nothing to change
        `${US_PROFILE},campaign,3000000000000002,1.00,,`, // 10 bid on a campaign
        `${JP_PROFILE},keyword,5000000000000006,1.00,,`, // 11 fine in the US, below JP's minimum
        `${US_PROFILE},keyword,5000000000000007,1.234,,`, // 12 three decimals
      ].join('\n'),
    );
    const before = await counts();
    const result = await submitBulkFile(database.pool, { path, submittedBy: 'test' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const byLine = Object.fromEntries(result.errors.map((error) => [error.line, error.reason]));
    expect(Object.keys(byLine).map(Number)).toEqual([3, 4, 5, 6, 8, 9, 10, 11, 12]);
    expect(byLine[3]).toMatch(/bid "abc" is not a number/);
    expect(byLine[4]).toMatch(/bid 1500 is out of range for marketplace US/);
    expect(byLine[5]).toMatch(/unknown entity_type "adgroup"/);
    expect(byLine[6]).toMatch(/changed twice \(also on line 2\)/);
    expect(byLine[8]).toMatch(/state "ARCHIVED"/);
    expect(byLine[9]).toMatch(/nothing to change/);
    expect(byLine[10]).toMatch(/bid applies to keywords/);
    expect(byLine[11]).toMatch(/bid 1 is out of range for marketplace JP \(2 to 100000\)/);
    expect(byLine[12]).toMatch(/at most 2 decimals/);
    expect(await counts()).toEqual(before);
  });

  it('names unknown and missing columns in the header', async () => {
    const path = await file('header.csv', 'profile_id,entity_kind,entity_id,bid\n1,keyword,2,1.00\n');
    const result = await submitBulkFile(database.pool, { path, submittedBy: 'test' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((error) => error.reason)).toEqual([
      expect.stringMatching(/unknown column "entity_kind"/),
      expect.stringMatching(/missing column "entity_type"/),
    ]);
    expect(result.errors[0]?.line).toBe(1);
  });

  it('a dry run checks and writes nothing; a clean file is one job with its items', async () => {
    const rows = ['profile_id,entity_type,entity_id,bid,budget,state'];
    for (let i = 0; i < 2_500; i += 1)
      rows.push(
        `${US_PROFILE + (i % 5)},keyword,${5_000_000_000_000 + i},1.${String(i % 100).padStart(2, '0')},,`,
      );
    rows.push(`${US_PROFILE},campaign,3000000000000001,,40,ENABLED`);
    const path = await file('good.csv', `${rows.join('\n')}\n`);

    const before = await counts();
    const dry = await submitBulkFile(database.pool, { path, submittedBy: 'test', dryRun: true });
    expect(dry).toMatchObject({
      ok: true,
      jobId: undefined,
      rows: 2_501,
      profiles: 5,
      keywords: 2_500,
      campaigns: 1,
    });
    expect(await counts()).toEqual(before);

    const real = await submitBulkFile(database.pool, { path, submittedBy: 'test', traceId: 'abc' });
    expect(real).toMatchObject({ ok: true, rows: 2_501 });
    if (!real.ok) return;
    const { rows: jobs } = await database.pool.query(
      'SELECT status, total, pending, file_name, submitted_by, trace_id FROM bulk_jobs WHERE id = $1',
      [real.jobId],
    );
    expect(jobs[0]).toMatchObject({
      status: 'SUBMITTED',
      total: 2_501,
      pending: 2_501,
      submitted_by: 'test',
      trace_id: 'abc',
    });
    const { rows: items } = await database.pool.query(
      `SELECT line, profile_id, entity_type, entity_id::text AS entity_id, change, status FROM bulk_items
        WHERE job_id = $1 AND line IN (2, 2502) ORDER BY line`,
      [real.jobId],
    );
    expect(items).toEqual([
      {
        line: 2,
        profile_id: US_PROFILE,
        entity_type: 'keyword',
        entity_id: '5000000000000',
        change: { bid: 1 },
        status: 'PENDING',
      },
      {
        line: 2502,
        profile_id: US_PROFILE,
        entity_type: 'campaign',
        entity_id: '3000000000000001',
        change: { budget: 40, state: 'ENABLED' },
        status: 'PENDING',
      },
    ]);
  });

  it('reads JSON Lines and JSON arrays with the same rules', async () => {
    const lines = await file(
      'rows.jsonl',
      [
        JSON.stringify({
          profile_id: US_PROFILE,
          entity_type: 'keyword',
          entity_id: '5000000000100001',
          bid: 0.5,
        }),
        '',
        JSON.stringify({
          profile_id: US_PROFILE,
          entity_type: 'keyword',
          entity_id: '5000000000100002',
          bid: 0.01,
        }),
        '{not json',
      ].join('\n'),
    );
    const bad = await submitBulkFile(database.pool, { path: lines, submittedBy: 'test', dryRun: true });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.errors.map((error) => error.line)).toEqual([3, 4]);
      expect(bad.errors[0]?.reason).toMatch(/out of range/);
      expect(bad.errors[1]?.reason).toMatch(/not valid JSON/);
    }
    const array = await file(
      'rows.json',
      JSON.stringify([
        { profile_id: US_PROFILE, entity_type: 'campaign', entity_id: '3000000000100001', state: 'PAUSED' },
        { profile_id: String(US_PROFILE), entity_type: 'keyword', entity_id: '5000000000100003', bid: '2.5' },
      ]),
    );
    expect(
      await submitBulkFile(database.pool, { path: array, submittedBy: 'test', dryRun: true }),
    ).toMatchObject({
      ok: true,
      rows: 2,
      campaigns: 1,
    });
  });

  it('refuses ids above 2^53 - 1 with their line, rather than rounding them onto other ids', async () => {
    const path = await file(
      'large-ids.csv',
      [
        'profile_id,entity_type,entity_id,bid,budget,state',
        `${US_PROFILE},keyword,9007199254740991,1.00,,`, // 2 the largest exact id: fine
        `${US_PROFILE},keyword,9007199254740992,1.00,,`, // 3 2^53
        `${US_PROFILE},keyword,9007199254740993,1.00,,`, // 4 2^53 + 1: the same double as line 3
        `9007199254740993,keyword,5000000000000001,1.00,,`, // 5 profile id too large
        `${US_PROFILE},campaign,12345678901234567890123,,10,`, // 6 far beyond bigint
      ].join('\n'),
    );
    const result = await submitBulkFile(database.pool, { path, submittedBy: 'test', dryRun: true });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([
      {
        line: 3,
        reason:
          'entity_id 9007199254740992 is larger than 9007199254740991, the largest id this fleet carries exactly',
      },
      {
        line: 4,
        reason:
          'entity_id 9007199254740993 is larger than 9007199254740991, the largest id this fleet carries exactly',
      },
      {
        line: 5,
        reason:
          'profile_id 9007199254740993 is larger than 9007199254740991, the largest id this fleet carries exactly',
      },
      { line: 6, reason: expect.stringMatching(/^entity_id 12345678901234567890123 is larger than/) },
    ]);
  });

  it('stores the largest exact id unchanged', async () => {
    const path = await file(
      'largest-id.csv',
      `profile_id,entity_type,entity_id,bid\n${US_PROFILE},keyword,9007199254740991,1.10\n`,
    );
    const result = await submitBulkFile(database.pool, { path, submittedBy: 'test' });
    expect(result).toMatchObject({ ok: true, rows: 1 });
    if (!result.ok) return;
    const { rows } = await database.pool.query(
      'SELECT entity_id::text AS entity_id FROM bulk_items WHERE job_id = $1',
      [result.jobId],
    );
    expect(rows).toEqual([{ entity_id: '9007199254740991' }]);
  });

  it('names the right lines of a file read in many chunks, a duplicate far from its first line and bad quoting at the end', async () => {
    const rows = ['profile_id,entity_type,entity_id,bid,budget,state'];
    for (let i = 0; i < 30_000; i += 1)
      rows.push(`${US_PROFILE},keyword,${5_000_000_000_000 + i},1.00,,PAUSED`);
    rows.push(`${US_PROFILE},keyword,5000000000007,2.00,,`); // line 30,002: the same keyword as line 9
    rows.push(`${US_PROFILE},keyword,"5000000000099999"x,2.00,,`); // line 30,003: not valid CSV
    const path = await file('long.csv', `${rows.join('\n')}\n`);
    const before = await counts();
    const result = await submitBulkFile(database.pool, { path, submittedBy: 'test' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.rows).toBe(30_000);
    expect(result.errors.map((error) => error.line)).toEqual([30_002, 30_003]);
    expect(result.errors[0]?.reason).toBe('keyword 5000000000007 is changed twice (also on line 9)');
    expect(result.errors[1]?.reason).toMatch(/^not valid CSV: /);
    expect(await counts()).toEqual(before);
  });
});
