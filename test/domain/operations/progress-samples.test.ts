import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';

/** The backfill chart's history: the job summary's refreshes leave at most one sample per 5 s. */
describe('backfill progress samples', () => {
  let database: TestDatabase;
  const jobId = '0b6f6d7e-1c2a-4e5f-9a8b-7c6d5e4f3a21';

  beforeAll(async () => {
    database = await createTestDatabase(stackEnv().DATABASE_URL as string);
    await database.pool.query(
      `INSERT INTO backfill_jobs (id, name, batch_size, batches_per_chunk, parallel, throttle_policy, low_id,
         high_water_id, rows_estimate)
       VALUES ($1, 'campaign-currency', 1000, 20, 1, '{}', 0, 100000, 100000)`,
      [jobId],
    );
  });
  afterAll(async () => {
    await database.drop();
  });

  const samples = async () =>
    (
      await database.pool.query<{ rows_processed: number; current_rate: number }>(
        'SELECT rows_processed, current_rate FROM backfill_progress_samples WHERE job_id = $1 ORDER BY at',
        [jobId],
      )
    ).rows;
  const refresh = (rows: number, rate: number) =>
    database.pool.query('UPDATE backfill_jobs SET rows_processed = $2, current_rate = $3 WHERE id = $1', [
      jobId,
      rows,
      rate,
    ]);

  it('samples the first refresh, skips refreshes within 5 s, and samples again after', async () => {
    await refresh(1_000, 250);
    await refresh(2_000, 260);
    expect(await samples()).toEqual([{ rows_processed: 1_000, current_rate: 250 }]);
    // An update that changes neither rows nor status (e.g. the rate alone) is no sample either.
    await database.pool.query(`UPDATE backfill_progress_samples SET at = at - interval '6 seconds'`);
    await database.pool.query('UPDATE backfill_jobs SET current_rate = 1 WHERE id = $1', [jobId]);
    expect(await samples()).toHaveLength(1);
    await refresh(3_000, 270);
    expect(await samples()).toEqual([
      { rows_processed: 1_000, current_rate: 250 },
      { rows_processed: 3_000, current_rate: 270 },
    ]);
  });
});
