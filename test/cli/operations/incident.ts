import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type pg from 'pg';
import { FLEET_ATTRIBUTES } from '../../../shared/messaging/trace-context.ts';
import type { TestTopology } from '../../support/topology.ts';

/**
 * The seeded incident of `adfleet status` and the dashboard tests: a backfill chain whose
 * worker died (stale heartbeat, no progress), a bulk job with 37 failed items, poison messages in the bulk-item DLQ, a
 * message waiting on a queue nobody consumes, a profile whose syncs have failed for two hours
 * on a refused token (so it missed its nightly sync), and
 * one healthy worker process for contrast (a long interval keeps it alive through a test).
 */

export const INCIDENT = {
  backfillJobId: '5b0c3f5e-7d0e-4c1a-9a53-6f1e0d2c4b11',
  backfillTraceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  deadLetterReason: 'FatalError: item batch for profile 31 is malformed: change.bid must be a number',
  deadLetters: 12,
  throttleReason: 'heartbeat write took 57.5 ms (slow above 40 ms)',
  staleProfileId: 9_000_000_001,
  syncError: 'LWA refused the refresh token: invalid_grant (the grant was revoked)',
  freshProfileId: 9_000_000_002,
  bulkJobId: '7d9e2a41-3b6c-4f0e-8a1d-2c5b9e4f6a70',
  bulkFile: 'bids-black-friday.csv',
  bulkItems: 100,
  bulkFailed: 37,
  bulkErrorCode: 'INVALID_ARGUMENT',
  bulkErrorMessage: 'bid 2000.00 is above the marketplace maximum 1000.00',
  deadPid: 424_242,
  livePid: 434_343,
} as const;

export async function seedDatabase(db: pg.Pool): Promise<void> {
  await db.query(
    `INSERT INTO worker_heartbeats (instance_id, service, host, task, pid, version, started_at, beat_at,
       interval_ms, last_poll_at, in_flight, handled, failed, ready, not_ready_reason)
     VALUES (gen_random_uuid(), 'backfill-chunk', 'ip-10-0-3-17', 'arn:aws:ecs:eu-west-1:123456789012:task/adfleet/0f3c', $1, '0.1.0',
             now() - interval '3 hours', now() - interval '12 minutes', 5000, now() - interval '12 minutes', 1, 5210, 0, true, NULL),
            (gen_random_uuid(), 'bulk-item', 'ip-10-0-3-18', NULL, $2, '0.1.0',
             now() - interval '1 hour', now(), 600000, now(), 0, 880, 37, true, NULL)`,
    [INCIDENT.deadPid, INCIDENT.livePid],
  );
  await db.query(
    `INSERT INTO backfill_jobs (id, name, status, batch_size, batches_per_chunk, parallel, throttle_policy,
       low_id, high_water_id, rows_estimate, rows_processed, current_rate, trace_id, stall_after_ms,
       created_at, started_at, updated_at)
     VALUES ($1, 'campaign-currency', 'running', 1000, 20, 1, '{}', 0, 200000, 200000, 70000, 0, $2, 120000,
             now() - interval '40 minutes', now() - interval '40 minutes', now() - interval '12 minutes')`,
    [INCIDENT.backfillJobId, INCIDENT.backfillTraceId],
  );
  await db.query(
    `INSERT INTO backfill_partitions (job_id, partition, status, range_start, range_end, cursor, rows_processed,
       rows_written, batches, chunks, current_rate, throttle_state, stall_deadline, updated_at)
     VALUES ($1, 0, 'running', 0, 200000, 70000, 70000, 70000, 70, 4, 0, 'healthy',
             now() - interval '10 minutes', now() - interval '12 minutes')`,
    [INCIDENT.backfillJobId],
  );
  // Its rate history up to the stall, and the throttle decisions on the way.
  await db.query(
    `INSERT INTO backfill_progress_samples (job_id, at, rows_processed, current_rate)
     SELECT $1, now() - interval '40 minutes' + n * interval '2 minutes', n * 2500, 100 + 10 * n
       FROM generate_series(1, 14) AS n`,
    [INCIDENT.backfillJobId],
  );
  await db.query(
    `INSERT INTO backfill_throttle_events (job_id, partition, at, state, reason, probe_ms, active_connections, rate_limit)
     VALUES ($1, 0, now() - interval '30 minutes', 'slowed', $2, 57.5, 12, 500),
            ($1, 0, now() - interval '20 minutes', 'healthy', 'heartbeat write 8.1 ms, 9 active connections', 8.1, 9, NULL)`,
    [INCIDENT.backfillJobId, INCIDENT.throttleReason],
  );
  // A finished bulk job: 63 items applied, 37 refused by Amazon.
  await db.query(
    `INSERT INTO bulk_jobs (id, status, file_name, submitted_by, total, succeeded, failed, trace_id,
       created_at, dispatched_at, updated_at, finished_at)
     VALUES ($1, 'COMPLETED_WITH_ERRORS', $2, 'oncall@example.com', $3::int, $3::int - $4::int, $4::int, $5,
             now() - interval '50 minutes', now() - interval '49 minutes', now() - interval '45 minutes',
             now() - interval '45 minutes')`,
    [
      INCIDENT.bulkJobId,
      INCIDENT.bulkFile,
      INCIDENT.bulkItems,
      INCIDENT.bulkFailed,
      INCIDENT.backfillTraceId,
    ],
  );
  await db.query(
    `INSERT INTO bulk_items (job_id, job_seq, line, profile_id, entity_type, entity_id, change, status, attempts,
       error_code, error_message, finished_at)
     SELECT $1, j.seq, n + 1, 31, 'keyword', 100000 + n,
            jsonb_build_object('bid', CASE WHEN n <= $3::int THEN 2000 ELSE 1.5 END),
            CASE WHEN n <= $3::int THEN 'FAILED' ELSE 'SUCCEEDED' END, 1,
            CASE WHEN n <= $3::int THEN $4 END, CASE WHEN n <= $3::int THEN $5 END,
            now() - interval '49 minutes' + n * interval '2 seconds'
       FROM bulk_jobs j, generate_series(1, $2::int) AS n WHERE j.id = $1`,
    [
      INCIDENT.bulkJobId,
      INCIDENT.bulkItems,
      INCIDENT.bulkFailed,
      INCIDENT.bulkErrorCode,
      INCIDENT.bulkErrorMessage,
    ],
  );
  await db.query(
    `INSERT INTO profiles (id, country_code, currency_code, marketplace, account_name, last_synced_at)
     VALUES ($1, 'DE', 'EUR', 'A1PA6795UKMFR9', 'Stale Shop GmbH', now() - interval '2 days'),
            ($2, 'US', 'USD', 'ATVPDKIKX0DER', 'Fresh Store Inc', now() - interval '1 hour')`,
    [INCIDENT.staleProfileId, INCIDENT.freshProfileId],
  );
  await db.query(
    `INSERT INTO profile_sync_state (profile_id, last_error, last_error_at, failing_since)
     VALUES ($1, $2, now() - interval '5 minutes', now() - interval '2 hours')`,
    [INCIDENT.staleProfileId, INCIDENT.syncError],
  );
}

export async function seedQueues(topology: TestTopology): Promise<void> {
  const { sqs } = topology.clients;
  const deadLetterUrl = topology.state.queues['bulk-item'].deadLetterUrl;
  await Promise.all(
    Array.from({ length: INCIDENT.deadLetters }, (_, index) =>
      sqs.send(
        new SendMessageCommand({
          QueueUrl: deadLetterUrl,
          MessageBody: JSON.stringify({ type: 'ApplyBulkItems', payload: { batch: index } }),
          MessageAttributes: {
            [FLEET_ATTRIBUTES.deadLetter]: {
              DataType: 'String',
              StringValue: JSON.stringify({
                reason: INCIDENT.deadLetterReason,
                queue: `${topology.prefix}-bulk-item`,
                messageId: `poison-${index}`,
                type: 'ApplyBulkItems',
                receiveCount: 1,
                at: new Date().toISOString(),
              }),
            },
          },
        }),
      ),
    ),
  );
  // Waiting on a queue no live process consumes.
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: topology.state.queues['profile-sync'].url,
      MessageBody: JSON.stringify({ type: 'SyncProfile', payload: { profileId: INCIDENT.staleProfileId } }),
    }),
  );
}
