import { createMessenger } from '../../../shared/messaging/messenger.ts';
import { stackEnv, testConfig } from '../../support/env.ts';
import { queueDepth } from '../../support/queues.ts';
import { startTcpProxy } from '../../support/tcp-proxy.ts';
import type { TestTopology } from '../../support/topology.ts';

/** GET a worker's health endpoint: status and body (0 when nothing answers). */
export async function health(port: number, path = '/readyz'): Promise<{ status: number; body: unknown }> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
    return { status: response.status, body: await response.json() };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** A TCP proxy in front of the shared stack's service at `url`, and the same URL through it. */
export async function proxyFor(url: string) {
  const parsed = new URL(url);
  const proxy = await startTcpProxy(Number(parsed.port), parsed.hostname);
  const through = new URL(url);
  through.host = `127.0.0.1:${proxy.port}`;
  return { proxy, url: through.toString() };
}

export function redisUrl(): string {
  return stackEnv().REDIS_URL as string;
}

/** Messages in a queue's DLQ (visible, in flight or delayed). */
export function deadLettered(topology: TestTopology, queue: 'profile-sync' | 'bulk-item' | 'backfill-chunk') {
  return queueDepth(topology.clients.sqs, topology.state.queues[queue].deadLetterUrl);
}

/** A messenger on the test's own topology (publishes as the CLI would). */
export function testMessenger(topology: TestTopology) {
  return createMessenger(topology.clients, testConfig({ ADFLEET_RESOURCE_PREFIX: topology.prefix }))
    .messenger;
}
