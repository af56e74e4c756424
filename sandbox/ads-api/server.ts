import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import { type AmazonItemError, MediaType } from '../../shared/ads/types.ts';
import {
  capacityBody,
  clientCapacityBody,
  credentialsBody,
  describeIssues,
  entityIdsBody,
  entityKind,
  entityUpdatesBody,
  faultsBody,
  profileBody,
} from './admin-bodies.ts';
import { AccessTokens, type LwaCredentials } from './auth.ts';
import { type BucketSpec, CapacityModel } from './capacity.ts';
import {
  type DataSizes,
  DEFAULT_SIZES,
  type EntityKind,
  type ProfileData,
  type ProfileSizes,
  SeededAdsData,
} from './data.ts';
import {
  applyChanges,
  type EntityChange,
  type EntityView,
  entityView,
  InapplicableChangeError,
  setRemoved,
  UnknownEntityError,
} from './entities.ts';
import { listAdGroups, listCampaigns, listKeywords, type PageRequest } from './listing.ts';
import { type MutationCounts, type SandboxStats, StatsRecorder } from './stats.ts';
import { checkCampaignUpdate, checkKeywordUpdate } from './validation.ts';

/**
 * The Amazon Ads API sandbox: an HTTP server that behaves like the parts of Amazon's service
 * the fleet uses (see DESIGN.md, "Amazon Ads API"). Plain node:http because the sandbox has a
 * dozen fixed routes and must control every status code and header byte; a framework would
 * add nothing but a dependency.
 *
 * Request pipeline for an API route: authenticate (401) → required headers and media types
 * (400/415) → hidden capacity (429 + Retry-After) → injected faults (5xx) → injected latency
 * → the handler. Admin routes under /_sandbox/ skip all of that; they are the test's view.
 */

export interface FaultSpec {
  /** The next N API requests (after admission) fail with `status`. */
  readonly failNext?: number;
  /** Every API request fails with this probability (0..1). */
  readonly errorRate?: number;
  /** Status of injected failures; 503 unless set. */
  readonly status?: number;
  /** Extra delay before every API response. */
  readonly latencyMs?: number;
}

export interface SandboxOptions {
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly host: string;
  readonly seed: number;
  readonly sizes: DataSizes;
  readonly credentials: LwaCredentials;
  readonly tokenTtlSeconds: number;
  readonly profileCapacity: BucketSpec;
  readonly clientCapacity: BucketSpec;
  /** Largest `maxResults` a list call accepts. */
  readonly maxPageSize: number;
}

export const SANDBOX_DEFAULTS = {
  port: 0,
  host: '127.0.0.1',
  seed: 42,
  sizes: DEFAULT_SIZES,
  // The same defaults as contract/config.ts, so a fleet with no settings talks to a fresh sandbox.
  credentials: {
    clientId: 'adfleet-local',
    clientSecret: 'adfleet-local-secret',
    refreshToken: 'adfleet-local-refresh',
  },
  tokenTtlSeconds: 3_600,
  profileCapacity: { ratePerSecond: 10, burst: 10 },
  clientCapacity: { ratePerSecond: 2_000, burst: 2_000 },
  maxPageSize: 1_000,
} as const satisfies SandboxOptions;

/** Limits Amazon enforces on every request, whatever the capacity. */
export const SANDBOX_LIMITS = {
  /**
   * Items per call of the SP v3 bulk updates (`PUT /sp/keywords`, `PUT /sp/campaigns`): the
   * `keywords` and `campaigns` arrays of Amazon's SponsoredProducts v3 OpenAPI document carry
   * `maxItems: 1000` (as in the request models generated from it). A larger request is refused
   * whole with 400 before any item is looked at.
   */
  maxItemsPerUpdate: 1_000,
} as const;

/** What a test (in-process) or the admin HTTP routes (out of process) can do to the sandbox. */
export interface SandboxAdmin {
  stats(): SandboxStats;
  mutations(): MutationCounts;
  profileIds(): number[];
  /** Without `profileId`: the default for every profile, existing buckets included. */
  setProfileCapacity(spec: BucketSpec, profileId?: number): void;
  profileCapacity(profileId: number): BucketSpec;
  setClientCapacity(spec: BucketSpec): void;
  injectFaults(spec: FaultSpec): void;
  expireTokens(): void;
  /**
   * While on, the LWA grant answers 400 `invalid_grant` and API calls with any token answer
   * 401, as when an advertiser revokes the app. Off again, unexpired tokens work again.
   */
  refuseCredentials(refuse: boolean): void;
  /** The entity as the API would return it now; undefined if unknown or removed. */
  entity<K extends EntityKind>(kind: K, id: number): EntityView[K] | undefined;
  /** As if deleted at Amazon: lists skip them, updates answer ENTITY_NOT_FOUND. Unknown ids throw. */
  removeEntities(kind: EntityKind, ids: readonly number[]): void;
  /** Undoes `removeEntities`. */
  restoreEntities(kind: EntityKind, ids: readonly number[]): void;
  /** Edits made outside the fleet (not counted as mutations); all or none are applied. */
  updateEntities(kind: EntityKind, changes: readonly EntityChange[]): void;
  /** A new profile of the given shape (entities generated on first use); returns its id. */
  addProfile(sizes: ProfileSizes & { readonly countryCode?: string }): number;
  /** Counters, faults and credential refusal back to normal; data and capacity stay as they are. */
  reset(): void;
}

export interface AdsSandbox {
  readonly url: string;
  readonly admin: SandboxAdmin;
  close(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, details: string, headers: Record<string, string> = {}) {
    super(details);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'PAYLOAD_TOO_LARGE', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'MALFORMED_REQUEST', 'request body is not valid JSON');
  }
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  contentType = 'application/json',
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

function mediaTypeOf(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

interface ApiContext {
  readonly clientId: string;
  readonly data: ProfileData | undefined;
  readonly body: unknown;
}

interface ApiRoute {
  /** Needs Amazon-Advertising-API-Scope; charged to the profile's bucket as well as the client's. */
  readonly scoped: boolean;
  /** Vendor media type the request body and Accept must use; undefined for plain JSON routes. */
  readonly mediaType?: string;
  handle(context: ApiContext): { status: number; body: unknown };
}

export async function startAdsSandbox(overrides: Partial<SandboxOptions> = {}): Promise<AdsSandbox> {
  const options: SandboxOptions = { ...SANDBOX_DEFAULTS, ...overrides };
  const data = new SeededAdsData(options.seed, options.sizes);
  const capacity = new CapacityModel({
    profileDefault: options.profileCapacity,
    client: options.clientCapacity,
  });
  const tokens = new AccessTokens(options.credentials, options.tokenTtlSeconds);
  const stats = new StatsRecorder();
  let faults: FaultSpec & { remaining: number } = { remaining: 0 };

  const pageRequest = (body: unknown): PageRequest => {
    const { maxResults } = (body ?? {}) as { maxResults?: unknown };
    if (
      maxResults !== undefined &&
      (typeof maxResults !== 'number' ||
        !Number.isInteger(maxResults) ||
        maxResults < 1 ||
        maxResults > options.maxPageSize)
    ) {
      throw new HttpError(
        400,
        'INVALID_ARGUMENT',
        `maxResults must be an integer from 1 to ${options.maxPageSize}`,
      );
    }
    return body as PageRequest;
  };
  const listed = (handler: (data: ProfileData, request: PageRequest) => unknown) => (context: ApiContext) => {
    try {
      return { status: 200, body: handler(context.data as ProfileData, pageRequest(context.body)) };
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
  ): ApiRoute['handle'] {
    return ({ data: profile, body }) => {
      const seen = new Set<string>();
      const success: unknown[] = [];
      const error: unknown[] = [];
      itemsOf(body, field, SANDBOX_LIMITS.maxItemsPerUpdate).forEach((item, index) => {
        const result = check(profile as ProfileData, item, seen);
        if (!result.ok) {
          error.push({ index, errors: [result.error] });
          return;
        }
        const id = apply(result as TCheck);
        stats.recordMutation(field, id);
        success.push({ index, [idField]: id });
      });
      return { status: 207, body: { [field]: { success, error } } };
    };
  }

  const routes = new Map<string, ApiRoute>([
    ['GET /v2/profiles', { scoped: false, handle: () => ({ status: 200, body: data.profiles }) }],
    [
      'POST /sp/campaigns/list',
      { scoped: true, mediaType: MediaType.campaign, handle: listed(listCampaigns) },
    ],
    ['POST /sp/adGroups/list', { scoped: true, mediaType: MediaType.adGroup, handle: listed(listAdGroups) }],
    ['POST /sp/keywords/list', { scoped: true, mediaType: MediaType.keyword, handle: listed(listKeywords) }],
    [
      'PUT /sp/keywords',
      {
        scoped: true,
        mediaType: MediaType.keyword,
        handle: bulkUpdate('keywords', 'keywordId', checkKeywordUpdate, (check) => {
          if (check.bid !== undefined) check.keyword.bid = check.bid;
          if (check.state !== undefined) check.keyword.state = check.state as 'ENABLED' | 'PAUSED';
          return check.keyword.keywordId;
        }),
      },
    ],
    [
      'PUT /sp/campaigns',
      {
        scoped: true,
        mediaType: MediaType.campaign,
        handle: bulkUpdate('campaigns', 'campaignId', checkCampaignUpdate, (check) => {
          if (check.budget !== undefined)
            check.campaign.budget = { budget: check.budget, budgetType: 'DAILY' };
          if (check.state !== undefined) check.campaign.state = check.state as 'ENABLED' | 'PAUSED';
          return check.campaign.campaignId;
        }),
      },
    ],
  ]);

  const admin: SandboxAdmin = {
    stats: () => stats.snapshot(),
    mutations: () => stats.mutations(),
    profileIds: () => data.profiles.map((profile) => profile.profileId),
    setProfileCapacity: (spec, profileId) => capacity.setProfileCapacity(spec, profileId, Date.now()),
    profileCapacity: (profileId) => capacity.profileCapacity(profileId),
    setClientCapacity: (spec) => capacity.setClientCapacity(spec, Date.now()),
    injectFaults: (spec) => {
      faults = { ...spec, remaining: spec.failNext ?? 0 };
    },
    expireTokens: () => tokens.expireAll(Date.now()),
    refuseCredentials: (refuse) => tokens.refuse(refuse),
    entity: (kind, id) => entityView(data, kind, id),
    removeEntities: (kind, ids) => setRemoved(data, kind, ids, true),
    restoreEntities: (kind, ids) => setRemoved(data, kind, ids, false),
    updateEntities: (kind, changes) => applyChanges(data, kind, changes),
    addProfile: (sizes) => data.addProfile(sizes).profileId,
    reset: () => {
      stats.reset();
      faults = { remaining: 0 };
      tokens.refuse(false);
    },
  };

  async function handleApi(request: IncomingMessage, response: ServerResponse, route: ApiRoute) {
    const now = Date.now();
    if (!tokens.isValid(request.headers.authorization, now)) {
      stats.unauthorized += 1;
      throw new HttpError(401, 'UNAUTHORIZED', 'Not authorized to access this advertiser');
    }
    const clientId = request.headers['amazon-advertising-api-clientid'];
    if (typeof clientId !== 'string' || clientId !== tokens.clientId()) {
      throw new HttpError(
        400,
        'MISSING_CLIENT_ID',
        'Amazon-Advertising-API-ClientId header is missing or unknown',
      );
    }
    let profile: ProfileData | undefined;
    if (route.scoped) {
      const scope = request.headers['amazon-advertising-api-scope'];
      const profileId = Number(scope);
      profile = typeof scope === 'string' && /^\d+$/.test(scope) ? data.profileData(profileId) : undefined;
      if (profile === undefined) {
        throw new HttpError(
          typeof scope === 'string' ? 401 : 400,
          'INVALID_SCOPE',
          'Amazon-Advertising-API-Scope header is missing or not a profile of this client',
        );
      }
    }
    if (route.mediaType !== undefined) {
      if (mediaTypeOf(request.headers['content-type']) !== route.mediaType.toLowerCase()) {
        throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${route.mediaType}`);
      }
      const accept = request.headers.accept?.toLowerCase();
      if (
        accept !== undefined &&
        !accept.includes(route.mediaType.toLowerCase()) &&
        !accept.includes('*/*')
      ) {
        throw new HttpError(406, 'NOT_ACCEPTABLE', `Accept must include ${route.mediaType}`);
      }
    }
    const body = parseJson(await readBody(request));

    const profileId = profile?.profile.profileId;
    const admission = capacity.admit(clientId, profileId, Date.now());
    if (!admission.admitted) {
      stats.record(clientId, profileId, 'throttled');
      // Retry-After in whole seconds, as HTTP defines it (and Amazon sends it).
      const retryAfterSeconds = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
      throw new HttpError(429, 'TOO_MANY_REQUESTS', 'Request was throttled', {
        'retry-after': String(retryAfterSeconds),
      });
    }
    if (faults.remaining > 0 || (faults.errorRate !== undefined && Math.random() < faults.errorRate)) {
      faults.remaining = Math.max(0, faults.remaining - 1);
      stats.record(clientId, profileId, 'failed');
      const status = faults.status ?? 503;
      throw new HttpError(status, 'SERVER_IS_BUSY', 'Injected failure');
    }
    stats.record(clientId, profileId, 'ok');
    if (faults.latencyMs !== undefined && faults.latencyMs > 0) await sleep(faults.latencyMs);
    const result = route.handle({ clientId, data: profile, body });
    send(response, result.status, result.body, route.mediaType ?? 'application/json');
  }

  async function handleToken(request: IncomingMessage, response: ServerResponse) {
    const form = new URLSearchParams(await readBody(request));
    const result = tokens.grant(form, Date.now());
    if (result.ok) stats.lwaGrants += 1;
    send(response, result.ok ? 200 : result.status, result.body);
  }

  const ok = { ok: true };

  async function handleAdmin(request: IncomingMessage, response: ServerResponse, path: string) {
    const method = request.method ?? 'GET';
    const raw = method === 'POST' ? parseJson(await readBody(request)) : {};
    const body = <T>(schema: z.ZodType<T>): T => {
      const parsed = schema.safeParse(raw);
      if (!parsed.success) throw new HttpError(400, 'INVALID_ARGUMENT', describeIssues(parsed.error));
      return parsed.data;
    };
    const entityRoute = /^\/_sandbox\/entities\/([^/]+)\/(\d+)$/.exec(path);
    if (method === 'GET' && entityRoute !== null) {
      const kind = entityKind.safeParse(entityRoute[1]);
      if (!kind.success) throw new HttpError(400, 'INVALID_ARGUMENT', `kind: ${describeIssues(kind.error)}`);
      const entity = admin.entity(kind.data, Number(entityRoute[2]));
      if (entity === undefined) throw new HttpError(404, 'NOT_FOUND', `no ${kind.data} ${entityRoute[2]}`);
      return send(response, 200, entity);
    }
    switch (`${method} ${path}`) {
      case 'GET /_sandbox/stats':
        return send(response, 200, admin.stats());
      case 'GET /_sandbox/mutations':
        return send(response, 200, admin.mutations());
      case 'POST /_sandbox/capacity': {
        const { profileId, ratePerSecond, burst } = body(capacityBody);
        admin.setProfileCapacity({ ratePerSecond, burst: burst ?? ratePerSecond }, profileId);
        return send(response, 200, ok);
      }
      case 'POST /_sandbox/client-capacity': {
        const { ratePerSecond, burst } = body(clientCapacityBody);
        admin.setClientCapacity({ ratePerSecond, burst: burst ?? ratePerSecond });
        return send(response, 200, ok);
      }
      case 'POST /_sandbox/faults':
        admin.injectFaults(body(faultsBody));
        return send(response, 200, ok);
      case 'POST /_sandbox/tokens/expire':
        admin.expireTokens();
        return send(response, 200, ok);
      case 'POST /_sandbox/credentials':
        admin.refuseCredentials(body(credentialsBody).refuse);
        return send(response, 200, ok);
      case 'POST /_sandbox/entities/remove': {
        const { kind, ids } = body(entityIdsBody);
        admin.removeEntities(kind, ids);
        return send(response, 200, ok);
      }
      case 'POST /_sandbox/entities/restore': {
        const { kind, ids } = body(entityIdsBody);
        admin.restoreEntities(kind, ids);
        return send(response, 200, ok);
      }
      case 'POST /_sandbox/entities/update': {
        const { kind, changes } = body(entityUpdatesBody);
        admin.updateEntities(kind, changes);
        return send(response, 200, ok);
      }
      case 'POST /_sandbox/profiles':
        return send(response, 201, { profileId: admin.addProfile(body(profileBody)) });
      case 'POST /_sandbox/reset':
        admin.reset();
        return send(response, 200, ok);
      default:
        throw new HttpError(404, 'NOT_FOUND', `no admin route ${method} ${path}`);
    }
  }

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://sandbox').pathname;
    const route = routes.get(`${request.method} ${path}`);
    const handled =
      path === '/auth/o2/token' && request.method === 'POST'
        ? handleToken(request, response)
        : path.startsWith('/_sandbox/')
          ? handleAdmin(request, response, path)
          : route !== undefined
            ? handleApi(request, response, route)
            : Promise.reject(new HttpError(404, 'NOT_FOUND', `no route ${request.method} ${path}`));
    handled.catch((error: unknown) => {
      if (response.headersSent) return response.destroy();
      if (error instanceof UnknownEntityError) {
        return send(response, 404, { code: 'NOT_FOUND', details: error.message });
      }
      if (error instanceof InapplicableChangeError) {
        return send(response, 400, { code: 'INVALID_ARGUMENT', details: error.message });
      }
      if (error instanceof HttpError) {
        return send(
          response,
          error.status,
          { code: error.code, details: error.message },
          'application/json',
          error.headers,
        );
      }
      send(response, 500, { code: 'INTERNAL_ERROR', details: 'sandbox failure' });
    });
  });
  // Benchmarks open many keep-alive connections from several processes.
  server.keepAliveTimeout = 30_000;
  server.maxRequestsPerSocket = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${options.host}:${port}`,
    admin,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
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
