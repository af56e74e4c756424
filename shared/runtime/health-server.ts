import { createServer, type Server } from 'node:http';
import type { Logger } from '../logging.ts';

export interface HealthState {
  readonly alive: boolean;
  readonly ready: boolean;
  /** Why not ready: e.g. "postgres unavailable since …: <error>". */
  readonly reasons?: readonly string[];
}

/**
 * GET /healthz (the process is alive and not stopping) and /readyz (polling, SQS
 * reachable, no dependency's circuit open; the body says why not) on loopback. A listen error (the port is taken) is logged, never thrown: a
 * worker without its health endpoint still works, a crashed one does not.
 */
export function startHealthServer(port: number, health: () => HealthState, logger: Logger): Server {
  const server = createServer((request, response) => {
    const state = health();
    const ok = request.url === '/healthz' ? state.alive : request.url === '/readyz' ? state.ready : undefined;
    if (ok === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(state));
  });
  server.on('error', (error) =>
    logger.error({ err: error, port }, 'health server failed; worker goes on without it'),
  );
  server.listen(port, '127.0.0.1');
  server.unref();
  return server;
}
