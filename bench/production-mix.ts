/**
 * The backfill bench's production load generator, in a process of its own
 * (bench/backfill.ts starts it with `fork` and puts every thread of it at nice −10).
 *
 * It stands for application servers on machines of their own, but here it shares the
 * non-database core with the worker, the emulator and the spin loop. In the bench's own
 * process its latency included its wait for that core (the spin loop alone, no database
 * work, cost 1.35× to 4.3× idle p99). A process of its own, at a raised priority, it does
 * nothing but send the mix, time it and pass the samples on. Raised by nice, not made
 * SCHED_FIFO as it once was: a real-time Node thread stalls its core for up to a second
 * whenever V8 in it collects garbage (bench/affinity.ts has the measurement), and the
 * backfill worker's latency probe read each such stall as a second-long database stall.
 *
 * argv[2]: the settings as JSON (MixSettings). Messages in: { clients: n } (how many of
 * the connections send), 'stop'. Messages out: { samples: [at, ms, kind, …] } every
 * FLUSH_MS (at: epoch ms of when the query was due, kind: index into QUERY_KINDS), then
 * 'stopped' once every connection has closed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export interface MixSettings {
  readonly url: string;
  readonly maxClients: number;
  readonly clients: number;
  readonly paceMs: number;
  readonly profiles: number;
  readonly rows: number;
  readonly profileIdBase: number;
  readonly campaignIdBase: number;
}

export type MixMessage = { readonly samples: readonly number[] } | 'stopped';

/** The epoch clock both processes time by (performance.now() has a per-process origin). */
export const epochNow = () => performance.timeOrigin + performance.now();

const FLUSH_MS = 50;

async function run(settings: MixSettings) {
  const send = (message: MixMessage) => process.send?.(message);
  let running = true;
  let active = Math.min(settings.clients, settings.maxClients);
  process.on('message', (message: unknown) => {
    if (message === 'stop') running = false;
    else if (typeof message === 'object' && message !== null && 'clients' in message)
      active = Math.min(Number((message as { clients: number }).clients), settings.maxClients);
  });
  let buffer: number[] = [];
  const flusher = setInterval(() => {
    if (buffer.length === 0) return;
    send({ samples: buffer });
    buffer = [];
  }, FLUSH_MS);
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  const { paceMs, maxClients } = settings;
  const clients = Array.from({ length: maxClients }, async (_, index) => {
    const client = new pg.Client({ connectionString: settings.url, application_name: 'bench-production' });
    await client.connect();
    // Open loop at a fixed pace, the clients evenly staggered (one query every
    // paceMs / clients overall, not all at once). A query's latency counts from its
    // scheduled start when the previous one was still running then: a client held up by
    // the database reports every query it could not send in time (no coordinated
    // omission). A query sent late only because this process's timer fired late counts
    // from when it was sent: that delay belongs to the load generator, not the database.
    await sleep((index * paceMs) / maxClients);
    let scheduled = epochNow();
    let previousEnd = 0;
    while (running) {
      if (index >= active) {
        await sleep(paceMs);
        scheduled = epochNow();
        previousEnd = 0;
        continue;
      }
      const started = previousEnd > scheduled ? scheduled : epochNow();
      scheduled += paceMs;
      const pick = random();
      const kind = pick < 0.5 ? 0 : pick < 0.9 ? 1 : 2;
      if (kind === 0) {
        await client.query(
          'SELECT id, name, state, daily_budget FROM campaigns WHERE profile_id = $1 ORDER BY id LIMIT 20',
          [settings.profileIdBase + 1 + Math.floor(random() * settings.profiles)],
        );
      } else if (kind === 1) {
        await client.query('SELECT * FROM campaigns WHERE id = $1', [
          settings.campaignIdBase + 1 + Math.floor(random() * settings.rows),
        ]);
      } else {
        await client.query('UPDATE campaigns SET daily_budget = daily_budget + 0.01 WHERE id = $1', [
          settings.campaignIdBase + 1 + Math.floor(random() * settings.rows),
        ]);
      }
      previousEnd = epochNow();
      buffer.push(started, previousEnd - started, kind);
      const wait = scheduled - epochNow();
      if (wait > 0) await sleep(wait);
    }
    await client.end();
  });
  await Promise.all(clients);
  clearInterval(flusher);
  if (buffer.length > 0) send({ samples: buffer });
  send('stopped');
  process.disconnect?.();
}

if (process.send !== undefined && process.argv[2] !== undefined) {
  await run(JSON.parse(process.argv[2]) as MixSettings);
}
