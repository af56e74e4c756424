/**
 * A counting semaphore whose waiters can be turned away. Hand-written because the drain
 * needs exactly that last part — messages waiting for a handler slot must be released
 * back to SQS, not started — which p-limit and friends do not offer (they only clear).
 */
export class Semaphore {
  #available: number;
  readonly #waiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];

  constructor(permits: number) {
    if (!Number.isInteger(permits) || permits < 1)
      throw new RangeError(`permits must be a positive integer, not ${permits}`);
    this.#available = permits;
  }

  acquire(): Promise<void> {
    if (this.#available > 0) {
      this.#available -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next === undefined) this.#available += 1;
    else next.resolve();
  }

  /** Fails every pending acquire(); permits already held are unaffected. */
  rejectWaiters(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new Error('semaphore closed'));
  }
}
