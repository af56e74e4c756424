import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimBatch,
  claimNextDue,
  nextDueInMs,
  recordOutcomes,
  releaseItems,
  renewLease,
} from '../../../domain/bulk/apply.ts';
import { completeJob } from '../../../domain/bulk/completion.ts';
import { loadJob } from '../../../domain/bulk/jobs.ts';
import { submitDueJob } from '../../support/bulk.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';

const BIG = 1_000_000_000_001;
const SMALL = 1_000_000_000_002;

/**
 * The claim queries against Postgres alone: a handler chaining a busy profile's due items
 * never picks what another claim holds, the profile's cap and lock keep claims apart, and
 * the job completes once when its last items are recorded outside a transaction; a lease
 * is renewed only by its holder, and a holder that lost it neither renews nor records.
 */
describe('bulk claims', () => {
  let db: TestDatabase;
  let jobId: string;

  beforeAll(async () => {
    db = await createTestDatabase(stackEnv().DATABASE_URL as string);
    jobId = await submitDueJob(
      db.pool,
      [
        ...Array.from({ length: 30 }, (_, i) => `${BIG},keyword,${5_000_000_100_000 + i},1.5`),
        ...Array.from({ length: 5 }, (_, i) => `${SMALL},keyword,${5_000_000_200_000 + i},1.5`),
      ],
      'bulk-claims',
    );
  });
  afterAll(async () => {
    await db.drop();
  });

  const request = (owner: string) => ({
    jobId,
    profileId: BIG,
    owner,
    leaseMs: 60_000,
    profileInFlight: 2,
    limit: 10,
  });

  it('chains through due items of one profile without two claims taking the same item', async () => {
    const first = await claimNextDue(db.pool, request('a'));
    const second = await claimNextDue(db.pool, request('b'));
    if (first.kind !== 'claimed' || second.kind !== 'claimed') throw new Error('expected claims');
    expect(first.items).toHaveLength(10);
    expect(second.items).toHaveLength(10);
    expect(second.othersInFlight).toBe(1);
    const ids = [...first.items, ...second.items].map((item) => item.id);
    expect(new Set(ids).size).toBe(20);
    // Only the profile's own items.
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM bulk_items WHERE id = ANY($1) AND profile_id = $2',
      [ids, BIG],
    );
    expect(rows[0]?.n).toBe(20);
    // Two live claims: the profile is at its cap.
    expect(await claimNextDue(db.pool, request('c'))).toMatchObject({ kind: 'busy', inFlight: 2 });
    // A message whose items are all taken (a profile's delayed batch its chains got to
    // first) claims nothing and is dropped, rather than deferred as over the cap.
    expect(await claimBatch(db.pool, { ...request('x'), itemIds: first.items.map((i) => i.id) })).toEqual({
      kind: 'claimed',
      items: [],
      blocked: [],
      othersInFlight: 0,
    });

    for (const [owner, claim] of [
      ['a', first],
      ['b', second],
    ] as const) {
      const recorded = await recordOutcomes(
        db.pool,
        jobId,
        owner,
        claim.items.map((item) => ({ id: item.id, status: 'SUCCEEDED', attempts: 1, response: {} })),
      );
      expect(recorded.recorded.size).toBe(10);
      expect(recorded.completion).toBeUndefined();
    }
  });

  it('treats a profile whose lock another claim holds as busy, and claims nothing', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(hashtextextended('bulk-profile:' || $1::text, 0))", [BIG]);
      expect(await claimNextDue(db.pool, request('d'))).toMatchObject({ kind: 'busy' });
    } finally {
      await holder.end();
    }
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM bulk_items WHERE job_id = $1 AND status = 'RUNNING'`,
      [jobId],
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('renews a lease for its holder only; a holder that lost its items renews and records nothing', async () => {
    const held = await claimNextDue(db.pool, { ...request('g'), leaseMs: 5_000 });
    if (held.kind !== 'claimed') throw new Error('expected a claim');
    const ids = held.items.map((item) => item.id);
    expect(ids).toHaveLength(10);
    const expiry = async () =>
      (
        await db.pool.query<{ owner: string; in_s: number }>(
          `SELECT lease_owner AS owner, min(extract(epoch FROM lease_expires_at - now()))::float AS in_s
             FROM bulk_items WHERE id = ANY($1) GROUP BY 1`,
          [ids],
        )
      ).rows;
    expect(await renewLease(db.pool, jobId, 'g', 60_000)).toBe(10);
    expect((await expiry())[0]?.in_s).toBeGreaterThan(50);
    // The holder stalls past its lease; another claim takes the items, as the sweeper's
    // re-sent batch would.
    await db.pool.query(
      "UPDATE bulk_items SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1)",
      [ids],
    );
    const taken = await claimBatch(db.pool, { ...request('h'), itemIds: ids });
    if (taken.kind !== 'claimed') throw new Error('expected the items claimed again');
    expect(taken.items).toHaveLength(10);
    expect(await renewLease(db.pool, jobId, 'g', 60_000)).toBe(0);
    const late = await recordOutcomes(
      db.pool,
      jobId,
      'g',
      ids.map((id) => ({ id, status: 'SUCCEEDED' as const, attempts: 1, response: {} })),
    );
    expect(late.recorded.size).toBe(0);
    expect((await expiry()).map((row) => row.owner)).toEqual(['h']);
    // Given back unapplied, due in 3 s: a chain with nothing due waits that long.
    await releaseItems(db.pool, jobId, 'h', ids, 3_000);
    const inMs = await nextDueInMs(db.pool, jobId, BIG);
    expect(inMs).toBeGreaterThan(2_000);
    expect(inMs).toBeLessThanOrEqual(3_000);
    await db.pool.query('UPDATE bulk_items SET due_at = now() WHERE id = ANY($1)', [ids]);
    expect(await nextDueInMs(db.pool, jobId, BIG)).toBe(0);
  });

  it('stops counting a claim against the cap once its holder stops renewing, before its lease runs out', async () => {
    const small = (owner: string) => ({
      jobId,
      profileId: SMALL,
      owner,
      leaseMs: 15_000,
      profileInFlight: 1,
      limit: 2,
    });
    const dead = await claimNextDue(db.pool, small('dead'));
    if (dead.kind !== 'claimed') throw new Error('expected a claim');
    const deadIds = dead.items.map((item) => item.id);
    // Renewed just now: the profile is at its cap of one.
    expect(await claimNextDue(db.pool, small('early'))).toMatchObject({ kind: 'busy', inFlight: 1 });
    // Its holder was killed 11 s ago, after its last renewal (every 5 s): 4 s of lease left.
    await db.pool.query(
      "UPDATE bulk_items SET lease_expires_at = now() + interval '4 seconds' WHERE id = ANY($1)",
      [deadIds],
    );
    const live = await claimNextDue(db.pool, small('live'));
    if (live.kind !== 'claimed') throw new Error('expected the cap to free up');
    expect(live.items).toHaveLength(2);
    // The dead claim's items stay its own until the lease runs out.
    expect(live.items.some((item) => deadIds.includes(item.id))).toBe(false);
    const { rows } = await db.pool.query<{ owner: string }>(
      'SELECT DISTINCT lease_owner AS owner FROM bulk_items WHERE id = ANY($1)',
      [deadIds],
    );
    expect(rows.map((row) => row.owner)).toEqual(['dead']);
    await releaseItems(db.pool, jobId, 'dead', deadIds, 0);
    await releaseItems(
      db.pool,
      jobId,
      'live',
      live.items.map((item) => item.id),
      0,
    );
  });

  it('completes the job once, when the last items are recorded', async () => {
    const rest = await claimNextDue(db.pool, request('e'));
    const small = await claimBatch(db.pool, {
      jobId,
      profileId: SMALL,
      owner: 'f',
      leaseMs: 60_000,
      profileInFlight: 2,
      itemIds: (
        await db.pool.query<{ id: number }>('SELECT id FROM bulk_items WHERE profile_id = $1', [SMALL])
      ).rows.map((row) => row.id),
    });
    if (rest.kind !== 'claimed' || small.kind !== 'claimed') throw new Error('expected claims');
    expect(rest.items).toHaveLength(10);
    expect(small.items).toHaveLength(5);
    const done = (items: readonly { id: number }[]) =>
      items.map((item) => ({ id: item.id, status: 'SUCCEEDED' as const, attempts: 1, response: {} }));
    const [a, b] = await Promise.all([
      recordOutcomes(db.pool, jobId, 'e', done(rest.items)),
      recordOutcomes(db.pool, jobId, 'f', done(small.items)),
    ]);
    expect([a.completion, b.completion].filter((id) => id !== undefined)).toHaveLength(1);
    expect(await completeJob(db.pool, jobId)).toBeUndefined();
    const job = await loadJob(db.pool, jobId);
    expect(job?.status).toBe('COMPLETED');
    expect(job?.counts).toMatchObject({ total: 35, succeeded: 35, pending: 0, running: 0, retry: 0 });
    const { rows } = await db.pool.query<{ detail: Record<string, unknown> }>(
      'SELECT detail FROM bulk_outbox WHERE job_id = $1',
      [jobId],
    );
    expect(rows.map((row) => row.detail)).toEqual([
      { jobId, status: 'COMPLETED', profileIds: [BIG, SMALL], succeeded: 35, failed: 0, cancelled: 0 },
    ]);
  });
});
