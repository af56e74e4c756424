import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimNextDue } from '../../../domain/bulk/apply.ts';
import { resumeOrphanedProfiles } from '../../../domain/bulk/sweep.ts';
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
 * seconds after the death, not when the dead claims' leases run out.
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
    const settings = { leaseMs: LEASE_MS, batchSize: 10 };
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
    // Its holder was killed 11 s ago, after its last renewal (every 5 s): 4 s of lease left.
    await db.pool.query(
      "UPDATE bulk_items SET lease_expires_at = now() + interval '4 seconds' WHERE id = ANY($1)",
      [claimed],
    );
    expect(await resumeOrphanedProfiles(db.pool, messenger, settings)).toBe(1);
    const { Messages } = await topology.clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: topology.state.queues['bulk-item'].url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 2,
      }),
    );
    expect(Messages).toHaveLength(1);
    const body = JSON.parse(Messages?.[0]?.Body ?? '{}') as {
      type?: string;
      payload?: { itemIds?: number[]; profileId?: number };
    };
    expect(body.type).toBe('BulkItemBatch');
    const batch = body.payload ?? {};
    // The profile's other due items, not the stale claim's (those wait out its lease).
    expect(batch.profileId).toBe(PROFILE);
    expect(batch.itemIds).toHaveLength(4);
    expect(batch.itemIds?.some((id) => claimed.includes(id))).toBe(false);
  });
});
