import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { createAdmin, type SandboxAdmin, type SandboxState } from './admin.ts';
import { adminRoutes } from './admin-routes.ts';
import { apiRoutes } from './api-routes.ts';
import { AccessTokens, type LwaCredentials } from './auth.ts';
import { type BucketSpec, CapacityModel } from './capacity.ts';
import { type DataSizes, DEFAULT_SIZES, SeededAdsData } from './data.ts';
import { InapplicableChangeError, UnknownEntityError } from './entities.ts';
import { HttpError, refusal } from './http.ts';
import { StatsRecorder } from './stats.ts';

/**
 * The Amazon Ads API sandbox: an HTTP server that behaves like the parts of Amazon's service
 * the fleet uses (see DESIGN.md, "Amazon Ads API"), routed by Hono. The API routes and their
 * refusal pipeline are in api-routes.ts; the admin routes under /_sandbox/ (the test's view,
 * outside that pipeline) in admin-routes.ts; both answer every refusal as `{ code, details }`.
 */

export type { FaultSpec, SandboxAdmin } from './admin.ts';
export { SANDBOX_LIMITS } from './limits.ts';

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

export interface AdsSandbox {
  readonly url: string;
  readonly admin: SandboxAdmin;
  close(): Promise<void>;
}

function sandboxApp(state: SandboxState, admin: SandboxAdmin): Hono {
  const app = new Hono();
  app.route('/_sandbox', adminRoutes(admin));
  app.route('/', apiRoutes(state));
  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    const where = path.startsWith('/_sandbox/') ? 'admin route' : 'route';
    return refusal(new HttpError(404, 'NOT_FOUND', `no ${where} ${c.req.method} ${path}`));
  });
  app.onError((error) => {
    if (error instanceof HttpError) return refusal(error);
    if (error instanceof UnknownEntityError) return refusal(new HttpError(404, 'NOT_FOUND', error.message));
    if (error instanceof InapplicableChangeError) {
      return refusal(new HttpError(400, 'INVALID_ARGUMENT', error.message));
    }
    return refusal(new HttpError(500, 'INTERNAL_ERROR', 'sandbox failure'));
  });
  return app;
}

export async function startAdsSandbox(overrides: Partial<SandboxOptions> = {}): Promise<AdsSandbox> {
  const options: SandboxOptions = { ...SANDBOX_DEFAULTS, ...overrides };
  const state: SandboxState = {
    data: new SeededAdsData(options.seed, options.sizes),
    capacity: new CapacityModel({ profileDefault: options.profileCapacity, client: options.clientCapacity }),
    tokens: new AccessTokens(options.credentials, options.tokenTtlSeconds),
    stats: new StatsRecorder(),
    maxPageSize: options.maxPageSize,
    faults: { remaining: 0 },
  };
  const admin = createAdmin(state);

  const server = createServer(getRequestListener(sandboxApp(state, admin).fetch));
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
