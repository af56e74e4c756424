import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { type Context, Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { createMiddleware } from 'hono/factory';
import { secureHeaders } from 'hono/secure-headers';
import { stream } from 'hono/streaming';
import type { HtmlEscapedString } from 'hono/utils/html';
import type pg from 'pg';
import { QUEUE_NAMES, type QueueName } from '../../contract/topology.ts';
import { reportRows } from '../../domain/bulk/report.ts';
import type { OperationsReader } from '../../domain/operations/status.ts';
import { REPORT_CSV_COLUMNS, reportCsvLine } from '../commands/bulk.ts';
import {
  backfillPage,
  bulkJobPage,
  deadLettersIndexPage,
  deadLettersPage,
  layout,
  notFoundPage,
  overviewPage,
  type PageContext,
  profilesPage,
} from './pages.ts';

/**
 * `adfleet dashboard`: a read-only web page over the operations read model, on Hono.
 * Every page is rendered on the server (pages.ts); a request with the
 * `x-adfleet-fragment` header gets only the page's content, which is how the page
 * refreshes itself. Actions stay CLI commands, which the pages show.
 */

export const TOKEN_COOKIE = 'adfleet_dashboard_token';

export interface DashboardOptions {
  readonly reader: OperationsReader;
  /** For the bulk report download, streamed from the bulk model's report reader. */
  readonly db: pg.Pool;
  readonly jaegerUrl: string;
  /** Every request must carry it when set. */
  readonly token?: string;
  /** @defaultValue 3000 */
  readonly refreshMs?: number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Equal-time comparison of fixed-length digests: the token's length and content leak nothing. */
function tokenMatches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

/**
 * The token from `Authorization: Bearer`, the cookie a browser got, or `?token=` once in
 * a link (answered with the cookie and a redirect that drops it from the address bar).
 * Hono's bearerAuth reads only the header, and a browser cannot send one when a person
 * opens a link, hence this small middleware.
 */
function requireToken(token: string) {
  return createMiddleware(async (c, next) => {
    const header = c.req.header('authorization');
    const bearer = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    if (tokenMatches(bearer, token) || tokenMatches(getCookie(c, TOKEN_COOKIE), token)) return next();
    const query = c.req.query('token');
    if (tokenMatches(query, token)) {
      setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      const url = new URL(c.req.url);
      url.searchParams.delete('token');
      return c.redirect(`${url.pathname}${url.search}`, 303);
    }
    return c.text(
      'adfleet dashboard: a valid token is required (Authorization: Bearer, or ?token= once)',
      401,
    );
  });
}

export function createDashboardApp(options: DashboardOptions): Hono {
  const context: PageContext = { jaegerUrl: options.jaegerUrl, refreshMs: options.refreshMs ?? 3_000 };
  const app = new Hono();
  app.use(
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'unsafe-inline'"],
        styleSrc: ["'unsafe-inline'"],
      },
    }),
  );
  if (options.token !== undefined) app.use(requireToken(options.token));

  const page = async (
    c: Context,
    title: string,
    content: HtmlEscapedString | Promise<HtmlEscapedString>,
    status: 200 | 404 = 200,
  ) => {
    c.header('cache-control', 'no-store');
    return c.html(
      c.req.header('x-adfleet-fragment') === undefined ? layout(context, title, content) : content,
      status,
    );
  };
  const { reader } = options;

  app.get('/', async (c) => page(c, 'overview', overviewPage(context, await reader.status())));
  app.get('/api/status', async (c) => c.json(await reader.status()));
  app.get('/backfills/:id', async (c) => {
    const id = c.req.param('id');
    const detail = /^[0-9a-f-]{36}$/i.test(id) ? await reader.backfill(id) : undefined;
    return detail === undefined
      ? page(c, 'not found', notFoundPage(`no backfill job ${id}`), 404)
      : page(c, `backfill ${detail.job.name}`, backfillPage(context, detail));
  });
  app.get('/bulk/:id', async (c) => {
    const id = c.req.param('id');
    const detail = await reader.bulkJob(id);
    return detail === undefined
      ? page(c, 'not found', notFoundPage(`no bulk job ${id}`), 404)
      : page(c, `bulk job ${detail.job.fileName}`, bulkJobPage(context, detail));
  });
  app.get('/bulk/:id/report.csv', async (c) => {
    const detail = await reader.bulkJob(c.req.param('id'));
    if (detail === undefined) return c.text('no such bulk job', 404);
    const failedOnly = c.req.query('failed') !== undefined;
    c.header('content-type', 'text/csv; charset=utf-8');
    c.header(
      'content-disposition',
      `attachment; filename="bulk-${detail.job.id}${failedOnly ? '-failed' : ''}.csv"`,
    );
    // The same file `adfleet bulk report` writes, streamed page by page: any size, little memory.
    return stream(c, async (out) => {
      await out.write(`${REPORT_CSV_COLUMNS.join(',')}\n`);
      for await (const row of reportRows(options.db, detail.job.id, { failedOnly }))
        await out.write(reportCsvLine(row));
    });
  });
  app.get('/profiles', async (c) => page(c, 'profiles', profilesPage(await reader.profiles(500))));
  app.get('/dead-letters', async (c) => page(c, 'dead letters', deadLettersIndexPage(await reader.status())));
  app.get('/dead-letters/:queue', async (c) => {
    const queue = c.req.param('queue');
    if (!(QUEUE_NAMES as readonly string[]).includes(queue)) {
      return page(c, 'not found', notFoundPage(`no queue ${queue}; queues: ${QUEUE_NAMES.join(', ')}`), 404);
    }
    return page(
      c,
      `dead letters ${queue}`,
      deadLettersPage(queue as QueueName, await reader.deadLetters(queue as QueueName)),
    );
  });
  return app;
}

/** Loopback: 127.0.0.0/8, ::1, localhost. Anything else is reachable from another machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export class DashboardConfigError extends Error {
  override readonly name = 'DashboardConfigError';
}

export interface RunningDashboard {
  readonly url: string;
  readonly server: ServerType;
  close(): Promise<void>;
}

/** Serves the dashboard; refuses a non-loopback host without a token before binding anything. */
export async function startDashboard(
  options: DashboardOptions & { readonly host: string; readonly port: number },
): Promise<RunningDashboard> {
  if (!isLoopback(options.host) && options.token === undefined) {
    throw new DashboardConfigError(
      `binding the dashboard to ${options.host} (not loopback) requires ADFLEET_DASHBOARD_TOKEN; every request is then checked against it`,
    );
  }
  const app = createDashboardApp(options);
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, (info) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}/`,
        server,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
    server.once('error', reject);
  });
}
