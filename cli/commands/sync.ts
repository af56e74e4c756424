import { Command, InvalidArgumentError } from 'commander';
import { syncFreshnessSloSeconds } from '../../contract/config.ts';
import {
  type FreshnessSummary,
  freshnessSummary,
  listRuns,
  type ProfileFreshness,
  profileFreshness,
  type RunRecord,
} from '../../domain/sync/freshness.ts';
import { ENTITY_KINDS } from '../../domain/sync/model.ts';
import { requestSyncs } from '../../domain/sync/requests.ts';
import { syncSettings } from '../../domain/sync/settings.ts';
import { type CommandResult, positiveInt, runCommand } from '../context.ts';

/**
 * `adfleet sync --profile <id>...` asks profile-sync to sync profiles now (through the same
 * pile-up rules as the schedule: a profile already queued is not queued twice, one that is
 * syncing gets one follow-up); `adfleet sync status` is freshness per profile, stalest
 * first, with running syncs and failing profiles; `adfleet sync runs` the run records.
 */

function profileId(value: string, previous: number[] = []): number[] {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 1)
    throw new InvalidArgumentError(`"${value}" is not a profile id (a positive integer)`);
  return [...previous, parsed];
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 > 0 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 > 0 ? ` ${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

const since = (date: Date) => formatDuration((Date.now() - date.getTime()) / 1000);

function profileState(profile: ProfileFreshness): string {
  const parts: string[] = [];
  if (profile.running !== undefined) {
    const { running } = profile;
    const seen = ENTITY_KINDS.map((kind) => `${running.counts[kind].seen} ${kind}`).join(', ');
    const heartbeat =
      running.heartbeatAt === undefined
        ? 'released, waiting to resume'
        : `heartbeat ${since(running.heartbeatAt)} ago`;
    parts.push(
      `running: run ${running.runId} for ${since(running.startedAt)}, ${running.pages} pages (${seen}), ${heartbeat}`,
    );
  } else if (profile.queuedAt !== undefined) {
    parts.push(`queued ${since(profile.queuedAt)} ago`);
  }
  if (profile.failing !== undefined) parts.push(`FAILING for ${since(profile.failing.since)}`);
  if (profile.pastSlo) parts.push('PAST SLO');
  return parts.join('; ') || 'ok';
}

function statusText(
  summary: FreshnessSummary,
  profiles: readonly ProfileFreshness[],
  sloHours: number,
): string {
  const lines = [
    `freshness SLO ${sloHours} h: ${summary.profiles} profiles, ${summary.pastSlo} past the SLO, ${summary.failing} failing, ${summary.running} running` +
      (summary.oldestSyncAgeSeconds === undefined
        ? ''
        : `; oldest good sync ${formatDuration(summary.oldestSyncAgeSeconds)} ago`),
    '',
    `${'PROFILE'.padEnd(16)} ${'ACCOUNT'.padEnd(20)} ${'LAST GOOD SYNC'.padEnd(24)} ${'AGE'.padEnd(8)} STATE`,
  ];
  for (const profile of profiles) {
    lines.push(
      `${String(profile.profileId).padEnd(16)} ${profile.accountName.slice(0, 20).padEnd(20)} ` +
        `${(profile.lastGoodSyncAt?.toISOString() ?? 'never').padEnd(24)} ${formatDuration(profile.ageSeconds).padEnd(8)} ${profileState(profile)}`,
    );
  }
  const failing = profiles.filter((profile) => profile.failing !== undefined);
  if (failing.length > 0) {
    lines.push('', 'failing profiles (last error):');
    for (const profile of failing) {
      const f = profile.failing;
      if (f === undefined) continue;
      lines.push(
        `  ${profile.profileId}  failing for ${since(f.since)}, last at ${f.lastErrorAt.toISOString()}: ${f.lastError}`,
      );
    }
  }
  return lines.join('\n');
}

function runLine(run: RunRecord): string {
  const counts = ENTITY_KINDS.map((kind) => {
    const c = run.counts[kind];
    return `${kind} ${c.seen} seen/${c.inserted} new/${c.changed} changed/${c.removed} removed`;
  }).join(', ');
  const took =
    run.durationMs === undefined
      ? `running for ${since(run.startedAt)}`
      : `${(run.durationMs / 1000).toFixed(1)} s`;
  const detail = Object.keys(run.triggerDetail).length === 0 ? '' : ` ${JSON.stringify(run.triggerDetail)}`;
  return (
    `run ${run.runId}  profile ${run.profileId}  ${run.status.padEnd(10)} ${run.trigger}${detail}  started ${run.startedAt.toISOString()}  ${took}\n` +
    `    ${run.pages} pages, throttled ${(run.throttledMs / 1000).toFixed(1)} s (${run.throttledRequests} × 429), attempts ${run.attempts}; ${counts}` +
    (run.resumeNote === undefined ? '' : `\n    ${run.resumeNote}`) +
    (run.error === undefined ? '' : `\n    error: ${run.error}`) +
    (run.traceId === undefined ? '' : `\n    trace ${run.traceId}`)
  );
}

export function syncCommand(): Command {
  const sync = new Command('sync')
    .description(
      'Sync profiles now (--profile), or see how fresh they are (status) and how their syncs went (runs)',
    )
    .option('--profile <id>', 'a profile to sync now (repeatable)', profileId)
    .option('--reason <text>', 'recorded on the run as the operator trigger', 'operator')
    .action((options: { profile?: number[]; reason: string }) =>
      runCommand('sync', async ({ config, messenger, db, traceId }) => {
        if (options.profile === undefined || options.profile.length === 0)
          throw new InvalidArgumentError(
            'name at least one --profile <id> (`adfleet sync-all` syncs every profile)',
          );
        const results = await requestSyncs(
          db(),
          messenger,
          options.profile,
          { kind: 'operator', reason: options.reason },
          syncSettings(config),
        );
        const unknown = results.filter((result) => result.outcome === 'unknown-profile');
        const described = {
          enqueued: 'sync enqueued',
          'already-queued': 'a sync is already queued; it will start after this request',
          'follow-up': 'a sync is running; one follow-up sync will run after it',
          'unknown-profile': 'no such profile (`adfleet sync-all` refreshes the profile list)',
        } as const;
        const lines = results.map((result) => `--profile ${result.profileId}: ${described[result.outcome]}`);
        lines.push(`trace ${traceId}`);
        return { output: lines.join('\n'), exitCode: unknown.length > 0 ? 1 : 0 } satisfies CommandResult;
      }),
    );

  sync
    .command('status')
    .description(
      'Freshness per profile (stalest first), running syncs with progress, failing profiles with their last error',
    )
    .option('--profile <id>', 'only this profile (repeatable)', profileId)
    .option('--stale', 'only profiles past the freshness SLO; exits 1 when there are any (for monitors)')
    .option('--json', 'machine-readable')
    .action((options: { profile?: number[]; stale?: boolean; json?: boolean }) =>
      runCommand('sync status', async ({ config, db }) => {
        const sloSeconds = syncFreshnessSloSeconds(config);
        const summary = await freshnessSummary(db(), sloSeconds);
        const profiles = await profileFreshness(db(), sloSeconds, {
          ...(options.profile === undefined ? {} : { profileIds: options.profile }),
          staleOnly: options.stale === true,
        });
        const exitCode = options.stale === true && profiles.length > 0 ? 1 : 0;
        const sloHours = config.ADFLEET_SYNC_FRESHNESS_SLO_HOURS;
        const output =
          options.json === true
            ? JSON.stringify({ sloHours, summary, profiles }, null, 2)
            : statusText(summary, profiles, sloHours);
        return { output, exitCode };
      }),
    );

  sync
    .command('runs')
    .description(
      'Sync runs, newest first: trigger, outcome, counts per entity, pages, throttled time, error, trace',
    )
    .option('--profile <id>', 'only this profile (repeatable)', profileId)
    .option('--limit <n>', 'at most this many', positiveInt, 20)
    .option('--json', 'machine-readable')
    .action((options: { profile?: number[]; limit: number; json?: boolean }) =>
      runCommand('sync runs', async ({ db }) => {
        const runs = await listRuns(db(), {
          ...(options.profile === undefined ? {} : { profileIds: options.profile }),
          limit: options.limit,
        });
        if (options.json === true) return JSON.stringify(runs, null, 2);
        return runs.length === 0 ? 'no sync runs' : runs.map(runLine).join('\n');
      }),
    );
  return sync;
}
