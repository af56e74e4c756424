import { ChildProcess } from 'node:child_process';
import { Server, Socket } from 'node:net';
import { afterAll, vi } from 'vitest';

/**
 * Fails a test file that leaves a worker, a pg pool, a Redis client or a server open
 * (registered in vitest.config.ts as a setup file, so it wraps every file). After the file's
 * own afterAll hooks, whatever network connection, listening server or child process exists
 * that did not exist before its first test is a leak, named with where it points.
 *
 * Node has no public list of live handles: `process._getActiveHandles()` (what
 * why-is-node-running reads) gives the objects themselves, which say where a socket goes;
 * `process.getActiveResourcesInfo()` only names their types. fetch's keep-alive connections
 * are closed first: they are the runtime's pool, not something a test opened.
 */

type Handle = object;
const activeHandles = () =>
  (process as unknown as { _getActiveHandles(): Handle[] })._getActiveHandles().filter(isTracked);

function isTracked(handle: Handle): boolean {
  if (handle instanceof ChildProcess) return handle.exitCode === null && handle.signalCode === null;
  if (handle instanceof Server) return handle.listening;
  if (handle instanceof Socket) {
    // stdio and the channel to the vitest main process are not the test's.
    return !handle.destroyed && handle.remotePort !== undefined;
  }
  return false;
}

/** What a leaked handle most likely is, by where it points. */
function describeHandle(handle: Handle): string {
  if (handle instanceof ChildProcess) {
    return `child process ${handle.spawnargs.slice(1).join(' ')} (pid ${handle.pid}) still running: stop it`;
  }
  if (handle instanceof Server) {
    const address = handle.address();
    const where =
      typeof address === 'object' && address !== null ? `${address.address}:${address.port}` : address;
    return `server listening on ${where}: close it`;
  }
  const socket = handle as Socket;
  const where = `${socket.remoteAddress}:${socket.remotePort}`;
  switch (socket.remotePort) {
    case 5432:
      return `Postgres connection to ${where}: end the pg pool or client`;
    case 6379:
      return `Redis connection to ${where}: quit the Redis client`;
    case 4566:
      return `AWS emulator connection to ${where}: stop the worker, or destroy its AWS clients`;
    default:
      return `connection to ${where}: close whatever opened it`;
  }
}

async function closeFetchConnections(): Promise<void> {
  const dispatcher = (globalThis as Record<symbol, { close?: () => Promise<void> } | undefined>)[
    Symbol.for('undici.globalDispatcher.1')
  ];
  await dispatcher?.close?.().catch(() => {});
}

// Taken when this setup file loads, before the test file is imported.
const before = new Set(activeHandles());

afterAll(async () => {
  await closeFetchConnections();
  let leaked: Handle[] = [];
  // Closing is asynchronous (a pool's end, a client's quit): what was closed gets a moment.
  await vi
    .waitFor(
      () => {
        leaked = activeHandles().filter((handle) => !before.has(handle));
        if (leaked.length > 0) throw new Error('still open');
      },
      { timeout: 2_000, interval: 100 },
    )
    .catch(() => {
      const report =
        `this test file left ${leaked.length} resource(s) open after its last hook:\n` +
        leaked.map((handle) => `  - ${describeHandle(handle)}`).join('\n');
      // Named, then stopped: a leaked worker process otherwise outlives the run (the leak
      // check's own fixture left a bulk-item worker running for as long as the machine).
      for (const handle of leaked) if (handle instanceof ChildProcess) handle.kill('SIGKILL');
      throw new Error(report);
    });
}, 10_000);
