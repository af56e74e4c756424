import { describeError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';

/**
 * The chains a process runs, apart from the messages that started them. sqs-consumer hands
 * a poller's received batch over in lockstep (its next receive waits for the slowest
 * message of the batch), so a chain run inside its message's handler held up to nine other
 * handler slots' next messages for its whole budget: the fleet applied in waves, one per
 * chain budget. A chain's items are in the database (due, leased), not in its message, so
 * the message is acknowledged as soon as its own batch is applied and the chain goes on
 * here; a process that dies mid-chain loses nothing (leases are recovered, the deferred
 * messages still carry the items). At most `max` chains run at once per process, shared
 * out evenly among profiles (see `start`); past that, a profile's deferred messages carry
 * it. `stop` (teardown, after the drain) aborts them: a chain's claim gives its items back
 * and hands them to a message.
 */

/** At a stop, chains' calls in flight get this long to finish before they are cut off. */
const CHAIN_STOP_GRACE_MS = 12_000;

interface RunningChain {
  readonly profileId: number;
  /** Aborted when the chain gives its slot to another profile's (ChainRunner.start). */
  readonly yielding: AbortController;
}

export class ChainRunner {
  readonly #running = new Set<Promise<void>>();
  /** Chains not yielding, by profile. */
  readonly #byProfile = new Map<number, Set<RunningChain>>();
  readonly #stopping = new AbortController();
  readonly #cutoff = new AbortController();
  readonly #max: number;
  readonly #logger: Logger;

  constructor(max: number, logger: Logger) {
    this.#max = max;
    this.#logger = logger;
  }

  /** Aborted CHAIN_STOP_GRACE_MS after a stop: chains' calls still in flight are cut off. */
  get callSignal(): AbortSignal {
    return this.#cutoff.signal;
  }

  /**
   * Starts a chain for the profile; `chain` gets the signal that ends it between calls (the
   * process stopping, or the chain yielding its slot). False when the process is stopping,
   * or runs `max` chains and none of its profiles has two or more chains than this one
   * would: the slots are shared out evenly among profiles, so a profile that lost its
   * chains (their worker died) gets one back from a profile running several, instead of
   * waiting for a free slot behind every other busy profile (in a bench run the largest
   * profile stood still 8.5 to 21.8 s after a kill, its batches handed from one full
   * process to the next). A yielding chain ends after its call in flight; its profile's
   * items stay due for its other chains.
   *
   * `lostChains`: the profile is getting back chains a dead worker held (the sweeper's
   * resume). It then takes a slot from any profile running more chains here than it does,
   * not only two more: in a bench run the largest profile, left with one of its four chains
   * after a kill, found every process full of one or two chains a profile and ran on that
   * one for 20 s at a third of its rate.
   */
  start(
    jobId: string,
    profileId: number,
    chain: (signal: AbortSignal) => Promise<void>,
    { lostChains = false }: { lostChains?: boolean } = {},
  ): boolean {
    if (this.#stopping.signal.aborted) return false;
    const active = [...this.#byProfile.values()].reduce((sum, chains) => sum + chains.size, 0);
    if (active >= this.#max) {
      const mine = this.#byProfile.get(profileId)?.size ?? 0;
      let richest: Set<RunningChain> | undefined;
      for (const chains of this.#byProfile.values()) if (chains.size > (richest?.size ?? 0)) richest = chains;
      const victim =
        richest === undefined || richest.size < mine + (lostChains ? 1 : 2)
          ? undefined
          : richest.values().next().value;
      if (victim === undefined) return false;
      this.#forget(victim);
      victim.yielding.abort(new Error('chain slot given to another profile'));
    }
    const entry: RunningChain = { profileId, yielding: new AbortController() };
    const signal = AbortSignal.any([this.#stopping.signal, entry.yielding.signal]);
    const running: Promise<void> = chain(signal)
      .catch((error: unknown) => {
        if (!this.#stopping.signal.aborted)
          this.#logger.warn({ jobId, profileId, err: describeError(error) }, 'bulk chain stopped');
      })
      .finally(() => {
        this.#running.delete(running);
        this.#forget(entry);
      });
    this.#running.add(running);
    const chains = this.#byProfile.get(profileId) ?? new Set();
    chains.add(entry);
    this.#byProfile.set(profileId, chains);
    return true;
  }

  #forget(entry: RunningChain): void {
    const chains = this.#byProfile.get(entry.profileId);
    chains?.delete(entry);
    if (chains?.size === 0) this.#byProfile.delete(entry.profileId);
  }

  async stop(): Promise<void> {
    this.#stopping.abort(new Error('worker is stopping'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, CHAIN_STOP_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    this.#cutoff.abort(new Error('worker is stopping'));
    await Promise.allSettled([...this.#running]);
  }
}
