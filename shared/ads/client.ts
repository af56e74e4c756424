import { setTimeout as sleep } from 'node:timers/promises';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { type BackoffPolicy, backoffDelayMs } from '../backoff.ts';
import { AdsApiError, AdsAuthError, AdsRetryableError, AdsThrottledError } from './errors.ts';
import type { AccessTokenSource } from './lwa.ts';
import { type ItemResult, mapMultiStatus } from './multi-status.ts';
import { paginate } from './pagination.ts';
import type { AdsRateLimiter } from './rate-limit.ts';
import { parseRetryAfterMs } from './retry-after.ts';
import {
  type AdGroup,
  type Campaign,
  type CampaignUpdate,
  type Keyword,
  type KeywordUpdate,
  type ListFilter,
  MAX_ITEMS_PER_REQUEST,
  MediaType,
  type MultiStatusPart,
  type Profile,
} from './types.ts';

/**
 * The fleet's typed Amazon Ads API client. One call = one logical request, and the client
 * owns everything between the caller and the wire:
 *
 *  - budget: every attempt first takes a slot from the shared rate limiter (when given one);
 *  - auth: a cached LWA token; a 401 invalidates it and the call retries once with a fresh one;
 *  - 429: the limiter lowers the scope's shared rate and blocks it until Retry-After; the call
 *    waits and tries again, or, once waiting would pass `maxThrottleWaitMs`, throws
 *    AdsThrottledError so the message is deferred without touching its DLQ budget;
 *  - 5xx, timeouts, network errors: retried with capped, jittered backoff, then AdsRetryableError;
 *  - other 4xx: AdsApiError (fatal) with Amazon's code;
 *  - 207: mapped item by item (multi-status.ts).
 */

const tracer = trace.getTracer('adfleet.ads');

/** Runs `work` with tracing suppressed (and so do the timers it schedules). */
function quietly<T>(work: () => T): T {
  return context.with(suppressTracing(context.active()), work);
}

export interface AdsClientOptions {
  readonly baseUrl: string;
  readonly clientId: string;
  readonly tokens: AccessTokenSource;
  /** Shared budgets; without one the client does not limit itself (tests of the raw API). */
  readonly limiter?: AdsRateLimiter;
  /** Per attempt. */
  readonly timeoutMs?: number;
  /** Attempts for 5xx, timeouts and network errors (not 429s, which wait instead). */
  readonly maxAttempts?: number;
  /** Between retries of 5xx and timeouts (the fleet's one backoff, shared/backoff.ts). */
  readonly backoff?: BackoffPolicy;
  /** How long one call may wait for rate budget in total before deferring its message. */
  readonly maxThrottleWaitMs?: number;
}

export const ADS_CLIENT_DEFAULTS = {
  timeoutMs: 10_000,
  maxAttempts: 4,
  backoff: { baseMs: 250, capMs: 5_000 },
  maxThrottleWaitMs: 20_000,
} as const satisfies Partial<AdsClientOptions>;

/** What a call spent waiting for rate budget, for callers that account for it (sync runs). */
export interface RateObserver {
  /** After each wait in the shared rate limit (pacing, or a 429's Retry-After block). */
  waited?(ms: number): void;
  /** A 429 came back. */
  throttled?(retryAfterMs: number): void;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  readonly observer?: RateObserver;
}

export interface ListOptions extends CallOptions, ListFilter {
  /** Page size; Amazon's maximum differs per endpoint. */
  readonly maxResults?: number;
}

export interface PageListOptions extends ListOptions {
  /** Start after the page that handed out this token (a checkpoint); undefined: the first page. */
  readonly nextToken?: string;
}

/** One list page with the token for the page after it (undefined: it was the last). */
export interface ListPage<TItem> {
  readonly items: readonly TItem[];
  readonly nextToken: string | undefined;
  /** How many entities match the request in all, when the API says (v3 lists do). */
  readonly totalResults?: number;
}

/** The entity lists, by the field their v3 endpoint answers in. */
const LIST_ENDPOINTS = {
  campaigns: { path: '/sp/campaigns/list', mediaType: MediaType.campaign },
  adGroups: { path: '/sp/adGroups/list', mediaType: MediaType.adGroup },
  keywords: { path: '/sp/keywords/list', mediaType: MediaType.keyword },
} as const;
export type ListKind = keyof typeof LIST_ENDPOINTS;
interface ListItem {
  campaigns: Campaign;
  adGroups: AdGroup;
  keywords: Keyword;
}

interface RequestSpec {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly path: string;
  readonly profileId?: number;
  readonly mediaType?: string;
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  readonly observer?: RateObserver;
}

/** An abort the caller asked for (not our per-attempt timeout). */
function callerAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

type ResolvedOptions = AdsClientOptions &
  Required<Pick<AdsClientOptions, 'timeoutMs' | 'maxAttempts' | 'backoff' | 'maxThrottleWaitMs'>>;

export class AdsApiClient {
  private readonly options: ResolvedOptions;

  constructor(options: AdsClientOptions) {
    this.options = { ...ADS_CLIENT_DEFAULTS, ...options };
  }

  /**
   * One cheap authenticated call (the profile list): the circuit breakers' half-open probe
   * of the Ads API and of the app's credentials.
   */
  async probe(signal?: AbortSignal): Promise<void> {
    await this.listProfiles(signal === undefined ? {} : { signal });
  }

  async listProfiles(options: CallOptions = {}): Promise<Profile[]> {
    return (await this.request({ method: 'GET', path: '/v2/profiles', signal: options.signal })) as Profile[];
  }

  campaigns(profileId: number, options: ListOptions = {}): AsyncGenerator<Campaign, void, undefined> {
    return this.list<Campaign>(profileId, '/sp/campaigns/list', MediaType.campaign, 'campaigns', options);
  }

  adGroups(profileId: number, options: ListOptions = {}): AsyncGenerator<AdGroup, void, undefined> {
    return this.list<AdGroup>(profileId, '/sp/adGroups/list', MediaType.adGroup, 'adGroups', options);
  }

  keywords(profileId: number, options: ListOptions = {}): AsyncGenerator<Keyword, void, undefined> {
    return this.list<Keyword>(profileId, '/sp/keywords/list', MediaType.keyword, 'keywords', options);
  }

  /** Bid/state changes; one result per update, in order, each keeping its request index. */
  updateKeywords(
    profileId: number,
    updates: readonly KeywordUpdate[],
    options: CallOptions = {},
  ): Promise<ItemResult<KeywordUpdate>[]> {
    return this.update(
      profileId,
      '/sp/keywords',
      MediaType.keyword,
      'keywords',
      'keywordId',
      updates,
      options,
    );
  }

  updateCampaigns(
    profileId: number,
    updates: readonly CampaignUpdate[],
    options: CallOptions = {},
  ): Promise<ItemResult<CampaignUpdate>[]> {
    return this.update(
      profileId,
      '/sp/campaigns',
      MediaType.campaign,
      'campaigns',
      'campaignId',
      updates,
      options,
    );
  }

  /** One v3 bulk PUT: `{ [field]: updates }` in, a 207 multi-status mapped back onto the updates. */
  private async update<TUpdate>(
    profileId: number,
    path: string,
    mediaType: string,
    field: keyof typeof MAX_ITEMS_PER_REQUEST,
    idField: string,
    updates: readonly TUpdate[],
    options: CallOptions,
  ): Promise<ItemResult<TUpdate>[]> {
    checkBatchSize(updates.length, MAX_ITEMS_PER_REQUEST[field], field);
    const body = (await this.request({
      method: 'PUT',
      path,
      profileId,
      mediaType,
      body: { [field]: updates },
      signal: options.signal,
    })) as Partial<Record<typeof field, MultiStatusPart>>;
    return mapMultiStatus(updates, body[field], idField);
  }

  /**
   * Page by page from `nextToken` (a checkpoint) on, each page with the token after it, so
   * a caller can record where it got to and resume there.
   */
  async *pages<K extends ListKind>(
    kind: K,
    profileId: number,
    options: PageListOptions = {},
  ): AsyncGenerator<ListPage<ListItem[K]>, void, undefined> {
    const { signal, observer, nextToken: startToken, ...filter } = options;
    const { path, mediaType } = LIST_ENDPOINTS[kind];
    let started = false;
    let token = startToken;
    const seen = new Set<string>();
    while (!started || token !== undefined) {
      started = true;
      const body = (await this.request({
        method: 'POST',
        path,
        profileId,
        mediaType,
        body: { ...filter, ...(token === undefined ? {} : { nextToken: token }) },
        signal,
        observer,
      })) as Record<string, unknown>;
      const items = body[kind];
      const next = body.nextToken;
      token = typeof next === 'string' && next !== '' ? next : undefined;
      // A server that hands back a token it already gave would loop us forever.
      if (token !== undefined) {
        if (seen.has(token)) throw new Error('Ads API returned the same nextToken twice');
        seen.add(token);
      }
      const total = body.totalResults;
      yield {
        items: Array.isArray(items) ? (items as ListItem[K][]) : [],
        nextToken: token,
        ...(typeof total === 'number' && Number.isFinite(total) ? { totalResults: total } : {}),
      };
    }
  }

  private list<TItem>(
    profileId: number,
    path: string,
    mediaType: string,
    field: string,
    options: ListOptions,
  ): AsyncGenerator<TItem, void, undefined> {
    const { signal, observer, ...filter } = options;
    return paginate<TItem>(async (nextToken) => {
      const body = (await this.request({
        method: 'POST',
        path,
        profileId,
        mediaType,
        body: { ...filter, ...(nextToken === undefined ? {} : { nextToken }) },
        signal,
        observer,
      })) as Record<string, unknown>;
      const items = body[field];
      const next = body.nextToken;
      return {
        items: Array.isArray(items) ? (items as TItem[]) : [],
        nextToken: typeof next === 'string' && next !== '' ? next : undefined,
      };
    });
  }

  /**
   * One span for the wait in the shared rate limit, with what came of it; the limiter's own
   * Redis round trips (several per call) stay out of the trace, where they would outnumber
   * the Ads API calls they guard.
   */
  private waitForBudget(limiter: AdsRateLimiter, spec: RequestSpec, deadline: number): Promise<void> {
    return tracer.startActiveSpan('ads rate limit', async (span) => {
      const started = performance.now();
      try {
        const permit = await quietly(() =>
          limiter.acquire(spec.profileId, { signal: spec.signal, deadline }),
        );
        span.setAttribute('adfleet.ads.rate_per_second', permit.ratePerSecond);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        throw error;
      } finally {
        if (spec.profileId !== undefined) span.setAttribute('adfleet.ads.profile_id', spec.profileId);
        const waitedMs = performance.now() - started;
        span.setAttribute('adfleet.ads.waited_ms', Math.round(waitedMs));
        span.end();
        spec.observer?.waited?.(waitedMs);
      }
    });
  }

  private async request(spec: RequestSpec): Promise<unknown> {
    const { limiter, tokens, timeoutMs, maxAttempts, backoff } = this.options;
    const throttleDeadline = Date.now() + this.options.maxThrottleWaitMs;
    let failedAttempts = 0;
    let refreshedAfter401 = false;
    for (;;) {
      spec.signal?.throwIfAborted();
      if (limiter !== undefined) await this.waitForBudget(limiter, spec, throttleDeadline);
      const token = await tokens.accessToken(spec.signal);
      let response: Response;
      try {
        const timeout = AbortSignal.timeout(timeoutMs);
        response = await fetch(new URL(spec.path, this.options.baseUrl), {
          method: spec.method,
          headers: this.headers(token, spec),
          body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
          signal: spec.signal === undefined ? timeout : AbortSignal.any([spec.signal, timeout]),
        });
      } catch (error) {
        if (callerAborted(spec.signal)) throw error;
        failedAttempts += 1;
        const what =
          error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : 'failed (network)';
        if (failedAttempts >= maxAttempts) {
          throw new AdsRetryableError(
            undefined,
            `${spec.method} ${spec.path} ${what} ${failedAttempts} times`,
            {
              cause: error,
            },
          );
        }
        await sleep(backoffDelayMs(failedAttempts, backoff), undefined, { signal: spec.signal });
        continue;
      }

      if (response.status === 429) {
        await response.body?.cancel();
        const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'));
        spec.observer?.throttled?.(retryAfterMs);
        await quietly(() => limiter?.recordThrottle(spec.profileId, retryAfterMs));
        if (Date.now() + retryAfterMs > throttleDeadline)
          throw new AdsThrottledError(spec.profileId, retryAfterMs);
        // With a limiter, acquire() waits out the scope's block; without one, wait here.
        if (limiter === undefined) {
          await sleep(retryAfterMs, undefined, { signal: spec.signal });
          spec.observer?.waited?.(retryAfterMs);
        }
        continue;
      }
      // Anything but a 429, 401 or 5xx is the API answering within its limit: that, and only
      // that, feeds the limiter's estimate of the profile's capacity.
      if (response.status !== 401 && response.status < 500)
        quietly(() => limiter?.recordSuccess(spec.profileId));

      if (response.status === 401 && !refreshedAfter401) {
        await response.body?.cancel();
        tokens.invalidate(token);
        refreshedAfter401 = true;
        continue;
      }
      if (response.status >= 500) {
        await response.body?.cancel();
        failedAttempts += 1;
        if (failedAttempts >= maxAttempts) {
          throw new AdsRetryableError(
            response.status,
            `${spec.method} ${spec.path} failed with ${response.status} ${failedAttempts} times`,
          );
        }
        await sleep(backoffDelayMs(failedAttempts, backoff), undefined, { signal: spec.signal });
        continue;
      }
      const text = await response.text();
      const body = text === '' ? undefined : (JSON.parse(text) as unknown);
      if (response.ok) return body;
      const { code, details } = (body ?? {}) as { code?: string; details?: string };
      if (response.status === 401 || response.status === 403) {
        // A fresh token refused, or the app not allowed: the credentials, not the message.
        throw new AdsAuthError(
          `${spec.method} ${spec.path} refused with ${response.status}${code === undefined ? '' : ` ${code}`}`,
          { status: response.status },
        );
      }
      throw new AdsApiError(
        response.status,
        code,
        `${spec.method} ${spec.path} failed with ${response.status}${code === undefined ? '' : ` ${code}`}${details === undefined ? '' : `: ${details}`}`,
      );
    }
  }

  private headers(token: string, spec: RequestSpec): Record<string, string> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'amazon-advertising-api-clientid': this.options.clientId,
      accept: spec.mediaType ?? 'application/json',
    };
    if (spec.profileId !== undefined) headers['amazon-advertising-api-scope'] = String(spec.profileId);
    if (spec.body !== undefined) headers['content-type'] = spec.mediaType ?? 'application/json';
    return headers;
  }
}

function checkBatchSize(count: number, max: number, what: string): void {
  // Splitting into Ads-sized batches is the caller's job (it decides what a message holds);
  // sending a batch Amazon will reject whole is a bug, not a transient failure.
  if (count === 0 || count > max) {
    throw new AdsApiError(400, 'INVALID_ARGUMENT', `${what} batch must hold 1 to ${max} items, got ${count}`);
  }
}
