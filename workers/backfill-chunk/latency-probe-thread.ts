import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';

/**
 * The latency target's probe, in a thread of its own with a connection of its own: one
 * production-like read every `everyMs`, timed. A thread, because on the worker's main
 * thread the probe's reading would include the event loop's delay from the chains' own
 * work — the very noise the probe must not see — and its sampling cadence would slip
 * whenever the loop is busy. The samples (start time on the epoch clock, duration, ms) go
 * to the main thread every `flushEveryMs`; the controller there does the rest.
 *
 * The schedule is open-loop: a probe that could not start on time because the previous
 * one was still running counts from when it was due (no coordinated omission), so a
 * stalled database shows as the stall it is, not as one slow sample.
 */

export interface ProbeThreadData {
  readonly databaseUrl: string;
  readonly sql: string;
  /** Exclusive. */
  readonly lowId: number;
  /** Inclusive. */
  readonly highWaterId: number;
  readonly everyMs: number;
  readonly flushEveryMs: number;
}

export type ProbeThreadMessage =
  | { readonly kind: 'samples'; readonly samples: readonly number[] }
  | { readonly kind: 'priority'; readonly priority: string }
  | { readonly kind: 'error'; readonly message: string };

/** The nice value the probe thread asks for: well above the chains' and the host's (0), still fair-shared. */
const PROBE_NICE = -10;

/**
 * Raises this thread's scheduling priority, so that a probe is timed by the database and not
 * by its own wait for the worker's CPU: on a worker whose core also runs its chains, its
 * emulator and its neighbours, that wait was most of the probe's baseline p99 (1.6–2.6 ms
 * against production's 1.2–1.8 ms), and the same added milliseconds of database contention
 * then made a smaller ratio to the probe than to production. A nice value, not real time:
 * made SCHED_FIFO (chrt), the thread stalled its whole core for up to the kernel's real-time
 * budget (950 ms of every second; production's idle p99 in the bench read 739 ms, its
 * worst 965 ms): a real-time Node thread does that whenever V8 in it collects garbage
 * (bench/affinity.ts has the measurement). setpriority(PRIO_PROCESS, 0) is per thread on
 * Linux: this thread only. It needs CAP_SYS_NICE (root, or the capability granted to the
 * task); without it the probe runs at the default and says so.
 */
function raisePriority(): string {
  try {
    setPriority(0, PROBE_NICE);
    return `nice ${PROBE_NICE}`;
  } catch {
    return 'nice 0 (raising it needs CAP_SYS_NICE)';
  }
}

const data = workerData as ProbeThreadData;
const port = parentPort;
if (port === null) throw new Error('latency-probe-thread runs as a worker thread');

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const usesId = /\$1\b/.test(data.sql);
let running = true;
port.on('message', (message) => {
  if (message === 'stop') running = false;
});

port.postMessage({ kind: 'priority', priority: raisePriority() } satisfies ProbeThreadMessage);

let buffer: number[] = [];
let lastFlush = now();
const flush = () => {
  if (buffer.length > 0) port.postMessage({ kind: 'samples', samples: buffer } satisfies ProbeThreadMessage);
  buffer = [];
  lastFlush = now();
};

while (running) {
  const client = new pg.Client({
    connectionString: data.databaseUrl,
    application_name: 'adfleet-latency-probe',
  });
  try {
    await client.connect();
    let scheduled = now();
    let previousEnd = 0;
    while (running) {
      const started = previousEnd > scheduled ? scheduled : now();
      scheduled += data.everyMs;
      const id = data.lowId + 1 + Math.floor(Math.random() * Math.max(1, data.highWaterId - data.lowId));
      await client.query(data.sql, usesId ? [id] : []);
      previousEnd = now();
      buffer.push(started, previousEnd - started);
      if (previousEnd - lastFlush >= data.flushEveryMs) flush();
      // Behind by more than a second (a long stall): start a fresh schedule.
      if (previousEnd - scheduled > 1_000) scheduled = previousEnd;
      await sleep(scheduled - now());
    }
  } catch (error) {
    flush();
    port.postMessage({ kind: 'error', message: String(error) } satisfies ProbeThreadMessage);
    if (running) await sleep(1_000);
  } finally {
    await client.end().catch(() => {});
  }
}
flush();
