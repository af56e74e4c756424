import type { ClaimedItem, ItemOutcome } from '../../domain/bulk/apply.ts';
import { ItemStatus } from '../../domain/bulk/status.ts';
import { NO_ANSWER } from '../../domain/bulk/verify.ts';
import { AdsApiError, AdsRetryableError } from '../../shared/ads/errors.ts';
import type { ItemResult } from '../../shared/ads/multi-status.ts';
import { type BackoffPolicy, backoffDelayMs } from '../../shared/backoff.ts';
import { describeError } from '../../shared/errors.ts';

/**
 * What bulk-item makes of Amazon's answer, item by item.
 *
 * A 207 (mapped by `index` in shared/ads/multi-status.ts):
 *   success entry                          → SUCCEEDED, the entry kept as the response;
 *   error entry Amazon calls its own fault (internalServerError, throttlingError, …), or
 *   no entry at all for the item           → RETRY, attempts + 1 (FAILED past the maximum);
 *   any other error entry                  → FAILED with Amazon's errorType and message.
 * The whole call failing:
 *   4xx that is not a 429 (AdsApiError)    → every item FAILED with Amazon's code: the
 *                                            request as such is refused, retrying repeats it;
 *   5xx, timeout, network, anything else   → every item RETRY, attempts + 1 (then FAILED).
 * Rate limiting (429 past the client's wait), a stopping worker, refused credentials and
 * an Ads API outage (a whole call answered 5xx or timed out) are not the items' fault: the
 * worker releases them without counting an attempt (worker.ts). Only a batch message
 * released BULK_OUTAGE_RELEASES_PER_ATTEMPT times for an outage comes here with its 5xx,
 * so a batch Amazon keeps failing alone still ends FAILED.
 *
 * Retry delays are capped, jittered exponential backoff (shared/backoff.ts); items with the
 * same attempt count share one delay so that they travel in one message.
 */

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly backoff: BackoffPolicy;
}

export function retryBackoff(baseMs: number): BackoffPolicy {
  return { baseMs, capMs: 5 * 60_000, minMs: 1_000 };
}

class RetryDelays {
  private readonly byAttempts = new Map<number, number>();
  private readonly policy: RetryPolicy;
  constructor(policy: RetryPolicy) {
    this.policy = policy;
  }
  of(attempts: number): number {
    let delay = this.byAttempts.get(attempts);
    if (delay === undefined) {
      delay = backoffDelayMs(attempts, this.policy.backoff);
      this.byAttempts.set(attempts, delay);
    }
    return delay;
  }
}

function retryOrFail(
  item: ClaimedItem,
  code: string,
  message: string,
  response: unknown,
  policy: RetryPolicy,
  delays: RetryDelays,
): ItemOutcome {
  const attempts = item.attempts + 1;
  if (attempts >= policy.maxAttempts) {
    return {
      id: item.id,
      status: ItemStatus.Failed,
      attempts,
      response,
      errorCode: code,
      errorMessage: `${message} (gave up after ${attempts} attempts)`,
    };
  }
  return {
    id: item.id,
    status: ItemStatus.Retry,
    attempts,
    response,
    errorCode: code,
    errorMessage: message,
    retryInMs: delays.of(attempts),
  };
}

export function outcomesOfResults(
  items: readonly ClaimedItem[],
  results: readonly ItemResult<unknown>[],
  policy: RetryPolicy,
): ItemOutcome[] {
  const delays = new RetryDelays(policy);
  return items.map((item, index) => {
    const result = results[index];
    if (result === undefined) {
      return retryOrFail(
        item,
        'missingResultError',
        'Amazon returned no result for this item',
        null,
        policy,
        delays,
      );
    }
    if (result.ok) {
      return {
        id: item.id,
        status: ItemStatus.Succeeded,
        attempts: item.attempts + 1,
        response: result.response,
      };
    }
    if (result.retryable) {
      return retryOrFail(item, result.code, result.message, result.errors, policy, delays);
    }
    return {
      id: item.id,
      status: ItemStatus.Failed,
      attempts: item.attempts + 1,
      response: result.errors,
      errorCode: result.code,
      errorMessage: result.message,
    };
  });
}

export function outcomesOfCallFailure(
  items: readonly ClaimedItem[],
  error: unknown,
  policy: RetryPolicy,
): ItemOutcome[] {
  if (error instanceof AdsApiError) {
    return items.map((item) => ({
      id: item.id,
      status: ItemStatus.Failed,
      attempts: item.attempts + 1,
      errorCode: error.code ?? `HTTP_${error.status}`,
      errorMessage: error.message,
    }));
  }
  const code =
    error instanceof AdsRetryableError
      ? error.status === undefined
        ? NO_ANSWER
        : `HTTP_${error.status}`
      : error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
        ? 'TIMEOUT'
        : 'CALL_FAILED';
  const delays = new RetryDelays(policy);
  return items.map((item) => retryOrFail(item, code, describeError(error), null, policy, delays));
}
