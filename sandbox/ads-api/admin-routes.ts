import { type Context, Hono } from 'hono';
import { validator } from 'hono/validator';
import type { z } from 'zod';
import type { SandboxAdmin } from './admin.ts';
import {
  capacityBody,
  clientCapacityBody,
  credentialsBody,
  describeIssues,
  entityIdsBody,
  entityRouteParams,
  entityUpdatesBody,
  faultsBody,
  profileBody,
} from './admin-bodies.ts';
import { HttpError, jsonBody, jsonResponse, limitBody } from './http.ts';

/**
 * The admin routes under /_sandbox/: the test's (or the demo's) view of and hand on the
 * sandbox. No authentication, capacity or faults; every body is validated and a wrong one is
 * a 400 that names the field.
 */

function parsed<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'INVALID_ARGUMENT', describeIssues(result.error));
  return result.data;
}

/**
 * Hono's `validator('json')` reads a body only under a JSON Content-Type and hands `{}` on
 * otherwise, which would turn `curl -d '{"refuse":true}'` into a silent no-op; the admin routes
 * read the body whatever its type, as they always have.
 */
async function body<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  return parsed(schema, await jsonBody(c));
}

const ok = () => jsonResponse(200, { ok: true });

export function adminRoutes(admin: SandboxAdmin): Hono {
  const routes = new Hono();
  routes.use(limitBody);

  routes.get('/stats', () => jsonResponse(200, admin.stats()));
  routes.get('/mutations', () => jsonResponse(200, admin.mutations()));
  routes.get('/mutations/unanswered', () => jsonResponse(200, admin.unansweredMutations()));

  routes.post('/capacity', async (c) => {
    const { profileId, ratePerSecond, burst } = await body(c, capacityBody);
    admin.setProfileCapacity({ ratePerSecond, burst: burst ?? ratePerSecond }, profileId);
    return ok();
  });
  routes.post('/client-capacity', async (c) => {
    const { ratePerSecond, burst } = await body(c, clientCapacityBody);
    admin.setClientCapacity({ ratePerSecond, burst: burst ?? ratePerSecond });
    return ok();
  });
  routes.post('/faults', async (c) => {
    admin.injectFaults(await body(c, faultsBody));
    return ok();
  });
  routes.post('/tokens/expire', () => {
    admin.expireTokens();
    return ok();
  });
  routes.post('/credentials', async (c) => {
    admin.refuseCredentials((await body(c, credentialsBody)).refuse);
    return ok();
  });

  routes.get(
    '/entities/:kind/:id',
    validator('param', (params) => parsed(entityRouteParams, params)),
    (c) => {
      const { kind, id } = c.req.valid('param');
      const entity = admin.entity(kind, id);
      if (entity === undefined) throw new HttpError(404, 'NOT_FOUND', `no ${kind} ${id}`);
      return jsonResponse(200, entity);
    },
  );
  routes.post('/entities/remove', async (c) => {
    const { kind, ids } = await body(c, entityIdsBody);
    admin.removeEntities(kind, ids);
    return ok();
  });
  routes.post('/entities/restore', async (c) => {
    const { kind, ids } = await body(c, entityIdsBody);
    admin.restoreEntities(kind, ids);
    return ok();
  });
  routes.post('/entities/update', async (c) => {
    const { kind, changes } = await body(c, entityUpdatesBody);
    admin.updateEntities(kind, changes);
    return ok();
  });

  routes.post('/profiles', async (c) =>
    jsonResponse(201, { profileId: admin.addProfile(await body(c, profileBody)) }),
  );
  routes.post('/reset', () => {
    admin.reset();
    return ok();
  });
  return routes;
}
