import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/logging.ts';
import { ChainRunner } from '../../../workers/bulk-item/chains.ts';

const logger = createLogger({ name: 'test', level: 'silent' });

/** A chain that runs until its signal ends it, recording that it did. */
function chainUntilEnded(ended: number[], profileId: number) {
  return (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => {
        ended.push(profileId);
        resolve();
      });
    });
}

/** The chain slots' bookkeeping (pure logic: promises and signals, no I/O). */
describe('ChainRunner', () => {
  it('shares a full process out evenly: a profile with no chain takes a slot from the one with most', async () => {
    const runner = new ChainRunner(4, logger);
    const ended: number[] = [];
    // Profile 1 runs three chains, profile 2 one: the process is full.
    for (const profileId of [1, 1, 1, 2])
      expect(runner.start('job', profileId, chainUntilEnded(ended, profileId))).toBe(true);
    // Profile 3 has none: one of profile 1's yields its slot.
    expect(runner.start('job', 3, chainUntilEnded(ended, 3))).toBe(true);
    await sleep(0);
    expect(ended).toEqual([1]);
    // Now 1, 1, 2, 3: a fourth profile would leave profile 1 with one, as even as it gets.
    expect(runner.start('job', 4, chainUntilEnded(ended, 4))).toBe(true);
    await sleep(0);
    expect(ended).toEqual([1, 1]);
    // 1, 2, 3, 4, one each: nobody has two more than a newcomer, so the newcomer waits.
    expect(runner.start('job', 5, chainUntilEnded(ended, 5))).toBe(false);
    // Nor does a profile that already has a chain get a second by taking another's only one.
    expect(runner.start('job', 2, chainUntilEnded(ended, 2))).toBe(false);
    await runner.stop();
    expect(ended.sort()).toEqual([1, 1, 1, 2, 3, 4]);
  });

  it('gives a profile getting back chains a dead worker held a slot from any profile with more here', async () => {
    const runner = new ChainRunner(3, logger);
    const ended: number[] = [];
    for (const profileId of [1, 2, 3])
      expect(runner.start('job', profileId, chainUntilEnded(ended, profileId))).toBe(true);
    // One chain each: a newcomer waits, unless it is resuming chains it lost.
    expect(runner.start('job', 4, chainUntilEnded(ended, 4))).toBe(false);
    expect(runner.start('job', 4, chainUntilEnded(ended, 4), { lostChains: true })).toBe(true);
    await sleep(0);
    expect(ended).toEqual([1]);
    // It now runs one, as do 2 and 3: a second resumed chain finds nobody with more.
    expect(runner.start('job', 4, chainUntilEnded(ended, 4), { lostChains: true })).toBe(false);
    await runner.stop();
    expect(ended.sort()).toEqual([1, 2, 3, 4]);
  });

  it('frees a slot when a chain ends by itself', async () => {
    const runner = new ChainRunner(1, logger);
    let finish: () => void = () => {};
    expect(runner.start('job', 1, () => new Promise<void>((resolve) => (finish = resolve)))).toBe(true);
    expect(runner.start('job', 2, async () => {})).toBe(false);
    finish();
    await sleep(0);
    expect(runner.start('job', 2, async () => {})).toBe(true);
    await runner.stop();
  });
});
