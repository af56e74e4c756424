import { DeleteMessageCommand, PurgeQueueCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimNextDue } from '../../../domain/bulk/apply.ts';
import {
  type OrphanedProfile,
  RESUME_EVERY_MS,
  resendStranded,
  resumeOrphanedProfiles,
  startSweeper,
} from '../../../domain/bulk/sweep.ts';
import { createLogger } from '../../../shared/logging.ts';
import { createMessenger } from '../../../shared/messaging/messenger.ts';
import { submitDueJob } from '../../support/bulk.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv } from '../../support/env.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';

const PROFILE = 1_000_000_000_003;
const LEASE_MS = 15_000;

/**
 * The sweeper against Postgres and the emulator: a profile whose every claim went stale (the
 * worker holding it died, so nobody renews) gets a batch of its due items sent at once,
 * seconds after the death, not when the dead claims' leases run out; a running sweeper
 * looks for such profiles every second, not only at its full sweeps.
 */
describe('bulk sweeper', () => {
  let db: TestDatabase;
  let topology: TestTopology;
  let jobId: string;

  beforeAll(async () => {
    db = await createTestDatabase(stackEnv().DATABASE_URL as string);
    topology = await createTestTopology('bulk-sweep');
    jobId = await submitDueJob(
      db.pool,
      Array.from({ length: 6 }, (_, i) => `${PROFILE},keyword,${5_000_000_300_000 + i},1.5`),
      'bulk-sweep',
    );
  });
  afterAll(async () => {
    await topology?.destroy();
    await db?.drop();
  });

  it('resumes a profile whose claims all went stale, and leaves one with a live claim alone', async () => {
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const settings = { leaseMs: LEASE_MS, batchSize: 10, profileInFlight: 4 };
    const claim = await claimNextDue(db.pool, {
      jobId,
      profileId: PROFILE,
      owner: 'dead',
      leaseMs: LEASE_MS,
      profileInFlight: 1,
      limit: 2,
    });
    if (claim.kind !== 'claimed') throw new Error('expected a claim');
    const claimed = claim.items.map((item) => item.id);
    // Just claimed (its holder renews it): nothing to resume.
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings)).toBe(0);
    // Renewed within its period (every 2 s) and a second: live.
    await setLeaseLeft(claimed, 12_500);
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings)).toBe(0);
    // Its holder was killed 4 s ago, after its last renewal: 11 s of lease left, stale.
    await setLeaseLeft(claimed, 11_000);
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings)).toBe(1);
    const batch = await receiveBatch();
    // The profile's other due items, not the stale claim's (those wait out its lease).
    expect(batch.profileId).toBe(PROFILE);
    expect(batch.itemIds).toHaveLength(4);
    expect(batch.itemIds?.some((id) => claimed.includes(id))).toBe(false);
    await release(claimed);
  });

  it('a running sweeper resumes an orphaned profile within seconds, between its full sweeps', async () => {
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const claim = await claimNextDue(db.pool, {
      jobId,
      profileId: PROFILE,
      owner: 'dead-again',
      leaseMs: LEASE_MS,
      profileInFlight: 1,
      limit: 2,
    });
    if (claim.kind !== 'claimed') throw new Error('expected a claim');
    const claimed = claim.items.map((item) => item.id);
    await setLeaseLeft(claimed, 11_000);
    const sweeper = startSweeper(db.pool, messenger, createLogger({ name: 'test', level: 'silent' }), {
      // The full sweep would recover or resume nothing within this test.
      intervalMs: 600_000,
      leaseMs: LEASE_MS,
      stallAfterMs: 300_000,
      maxAttempts: 5,
      batchSize: 10,
      profileInFlight: 4,
    });
    const started = Date.now();
    try {
      const batch = await receiveBatch();
      expect(batch.profileId).toBe(PROFILE);
      expect(Date.now() - started).toBeLessThan(RESUME_EVERY_MS + 2_000);
    } finally {
      await sweeper.stop();
      await release(claimed);
      await topology.clients.sqs.send(
        new PurgeQueueCommand({ QueueUrl: topology.state.queues['bulk-item'].url }),
      );
    }
  });

  it('sends one batch per dead claim, so the profile runs as many chains as before', async () => {
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const profile = PROFILE + 1;
    const otherJob = await submitDueJob(
      db.pool,
      Array.from({ length: 10 }, (_, i) => `${profile},keyword,${5_000_000_310_000 + i},1.5`),
      'bulk-sweep-chains',
    );
    const claimed = await staleClaims(otherJob, profile, ['dead-1', 'dead-2']);
    expect(
      await resumeOrphanedProfiles(db.pool, messenger, {
        leaseMs: LEASE_MS,
        batchSize: 2,
        profileInFlight: 4,
      }),
    ).toBe(1);
    const batches = await receivePayloads(2);
    expect(batches.map((batch) => batch.itemIds.length)).toEqual([2, 2]);
    await release(claimed);
    await purge();
  });

  it('lets the worker start chains for an orphaned profile itself, and sends batches only for the rest', async () => {
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const profile = PROFILE + 2;
    const otherJob = await submitDueJob(
      db.pool,
      Array.from({ length: 10 }, (_, i) => `${profile},keyword,${5_000_000_320_000 + i},1.5`),
      'bulk-sweep-local',
    );
    const claimed = await staleClaims(otherJob, profile, ['dead-3', 'dead-4', 'dead-5']);
    const asked: OrphanedProfile[] = [];
    // This process has room for two of its three chains.
    const startChains = (orphan: OrphanedProfile) => {
      asked.push(orphan);
      return 2;
    };
    const settings = { leaseMs: LEASE_MS, batchSize: 2, profileInFlight: 4 };
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings, { startChains })).toBe(1);
    expect(asked).toEqual([
      { jobId: otherJob, profileId: profile, claims: 3, traceCarrier: expect.any(Object) },
    ]);
    const messages = await receiveAll(2);
    expect(messages).toHaveLength(1);
    await release(claimed);
    await purge();
  });

  it('starts chains for the dead claims of a profile that still has a live one, and sends no batch', async () => {
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const profile = PROFILE + 3;
    const otherJob = await submitDueJob(
      db.pool,
      Array.from({ length: 12 }, (_, i) => `${profile},keyword,${5_000_000_330_000 + i},1.5`),
      'bulk-sweep-partial',
    );
    // Three chains died with their worker; a fourth, in another worker, renews its lease.
    const dead = await staleClaims(otherJob, profile, ['dead-6', 'dead-7', 'dead-8'], 4);
    const live = await claimNextDue(db.pool, {
      jobId: otherJob,
      profileId: profile,
      owner: 'alive',
      leaseMs: LEASE_MS,
      profileInFlight: 4,
      limit: 2,
    });
    if (live.kind !== 'claimed' || live.items.length === 0) throw new Error('expected a live claim');
    const asked: OrphanedProfile[] = [];
    const startChains = (orphan: OrphanedProfile) => {
      asked.push(orphan);
      return orphan.claims;
    };
    const settings = { leaseMs: LEASE_MS, batchSize: 2, profileInFlight: 4 };
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings, { startChains })).toBe(1);
    expect(asked).toEqual([
      { jobId: otherJob, profileId: profile, claims: 3, traceCarrier: expect.any(Object) },
    ]);
    // At a cap of 2, with one live claim, one chain is started for the three dead ones.
    asked.length = 0;
    await resumeOrphanedProfiles(db.pool, messenger, { ...settings, profileInFlight: 2 }, { startChains });
    expect(asked.map((orphan) => orphan.claims)).toEqual([1]);
    // At the cap in live claims alone: nothing to resume.
    asked.length = 0;
    expect(
      await resumeOrphanedProfiles(db.pool, messenger, { ...settings, profileInFlight: 1 }, { startChains }),
    ).toBe(0);
    expect(asked).toEqual([]);
    // No process could start one: the live chain goes on, and no batch is sent.
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings, { startChains: () => 0 })).toBe(0);
    const messages = await receiveAll(1);
    expect(messages ?? []).toHaveLength(0);
    await release([...dead, ...live.items.map((item) => item.id)]);
  });

  it('sends again the due items of a profile that no claim carries, one batch per slot, once', async () => {
    // A chain's worker died between two batches: the profile's items are due in the ledger,
    // no message carries them and no claim, live or stale, holds any. Due an hour here
    // against a threshold of half that, so that the other tests' items stay out of it.
    const { messenger } = createMessenger(topology.clients, { ADFLEET_RESOURCE_PREFIX: topology.prefix });
    const profile = PROFILE + 4;
    const strandedJob = await submitDueJob(
      db.pool,
      Array.from({ length: 5 }, (_, i) => `${profile},keyword,${5_000_000_340_000 + i},1.5`),
      'bulk-sweep-stranded',
    );
    const settings = { batchSize: 2, profileInFlight: 2 };
    const threshold = 30 * 60_000;
    const backdate = () =>
      db.pool.query("UPDATE bulk_items SET due_at = now() - interval '1 hour' WHERE job_id = $1", [
        strandedJob,
      ]);
    // Due just now: its message may still be on its way.
    expect(await resendStranded(db.pool, messenger, settings, threshold)).toBe(0);
    await backdate();
    expect(await resendStranded(db.pool, messenger, settings, threshold)).toBe(1);
    const batches = await receivePayloads(3);
    // Two slots of two: four of the five items, in two batches of the profile.
    expect(batches.map((batch) => batch.profileId)).toEqual([profile, profile]);
    expect(batches.flatMap((batch) => batch.itemIds)).toHaveLength(4);
    // The profile marked due now, the fifth item too: the next sweep leaves it to the batches.
    expect(await resendStranded(db.pool, messenger, settings, threshold)).toBe(0);
    // A claim on the profile carries it: nothing is stranded, however long the rest waited.
    await backdate();
    const claim = await claimNextDue(db.pool, {
      jobId: strandedJob,
      profileId: profile,
      owner: 'carrying',
      leaseMs: LEASE_MS,
      profileInFlight: 2,
      limit: 1,
    });
    if (claim.kind !== 'claimed' || claim.items.length === 0) throw new Error('expected a claim');
    expect(await resendStranded(db.pool, messenger, settings, threshold)).toBe(0);
    await release(claim.items.map((item) => item.id));

    // A claim's statement holding one of the profile's rows: the sweep neither waits for it
    // (it held the batches' rows meanwhile, a deadlock with the claim) nor marks it.
    await backdate();
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      const { rows } = await holder.query<{ id: number }>(
        'SELECT id FROM bulk_items WHERE job_id = $1 ORDER BY id DESC LIMIT 1 FOR UPDATE',
        [strandedJob],
      );
      const started = Date.now();
      expect(await resendStranded(db.pool, messenger, settings, threshold)).toBe(1);
      expect(Date.now() - started).toBeLessThan(3_000);
      const { rows: marked } = await db.pool.query<{ id: number; stale: boolean }>(
        "SELECT id, due_at < now() - interval '30 minutes' AS stale FROM bulk_items WHERE job_id = $1",
        [strandedJob],
      );
      expect(marked.filter((row) => row.stale).map((row) => Number(row.id))).toEqual([Number(rows[0]?.id)]);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    await purge();
  });

  /**
   * One claim of two items per owner, each then unrenewed for 4 s (11 s of lease left:
   * stale); the claimed items' ids.
   */
  async function staleClaims(
    job: string,
    profileId: number,
    owners: readonly string[],
    profileInFlight = owners.length,
  ): Promise<number[]> {
    const claimed: number[] = [];
    for (const owner of owners) {
      const claim = await claimNextDue(db.pool, {
        jobId: job,
        profileId,
        owner,
        leaseMs: LEASE_MS,
        profileInFlight,
        limit: 2,
      });
      if (claim.kind !== 'claimed') throw new Error('expected a claim');
      claimed.push(...claim.items.map((item) => item.id));
    }
    await setLeaseLeft(claimed, 11_000);
    return claimed;
  }

  /** Gives a claim's items back, as if it had never been made. */
  async function release(itemIds: readonly number[]): Promise<void> {
    await db.pool.query(
      "UPDATE bulk_items SET status = 'PENDING', lease_owner = NULL, lease_expires_at = NULL WHERE id = ANY($1)",
      [itemIds],
    );
  }

  async function setLeaseLeft(itemIds: readonly number[], leftMs: number): Promise<void> {
    await db.pool.query(
      "UPDATE bulk_items SET lease_expires_at = now() + $2 * interval '1 millisecond' WHERE id = ANY($1)",
      [itemIds, leftMs],
    );
  }

  /** The batch messages' payloads the queue holds within `waitSeconds`, left in it. */
  async function receivePayloads(waitSeconds: number): Promise<{ profileId: number; itemIds: number[] }[]> {
    return ((await receiveAll(waitSeconds)) ?? []).map(
      (message) =>
        (JSON.parse(message.Body ?? '{}') as { payload: { profileId: number; itemIds: number[] } }).payload,
    );
  }

  async function purge(): Promise<void> {
    await topology.clients.sqs.send(
      new PurgeQueueCommand({ QueueUrl: topology.state.queues['bulk-item'].url }),
    );
  }

  /** Whatever the queue holds within `waitSeconds` (up to 10 messages), left in it. */
  async function receiveAll(waitSeconds: number) {
    const { Messages } = await topology.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: topology.state.queues['bulk-item'].url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: waitSeconds,
      }),
    );
    return Messages;
  }

  async function receiveBatch(): Promise<{ itemIds?: number[]; profileId?: number }> {
    const messages = await receiveAll(3);
    expect(messages).toHaveLength(1);
    await topology.clients.sqs.send(
      new DeleteMessageCommand({
        QueueUrl: topology.state.queues['bulk-item'].url,
        ReceiptHandle: messages?.[0]?.ReceiptHandle,
      }),
    );
    const body = JSON.parse(messages?.[0]?.Body ?? '{}') as {
      type?: string;
      payload?: { itemIds?: number[]; profileId?: number };
    };
    expect(body.type).toBe('BulkItemBatch');
    return body.payload ?? {};
  }
});
