import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/**
 * CPU affinity for the backfill benchmark, with `taskset` (util-linux): the Postgres
 * server gets a core of its own, everything else — this process, the production mix
 * (bench/production-mix.ts), the worker, the emulator, Jaeger, Redis, the sandbox — the other. On a
 * 2-core machine that is the only way to tell the backfill's cost on the database's core
 * from every other process's cost on the same cores. New backends fork from the
 * postmaster and inherit its mask. Everything is put back as it was by `restore`,
 * backends forked meanwhile included.
 */

const STACK_PIDS = fileURLToPath(new URL('../.stack/pids', import.meta.url));

function taskset(args: readonly string[]): string {
  return execFileSync('taskset', args, { encoding: 'utf8' }).trim();
}

/** The mask a process runs on now, as taskset prints it (hex). */
function maskOf(pid: number): string | undefined {
  try {
    return taskset(['-p', String(pid)])
      .split(':')
      .at(-1)
      ?.trim();
  } catch {
    return undefined;
  }
}

function setMask(pid: number, mask: string): boolean {
  try {
    taskset(['-a', '-p', mask, String(pid)]);
    return true;
  } catch {
    return false; // gone meanwhile
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((child) => child > 0);
  } catch {
    return [];
  }
}

function withDescendants(pid: number): number[] {
  return [pid, ...childrenOf(pid).flatMap(withDescendants)];
}

async function postmasterPid(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ setting: string }>(
      `SELECT setting FROM pg_settings WHERE name = 'data_directory'`,
    );
    const dir = rows[0]?.setting;
    if (dir === undefined) throw new Error('data_directory is not readable');
    return Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } finally {
    await client.end();
  }
}

export interface Pinning {
  readonly databaseCpu: number;
  readonly otherCpu: number;
  /** What was pinned where, for the report. */
  readonly description: string;
  /** Runs `command` on the other CPU: taskset's argv prefix. */
  readonly onOtherCpu: readonly string[];
  /** Whether this machine lets the bench raise a process's priority (root or CAP_SYS_NICE). */
  readonly raised: boolean;
  /** Moves a process started later (the production mix) onto the other CPU. */
  pinToOtherCpu(pid: number): void;
  /**
   * Every thread of a process at nice MIX_NICE, or back to 0: the production mix's, so that
   * its latency is the database's and not its wait for the shared core
   * (bench/production-mix.ts). False where it cannot be set.
   */
  raisePriority(pid: number, on: boolean): boolean;
  restore(): void;
}

/**
 * The production mix's nice value: the same as the backfill's latency probe asks for
 * (workers/backfill-chunk/latency-probe-thread.ts), so both clients of the database wait
 * for the shared core alike. Not SCHED_FIFO, as the mix once ran: a real-time Node thread
 * stalls its whole core for up to the kernel's real-time budget whenever V8 in it collects
 * garbage (a 10 ms timer on the same core, beside a Node process that allocates steadily,
 * 28 s each: 16 ms late at worst with that process plain, 954 ms, three times, with its
 * main thread SCHED_FIFO, 58 ms with it at nice −10), and in the backfill runs the worker's
 * probe read those stalls as 890–915 ms database latencies, several times a run.
 */
const MIX_NICE = -10;

function raisePriority(pid: number, on: boolean): boolean {
  try {
    // Per thread on Linux; threads started later inherit their creator's.
    for (const task of readdirSync(`/proc/${pid}/task`)) setPriority(Number(task), on ? MIX_NICE : 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether this process may lower a nice value (root or CAP_SYS_NICE): tried on its own thread, and put back. */
function raisingAllowed(): boolean {
  const own = getPriority(0);
  try {
    setPriority(0, Math.min(own, MIX_NICE));
    return true;
  } catch {
    return false;
  } finally {
    setPriority(0, own);
  }
}

export async function pinDatabaseToItsOwnCore(databaseUrl: string): Promise<Pinning> {
  const databaseCpu = 1;
  const otherCpu = 0;
  const postmaster = await postmasterPid(databaseUrl);
  const original = new Map<number, string>();
  const pin = (pid: number, cpu: number) => {
    const mask = maskOf(pid);
    if (mask === undefined) return false;
    if (!original.has(pid)) original.set(pid, mask);
    return setMask(pid, (1 << cpu).toString(16));
  };
  const database = withDescendants(postmaster).filter((pid) => pin(pid, databaseCpu));
  const stack: string[] = [];
  if (existsSync(STACK_PIDS)) {
    for (const file of readdirSync(STACK_PIDS)) {
      const pid = Number(readFileSync(join(STACK_PIDS, file), 'utf8'));
      const pinned = withDescendants(pid).filter((each) => pin(each, otherCpu));
      if (pinned.length > 0) stack.push(`${file.replace(/\.pid$/, '')} (${pinned.length})`);
    }
  }
  pin(process.pid, otherCpu);
  const raised = raisingAllowed();
  const readBack = maskOf(postmaster);
  return {
    databaseCpu,
    otherCpu,
    description: [
      `taskset: postgres (postmaster ${postmaster} and ${database.length - 1} children, mask now ${readBack}) on CPU ${databaseCpu};`,
      `this process, the production mix, the worker, the spin loop and ${stack.join(', ') || 'no stack services'} on CPU ${otherCpu} (mask ${maskOf(process.pid)});`,
      raised
        ? `priority: the production mix runs in a process of its own, every thread of it at nice ${MIX_NICE} (everything else 0, the worker's latency probe thread ${MIX_NICE} too)`
        : `priority: nice values below 0 are not allowed here: the production mix's latency includes its wait for CPU ${otherCpu}`,
    ].join(' '),
    onOtherCpu: ['taskset', '-c', String(otherCpu)],
    raised,
    pinToOtherCpu: (pid) => {
      setMask(pid, (1 << otherCpu).toString(16));
    },
    raisePriority: (pid, on) => raised && raisePriority(pid, on),
    restore() {
      const fallback = original.get(postmaster) ?? 'ffffffff';
      // The postmaster first, so that no backend forks with the pin from here on; then
      // everything pinned, and the backends forked while pinned (they inherited it).
      setMask(postmaster, fallback);
      for (const [pid, mask] of original) setMask(pid, mask);
      for (const pid of withDescendants(postmaster)) setMask(pid, original.get(pid) ?? fallback);
    },
  };
}
