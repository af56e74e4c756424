import type pg from 'pg';
import type { z } from 'zod';
import type { syncTriggerSchema } from '../../contract/events.ts';

/** The sync model's vocabulary: what a run is, why it ran, what it counts. */

export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

export const RunStatus = {
  Running: 'running',
  Succeeded: 'succeeded',
  Failed: 'failed',
  /** A stale run (its worker died) taken over by a later one, which resumed from its checkpoint. */
  Superseded: 'superseded',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** Why a sync ran (the SyncProfile message's trigger). */
export type SyncTrigger = z.infer<typeof syncTriggerSchema>;
/** A trigger a follow-up can fold: anything but another follow-up. */
export type DirectTrigger = Exclude<SyncTrigger, { kind: 'follow-up' }>;

export function describeTrigger(trigger: SyncTrigger): string {
  switch (trigger.kind) {
    case 'schedule':
      return trigger.reason ?? 'schedule';
    case 'bulk':
      return `bulk job ${trigger.jobId}`;
    case 'operator':
      return trigger.reason ?? 'operator';
    case 'follow-up':
      return `follow-up of ${trigger.folded.map(describeTrigger).join(', ')}`;
  }
}

/** Entity kinds in the order a sync pulls them: parents first, so every foreign key exists. */
export const ENTITY_KINDS = ['campaigns', 'adGroups', 'keywords'] as const;
export type EntityKind = (typeof ENTITY_KINDS)[number];

export interface EntityCounts {
  /** Returned by the API in this sync. */
  seen: number;
  /** New to us. */
  inserted: number;
  /** Known, with at least one field different (restored ones included). */
  changed: number;
  /** Known and marked removed, now returned again. */
  restored: number;
  /** Known and live, no longer returned by the API: marked removed. */
  removed: number;
}

export type RunCounts = Record<EntityKind, EntityCounts>;

export function emptyCounts(): RunCounts {
  const zero = (): EntityCounts => ({ seen: 0, inserted: 0, changed: 0, restored: 0, removed: 0 });
  return { campaigns: zero(), adGroups: zero(), keywords: zero() };
}

/** Counts read back from a run row, whatever it held (older rows, partial runs). */
export function countsFrom(value: unknown): RunCounts {
  const counts = emptyCounts();
  if (value === null || typeof value !== 'object') return counts;
  for (const kind of ENTITY_KINDS) {
    const stored = (value as Record<string, unknown>)[kind];
    if (stored !== null && typeof stored === 'object') Object.assign(counts[kind], stored);
  }
  return counts;
}

/** Timing settings of the sync model, from the config (contract/config.ts). */
export interface SyncSettings {
  /** A running sync whose heartbeat is older than this lost its worker and may be taken over. */
  readonly staleAfterMs: number;
  /** A checkpoint older than this is not resumed (the API's nextToken may have expired). */
  readonly resumeMaxAgeMs: number;
  /** A queued request older than this is taken as lost (its message never started a run). */
  readonly queuedExpiryMs: number;
  /** One message lists for at most this long, then hands the rest of the sync on. */
  readonly sliceMs: number;
}
