import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bulkJobEstimate,
  listPagesOf,
  type MeasuredCpu,
  modelInputs,
  PLATFORM,
  PROFILE_MIX,
  profileSyncEstimate,
  RATES,
  SETTINGS,
} from '../../contract/capacity.ts';
import { topology } from '../../contract/topology.ts';
import { workers } from '../../infra/workers.ts';

/**
 * The CDK's scaling bounds against the capacity model: the per-unit costs are the ones the
 * last `npm run bench -- capacity` measured and wrote into docs/capacity.md, the arithmetic
 * is the model's own (contract/capacity.ts), the bounds are infra/workers.ts's.
 */
function recordedMeasurements(): MeasuredCpu {
  const document = readFileSync(new URL('../../docs/capacity.md', import.meta.url), 'utf8');
  const match = /<!-- capacity-measurements (\{.*?\}) -->/.exec(document);
  if (match?.[1] === undefined)
    throw new Error('docs/capacity.md has no measurements: run `npm run bench -- capacity`');
  return JSON.parse(match[1]) as MeasuredCpu;
}

describe('capacity model against the deployed scaling bounds', () => {
  const recorded = recordedMeasurements();
  const measured = modelInputs(recorded);

  it('reads positive per-unit costs from the recorded run', () => {
    for (const value of Object.values(recorded)) expect(value).toBeGreaterThan(0);
  });

  it('counts list pages per sync from the page size, one call for an empty list', () => {
    const shape = { name: 't', share: 1, campaigns: 0, adGroupsPerCampaign: 3, keywordsPerAdGroup: 10 };
    expect(listPagesOf(shape, 100)).toBe(3);
    expect(listPagesOf({ ...shape, campaigns: 101 }, 100)).toBe(2 + 4 + 31);
  });

  it('profile-sync may scale to what 20,000 profiles need to sync within the queue objective', () => {
    const bounds = workers['profile-sync'];
    const estimate = profileSyncEstimate(20_000, PROFILE_MIX, RATES, SETTINGS, measured, PLATFORM, bounds);
    expect(estimate.objectiveSeconds).toBe(topology.queues['profile-sync'].maxMessageAgeSeconds);
    expect(bounds.maxTasks).toBeGreaterThanOrEqual(estimate.tasksForObjective ?? Number.POSITIVE_INFINITY);
    expect(estimate.wallSecondsAtMaxTasks).toBeLessThanOrEqual(estimate.objectiveSeconds ?? 0);
    // Never faster than the rate limits allow, however many tasks.
    expect(estimate.wallSecondsAtMaxTasks).toBeGreaterThanOrEqual(estimate.floorSeconds);
  });

  it('bulk-item may scale to what a 1,000,000-item job needs', () => {
    const bounds = workers['bulk-item'];
    const estimate = bulkJobEstimate(1_000_000, RATES, SETTINGS, measured, PLATFORM, bounds);
    expect(bounds.maxTasks).toBeGreaterThanOrEqual(estimate.tasksNeeded);
  });

  it('drains 20,000 profiles faster with more tasks, until the floor (or the largest profile) holds it', () => {
    const bounds = workers['profile-sync'];
    const at = (maxTasks: number) =>
      profileSyncEstimate(20_000, PROFILE_MIX, RATES, SETTINGS, measured, PLATFORM, { ...bounds, maxTasks })
        .wallSecondsAtMaxTasks;
    const { tasksNeeded, floorSeconds } = profileSyncEstimate(
      20_000,
      PROFILE_MIX,
      RATES,
      SETTINGS,
      measured,
      PLATFORM,
      bounds,
    );
    expect(at(1)).toBeGreaterThan(at(tasksNeeded));
    expect(at(tasksNeeded)).toBeGreaterThanOrEqual(floorSeconds);
    expect(at(tasksNeeded * 4)).toBeCloseTo(at(tasksNeeded), 0);
  });
});
