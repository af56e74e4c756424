import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEEDS_HUMAN_EXIT_CODE } from '../../../cli/commands/status.ts';
import type { OperationsStatus } from '../../../domain/operations/status.ts';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { spawnNode } from '../../support/processes.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { INCIDENT, seedDatabase, seedQueues } from './incident.ts';

type StatusJson = Omit<OperationsStatus, 'at'> & { at: string };

describe('adfleet status on a seeded incident', () => {
  let topology: TestTopology;
  let database: TestDatabase;

  beforeAll(async () => {
    [topology, database] = await Promise.all([
      createTestTopology('status'),
      createTestDatabase(stackEnv().DATABASE_URL as string),
    ]);
    await Promise.all([seedDatabase(database.pool), seedQueues(topology)]);
    // The waiting message must be older than the threshold the command is given below.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
  });
  afterAll(async () => {
    await Promise.all([topology.destroy(), database.drop()]);
  });

  async function status(...args: string[]) {
    return command({}, 'status', '--max-message-age', '2', ...args);
  }

  async function command(env: Record<string, string>, ...args: string[]) {
    const run = spawnNode(
      'cli/main.ts',
      workerEnv(topology.prefix, { DATABASE_URL: database.url, LOG_LEVEL: 'warn', ...env }),
      args,
    );
    const exit = await run.exited;
    return { code: exit.code, output: run.output.join('\n'), logs: run.logs };
  }

  it('lists every fact past its threshold first, and exits non-zero', async () => {
    const { code, output } = await status();
    expect(code).toBe(NEEDS_HUMAN_EXIT_CODE);
    const [header, ...rest] = output.split('\n');
    expect(header).toMatch(/NEEDS A HUMAN: \d+ critical/);
    const text = rest.join('\n');
    const attention = text.slice(text.indexOf('ATTENTION'), text.indexOf('QUEUES'));
    // The dead-lettered poison messages, with their reason and the command to act.
    expect(attention).toContain(`bulk-item: ${INCIDENT.deadLetters} dead letter(s)`);
    expect(attention).toContain(INCIDENT.deadLetterReason);
    expect(attention).toContain('adfleet dlq list --queue bulk-item');
    // The stalled backfill chain and its trace.
    expect(attention).toMatch(/backfill +campaign-currency 5b0c3f5e-.*chain 0 has made no progress for 12m/);
    expect(attention).toContain(`trace http://127.0.0.1:16686/trace/${INCIDENT.backfillTraceId}`);
    // The dead worker process.
    expect(attention).toMatch(
      new RegExp(
        `pid ${INCIDENT.deadPid} on arn:aws:ecs:.*last heartbeat 12m\\d\\ds ago — died without stopping`,
      ),
    );
    // The queue nobody consumes, and how old its oldest message is.
    expect(attention).toMatch(/profile-sync: oldest message is \d+s old \(threshold 2s\)/);
    expect(attention).toContain('no live profile-sync process while 1 message(s) wait');
    // The bulk job's failed items, by Amazon's code, and what to run.
    expect(attention).toContain(
      `bulk         ${INCIDENT.bulkFile} ${INCIDENT.bulkJobId}: ${INCIDENT.bulkFailed} of ${INCIDENT.bulkItems} item(s) failed; most often ${INCIDENT.bulkErrorCode} (${INCIDENT.bulkFailed}): ${INCIDENT.bulkErrorMessage}`,
    );
    expect(attention).toContain(`adfleet bulk report ${INCIDENT.bulkJobId} --failed`);
    // The profile whose syncs fail on a refused token, for two hours now.
    expect(attention).toMatch(
      new RegExp(
        `!! CRIT  profiles +profile ${INCIDENT.staleProfileId} \\(Stale Shop GmbH\\): sync failing for 2h00m, last good sync 2d00h ago: LWA refused`,
      ),
    );
    expect(attention).toContain(`adfleet sync runs --profile ${INCIDENT.staleProfileId}`);
    // The profile that missed its sync.
    expect(attention).toMatch(/1 of 2 profile\(s\) not synced within 1d02h; oldest sync 2d00h ago/);
    // Critical before warnings.
    expect(attention.lastIndexOf('!! CRIT')).toBeLessThan(attention.indexOf(' ! WARN'));

    // The tables below the findings mark the same facts.
    expect(text).toMatch(/bulk-item +0 +0 +0 +-- +!12 +12× FatalError/);
    expect(text).toMatch(/backfill-chunk +0 +0 +!1/);
    expect(text).toMatch(
      /campaign-currency +5b0c3f5e-\S+ +running +35\.0% +70,000 of ~200,000 rows .* !1 chain\(s\) stalled/,
    );
    expect(text).toMatch(
      new RegExp(
        `${INCIDENT.bulkFile} +${INCIDENT.bulkJobId} +COMPLETED_WITH_ERRORS +100\\.0% +100 of 100 items +!37 failed`,
      ),
    );
    expect(text).toContain('Stale Shop GmbH');
    expect(text).not.toContain('Fresh Store Inc');
  });

  it('says the same in --json', async () => {
    const { code, logs } = await status('--json');
    expect(code).toBe(NEEDS_HUMAN_EXIT_CODE);
    // One line of JSON on stdout.
    const parsed = logs.find((line) => 'needsHuman' in line) as unknown as StatusJson;
    expect(parsed.needsHuman).toBe(true);
    const bulk = parsed.queues.find((queue) => queue.queue === 'bulk-item');
    expect(bulk?.deadLetters).toMatchObject({
      count: INCIDENT.deadLetters,
      sampled: INCIDENT.deadLetters,
      topReasons: [{ reason: INCIDENT.deadLetterReason, count: INCIDENT.deadLetters }],
    });
    const sync = parsed.queues.find((queue) => queue.queue === 'profile-sync');
    expect(sync).toMatchObject({ visible: 1, oldestAgeSource: 'emulator-peek', maxMessageAgeSeconds: 2 });
    expect(sync?.oldestAgeSeconds).toBeGreaterThan(2);
    const backfillWorkers = parsed.workers.find((service) => service.service === 'backfill-chunk');
    expect(backfillWorkers).toMatchObject({ alive: 0, stale: 1 });
    expect(parsed.workers.find((service) => service.service === 'bulk-item')).toMatchObject({
      alive: 1,
      ready: 1,
    });
    const [backfill] = parsed.backfills;
    expect(backfill?.job.id).toBe(INCIDENT.backfillJobId);
    expect(backfill?.stalled).toHaveLength(1);
    expect(backfill?.progress.rowsProcessed).toBe(70_000);
    const [bulkJob] = parsed.bulkJobs;
    expect(bulkJob?.job).toMatchObject({ id: INCIDENT.bulkJobId, status: 'COMPLETED_WITH_ERRORS' });
    expect(bulkJob?.job.counts).toMatchObject({ total: INCIDENT.bulkItems, failed: INCIDENT.bulkFailed });
    expect(bulkJob?.failures).toEqual([
      { code: INCIDENT.bulkErrorCode, count: INCIDENT.bulkFailed, example: INCIDENT.bulkErrorMessage },
    ]);
    expect(parsed.profiles).toMatchObject({ total: 2, stale: 1, failing: 1 });
    expect(parsed.profiles.failingProfiles[0]?.failing?.lastError).toBe(INCIDENT.syncError);
    expect(parsed.profiles.stalest[0]?.profileId).toBe(INCIDENT.staleProfileId);
    const areas = parsed.findings.map((finding) => `${finding.severity} ${finding.area} ${finding.subject}`);
    expect(areas).toEqual(
      expect.arrayContaining([
        'critical dead-letters bulk-item',
        'critical queue profile-sync',
        'critical workers profile-sync',
        `critical backfill campaign-currency ${INCIDENT.backfillJobId}`,
        `critical profiles profile ${INCIDENT.staleProfileId} (Stale Shop GmbH)`,
        'warning workers backfill-chunk',
        'warning profiles profiles',
        `warning bulk ${INCIDENT.bulkFile} ${INCIDENT.bulkJobId}`,
      ]),
    );
  });

  it('holds profiles to the freshness setting the sync worker and `sync status` use', async () => {
    // The stale profile's last good sync is 2 days old, the fresh one's 1 hour.
    const objective = async (hours: string) => {
      const env = { ADFLEET_SYNC_FRESHNESS_SLO_HOURS: hours };
      const fleet = await command(env, 'status', '--json');
      const sync = await command(env, 'sync', 'status', '--json');
      // `status --json` writes one line (read as a log line), `sync status --json` an indented document.
      const { profiles } = fleet.logs.find((line) => 'profiles' in line) as unknown as StatusJson;
      const perProfile = (
        JSON.parse(sync.output) as { profiles: Array<{ profileId: number; pastSlo: boolean }> }
      ).profiles;
      return {
        objectiveSeconds: profiles.freshnessObjectiveSeconds,
        statusStale: profiles.stale,
        syncStatusPast: perProfile.filter((profile) => profile.pastSlo).map((profile) => profile.profileId),
      };
    };
    expect(await objective('72')).toEqual({ objectiveSeconds: 259_200, statusStale: 0, syncStatusPast: [] });
    expect(await objective('0.5')).toEqual({
      objectiveSeconds: 1_800,
      statusStale: 2,
      syncStatusPast: [INCIDENT.staleProfileId, INCIDENT.freshProfileId],
    });
  });

  it('exits 0 when nothing needs a human', async () => {
    const quiet = await createTestDatabase(stackEnv().DATABASE_URL as string);
    const empty = await createTestTopology('status-ok');
    try {
      const run = spawnNode('cli/main.ts', workerEnv(empty.prefix, { DATABASE_URL: quiet.url }), ['status']);
      const exit = await run.exited;
      expect(run.output.join('\n')).toContain('all clear');
      expect(exit.code).toBe(0);
    } finally {
      await Promise.all([quiet.drop(), empty.destroy()]);
    }
  });
});
