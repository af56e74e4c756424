import { setTimeout as sleep } from 'node:timers/promises';
import { Hono } from 'hono';
import { createMiddleware } from 'hono/factory';
import { type AmazonItemError, MediaType } from '../../shared/ads/types.ts';
import type { SandboxState } from './admin.ts';
import type { ProfileData } from './data.ts';
import { HttpError, jsonBody, jsonResponse, limitBody } from './http.ts';
import { SANDBOX_LIMITS } from './limits.ts';
import { listAdGroups, listCampaigns, listKeywords, type PageRequest } from './listing.ts';
import { checkCampaignUpdate, checkKeywordUpdate } from './validation.ts';

/**
 * The Amazon side: the LWA token grant and the API routes the fleet calls. Each API route
 * runs the same pipeline, in the order a real gateway refuses in: authenticate (401) →
 * client id and scope (400/401) → media types (415/406) → body (413/400) → hidden capacity
 * (429 + Retry-After) → injected faults (5xx) → injected latency → the handler.
 */

interface RouteSpec {
  /** Needs Amazon-Advertising-API-Scope; charged to the profile's bucket as well as the client's. */
  readonly scoped: boolean;
  /** Vendor media type the request body and Accept must use; undefined for plain JSON routes. */
  readonly mediaType?: string;
}

type ApiEnv = {
  Variables: { clientId: string; profile: ProfileData | undefined; body: unknown; slowed: boolean };
};

/** `unanswered`: the request was held (FaultSpec.slowRate) until its caller had given up. */
type Handle = (profile: ProfileData, body: unknown, unanswered: boolean) => { status: number; body: unknown };

/** How long a request picked by FaultSpec.slowRate is held unless `slowMs` says otherwise. */
const DEFAULT_SLOW_MS = 15_000;

function mediaTypeOf(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export function apiRoutes(state: SandboxState): Hono<ApiEnv> {
  const { data, capacity, tokens, stats } = state;
  const app = new Hono<ApiEnv>();

  app.post('/auth/o2/token', limitBody, async (c) => {
    const result = tokens.grant(new URLSearchParams(await c.req.text()), Date.now());
    if (result.ok) stats.lwaGrants += 1;
    return jsonResponse(result.ok ? 200 : result.status, result.body);
  });

  /** Who is calling, for which profile, in which media type: refused before the body is read. */
  const identify = (spec: RouteSpec) =>
    createMiddleware<ApiEnv>(async (c, next) => {
      if (!tokens.isValid(c.req.header('authorization'), Date.now())) {
        stats.unauthorized += 1;
        throw new HttpError(401, 'UNAUTHORIZED', 'Not authorized to access this advertiser');
      }
      const clientId = c.req.header('amazon-advertising-api-clientid');
      if (clientId === undefined || clientId !== tokens.clientId()) {
        throw new HttpError(
          400,
          'MISSING_CLIENT_ID',
          'Amazon-Advertising-API-ClientId header is missing or unknown',
        );
      }
      let profile: ProfileData | undefined;
      if (spec.scoped) {
        const scope = c.req.header('amazon-advertising-api-scope');
        profile = scope !== undefined && /^\d+$/.test(scope) ? data.profileData(Number(scope)) : undefined;
        if (profile === undefined) {
          throw new HttpError(
            scope !== undefined ? 401 : 400,
            'INVALID_SCOPE',
            'Amazon-Advertising-API-Scope header is missing or not a profile of this client',
          );
        }
      }
      if (spec.mediaType !== undefined) {
        const expected = spec.mediaType.toLowerCase();
        if (mediaTypeOf(c.req.header('content-type')) !== expected) {
          throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${spec.mediaType}`);
        }
        const accept = c.req.header('accept')?.toLowerCase();
        if (accept !== undefined && !accept.includes(expected) && !accept.includes('*/*')) {
          throw new HttpError(406, 'NOT_ACCEPTABLE', `Accept must include ${spec.mediaType}`);
        }
      }
      c.set('clientId', clientId);
      c.set('profile', profile);
      await next();
    });

  /** The body, then the capacity and the faults a well-formed request meets. */
  const admit = createMiddleware<ApiEnv>(async (c, next) => {
    // Metered by its arrival, as a gateway meters it: the middlewares before this one run in
    // the same tick as the server's `request` event, and reading the body is the first wait.
    // Stamped after the body (as before), the time carried the sandbox's own event-loop
    // delays (in a bulk benchmark run 1 to 66 ms, p99 62 ms), which a caller spacing its
    // calls exactly cannot keep clear of.
    const arrivedAt = Date.now();
    c.set('body', await jsonBody(c));
    const clientId = c.get('clientId');
    const profileId = c.get('profile')?.profile.profileId;
    const admission = capacity.admit(clientId, profileId, arrivedAt);
    if (!admission.admitted) {
      stats.record(clientId, profileId, 'throttled', arrivedAt);
      // Retry-After in whole seconds, as HTTP defines it (and Amazon sends it).
      const retryAfterSeconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
      throw new HttpError(429, 'TOO_MANY_REQUESTS', 'Request was throttled', {
        'retry-after': String(retryAfterSeconds),
      });
    }
    const { faults } = state;
    if (faults.remaining > 0 || (faults.errorRate !== undefined && Math.random() < faults.errorRate)) {
      faults.remaining = Math.max(0, faults.remaining - 1);
      stats.record(clientId, profileId, 'failed', arrivedAt);
      throw new HttpError(faults.status ?? 503, 'SERVER_IS_BUSY', 'Injected failure');
    }
    stats.record(clientId, profileId, 'ok', arrivedAt);
    if (faults.latencyMs !== undefined && faults.latencyMs > 0) await sleep(faults.latencyMs);
    const slowed = faults.slowRate !== undefined && Math.random() < faults.slowRate;
    c.set('slowed', slowed);
    if (slowed) await sleep(faults.slowMs ?? DEFAULT_SLOW_MS);
    await next();
  });

  const route = (method: 'GET' | 'POST' | 'PUT', path: string, spec: RouteSpec, handle: Handle) =>
    app.on(method, path, identify(spec), limitBody, admit, (c) => {
      const unanswered = c.get('slowed') && c.req.raw.signal.aborted;
      const result = handle(c.get('profile') as ProfileData, c.get('body'), unanswered);
      return jsonResponse(result.status, result.body, spec.mediaType ?? 'application/json');
    });

  const pageRequest = (body: unknown): PageRequest => {
    const { maxResults } = (body ?? {}) as { maxResults?: unknown };
    if (
      maxResults !== undefined &&
      (typeof maxResults !== 'number' ||
        !Number.isInteger(maxResults) ||
        maxResults < 1 ||
        maxResults > state.maxPageSize)
    ) {
      throw new HttpError(
        400,
        'INVALID_ARGUMENT',
        `maxResults must be an integer from 1 to ${state.maxPageSize}`,
      );
    }
    return body as PageRequest;
  };
  const listed =
    (list: (profile: ProfileData, request: PageRequest) => unknown): Handle =>
    (profile, body) => {
      try {
        return { status: 200, body: list(profile, pageRequest(body)) };
      } catch (error) {
        if (error instanceof RangeError) throw new HttpError(400, 'INVALID_ARGUMENT', error.message);
        throw error;
      }
    };

  /**
   * A v3 bulk update: each item is checked (duplicates within the request included), valid
   * ones applied and recorded, and the 207 multi-status names every item by its index.
   */
  function bulkUpdate<TCheck extends { readonly ok: true }>(
    field: 'keywords' | 'campaigns',
    idField: string,
    check: (
      profile: ProfileData,
      item: unknown,
      seen: Set<string>,
    ) => TCheck | { readonly ok: false; readonly error: AmazonItemError },
    apply: (valid: TCheck) => string,
  ): Handle {
    return (profile, body, unanswered) => {
      const seen = new Set<string>();
      const success: unknown[] = [];
      const error: unknown[] = [];
      itemsOf(body, field, SANDBOX_LIMITS.maxItemsPerUpdate).forEach((item, index) => {
        const result = check(profile, item, seen);
        if (!result.ok) {
          error.push({ index, errors: [result.error] });
          return;
        }
        const id = apply(result as TCheck);
        stats.recordMutation(field, id, unanswered);
        success.push({ index, [idField]: id });
      });
      return { status: 207, body: { [field]: { success, error } } };
    };
  }

  route('GET', '/v2/profiles', { scoped: false }, () => ({ status: 200, body: data.profiles }));
  route('POST', '/sp/campaigns/list', { scoped: true, mediaType: MediaType.campaign }, listed(listCampaigns));
  route('POST', '/sp/adGroups/list', { scoped: true, mediaType: MediaType.adGroup }, listed(listAdGroups));
  route('POST', '/sp/keywords/list', { scoped: true, mediaType: MediaType.keyword }, listed(listKeywords));
  route(
    'PUT',
    '/sp/keywords',
    { scoped: true, mediaType: MediaType.keyword },
    bulkUpdate('keywords', 'keywordId', checkKeywordUpdate, (check) => {
      if (check.bid !== undefined) check.keyword.bid = check.bid;
      if (check.state !== undefined) check.keyword.state = check.state as 'ENABLED' | 'PAUSED';
      return check.keyword.keywordId;
    }),
  );
  route(
    'PUT',
    '/sp/campaigns',
    { scoped: true, mediaType: MediaType.campaign },
    bulkUpdate('campaigns', 'campaignId', checkCampaignUpdate, (check) => {
      if (check.budget !== undefined) check.campaign.budget = { budget: check.budget, budgetType: 'DAILY' };
      if (check.state !== undefined) check.campaign.state = check.state as 'ENABLED' | 'PAUSED';
      return check.campaign.campaignId;
    }),
  );
  return app;
}

function itemsOf(body: unknown, field: string, max: number): unknown[] {
  const items = (body as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(items) || items.length === 0) {
    throw new HttpError(400, 'INVALID_ARGUMENT', `${field} must be a non-empty array`);
  }
  if (items.length > max) {
    throw new HttpError(400, 'INVALID_ARGUMENT', `at most ${max} ${field} per request, got ${items.length}`);
  }
  return items;
}
