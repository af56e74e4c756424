/**
 * `npm run demo`: the local stack up, the three workers running, one of each workflow sent
 * through them, and a summary with trace ids and the Jaeger URLs where each can be seen.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QUEUE_NAMES } from '../contract/topology.ts';
import { readStackEnv } from './stack-env.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function say(message: string) {
  process.stdout.write(`demo: ${message}\n`);
}

// 1. The stack (idempotent), before anything reads its environment.
execFileSync(process.execPath, [join(ROOT, 'scripts', 'stack.ts'), 'up'], { stdio: 'inherit', cwd: ROOT });
const env = readStackEnv();
Object.assign(process.env, env, { OTEL_SERVICE_NAME: 'adfleet-demo' });
const jaeger = env.ADFLEET_JAEGER_URL ?? 'http://127.0.0.1:16686';

// Telemetry for this process (the workflows' root spans), then everything instrumented.
const { telemetry } = await import('../shared/telemetry/start.ts');
const { trace } = await import('@opentelemetry/api');
const { loadConfig } = await import('../contract/config.ts');
const { createAwsClients } = await import('../shared/aws.ts');
const { createMessenger } = await import('../shared/messaging/messenger.ts');

// The demo's own Ads API sandbox (the same seeded data as the stack's), so that the bulk
// workflow can inject 429s and 503s without disturbing anyone else using the stack's.
const { startAdsSandbox } = await import('../sandbox/ads-api/server.ts');
const sandbox = await startAdsSandbox();
process.env.ADFLEET_ADS_API_URL = sandbox.url;
delete process.env.ADFLEET_LWA_TOKEN_URL;

// 2. The workers, as their own processes, logging to .stack/logs/demo-<worker>.log.
const logDir = join(ROOT, '.stack', 'logs');
mkdirSync(logDir, { recursive: true });
const children = new Map<string, ChildProcess>();
for (const worker of QUEUE_NAMES) {
  const logFile = join(logDir, `demo-${worker}.log`);
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, [join(ROOT, 'workers', worker, 'main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      OTEL_SERVICE_NAME: worker,
      ADFLEET_POLL_WAIT_SECONDS: '5',
      ADFLEET_HEALTH_PORT: '0',
    },
    stdio: ['ignore', out, out],
  });
  children.set(worker, child);
  say(`started ${worker} (pid ${child.pid}), log ${logFile}`);
}

function logLines(worker: string): Array<Record<string, unknown>> {
  const file = join(logDir, `demo-${worker}.log`);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`demo: ${what} did not happen within ${timeoutMs / 1000} s`);
}

async function jaegerSpanCount(traceId: string): Promise<{ spans: number; services: string[] } | undefined> {
  try {
    const response = await fetch(`${jaeger}/api/traces/${traceId}`);
    if (!response.ok) return undefined;
    const body = (await response.json()) as {
      data?: Array<{ spans: unknown[]; processes: Record<string, { serviceName: string }> }>;
    };
    const found = body.data?.[0];
    if (found === undefined) return undefined;
    const services = [
      ...new Set(Object.values(found.processes).map((process) => process.serviceName)),
    ].sort();
    return { spans: found.spans.length, services };
  } catch {
    return undefined;
  }
}

const summary: Array<{ workflow: string; traceId: string; result: string }> = [];
const config = loadConfig();
const clients = createAwsClients(config);
const { messenger } = createMessenger(clients, config);
const tracer = trace.getTracer('adfleet.demo');
let exitCode = 0;

try {
  await waitFor('workers started', () =>
    QUEUE_NAMES.every((worker) => logLines(worker).some((line) => line.msg === 'worker started'))
      ? true
      : undefined,
  );

  // 3b. Nightly sync, on demand.
  const syncTrace = await tracer.startActiveSpan('demo sync all', async (span) => {
    await messenger.publish('SyncAllProfilesRequested', { reason: 'demo' });
    span.end();
    return span.spanContext().traceId;
  });
  // The nightly summary comes from the run records (sync_runs), found by the trace id.
  const { listRuns } = await import('../domain/sync/freshness.ts');
  const { createPool } = await import('../shared/db.ts');
  const pool = createPool(config.DATABASE_URL, { max: 1, applicationName: 'adfleet-demo' });
  try {
    const requested = await waitFor(
      'nightly fan-out',
      () =>
        logLines('profile-sync').find(
          (line) => line.trace_id === syncTrace && line.msg === 'sync of every profile requested',
        ),
      60_000,
    );
    // Profiles already queued or running are not enqueued again (they fold into that sync).
    const enqueued = Number(requested.enqueued ?? 0);
    const finished = await waitFor(
      'every enqueued profile synced',
      async () => {
        const runs = await listRuns(pool, { traceId: syncTrace, limit: 10_000 });
        const ended = runs.filter((run) => run.status === 'succeeded' || run.status === 'failed');
        return ended.length >= enqueued ? ended : undefined;
      },
      180_000,
    );
    const total = (kind: 'campaigns' | 'adGroups' | 'keywords', field: 'seen' | 'changed' | 'removed') =>
      finished.reduce((sum, run) => sum + run.counts[kind][field], 0);
    const slowest = Math.max(0, ...finished.map((run) => run.durationMs ?? 0));
    const failed = finished.filter((run) => run.status === 'failed').length;
    summary.push({
      workflow: 'nightly sync',
      traceId: syncTrace,
      result:
        `${finished.length - failed} of ${Number(requested.profiles ?? 0)} profiles synced (${enqueued} enqueued, ${failed} failed): ` +
        `${total('keywords', 'seen')} keywords seen, ${total('keywords', 'changed')} changed, ${total('keywords', 'removed')} removed; ` +
        `slowest ${(slowest / 1000).toFixed(1)} s`,
    });
    const [first] = finished;
    if (first !== undefined) {
      say(`adfleet sync status --profile ${first.profileId}`);
      process.stdout.write(
        execFileSync(
          process.execPath,
          [join(ROOT, 'cli', 'main.ts'), 'sync', 'status', '--profile', String(first.profileId)],
          {
            cwd: ROOT,
            env: { ...process.env, OTEL_SDK_DISABLED: 'true' },
            encoding: 'utf8',
          },
        ),
      );
    }
  } finally {
    await pool.end();
  }

  // 3b'. A bulk job over the synced profiles, with Amazon refusing some items and throttling.
  const { demoBulk } = await import('./demo-bulk.ts');
  const bulk = await demoBulk(config.DATABASE_URL, sandbox.admin);
  const resynced = await waitFor(
    'touched profiles re-synced',
    () => {
      const lines = logLines('profile-sync').filter((line) => line.trace_id === bulk.traceId);
      const requested = lines.find((line) => line.msg === 're-sync of touched profiles requested');
      const synced = lines.filter((line) => line.msg === 'profile synced');
      return requested !== undefined && synced.length >= Number(requested.profiles) ? synced : undefined;
    },
    120_000,
  );
  summary.push({
    workflow: 'bulk bid changes',
    traceId: bulk.traceId,
    result: `${bulk.status}: ${bulk.succeeded} applied, ${bulk.failed} refused by Amazon; ${resynced.length} profiles re-synced`,
  });

  // 3c. Backfill (loaded only now, after telemetry started, like everything instrumented).
  const { demoBackfill } = await import('./demo-backfill.ts');
  const backfill = await demoBackfill(env);
  summary.push({
    workflow: 'backfill campaign-currency',
    traceId: backfill.traceId,
    result: `${backfill.rows} rows filled`,
  });

  await telemetry.shutdown();
} catch (error) {
  exitCode = 1;
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
} finally {
  clients.destroy();
  // Stopping drains the workers and flushes their spans, so the traces below are whole.
  for (const [worker, child] of children) {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exit) => resolve(exit)));
    say(`${worker} drained and exited with ${code}`);
    if (code !== 0) exitCode = 1;
  }
  await sandbox.close();
}

process.stdout.write('\nadfleet demo summary\n');
for (const entry of summary) {
  let seen: { spans: number; services: string[] } | undefined;
  // Jaeger indexes asynchronously: read until two reads agree.
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const now = await jaegerSpanCount(entry.traceId);
    if (now !== undefined && seen !== undefined && now.spans === seen.spans) break;
    seen = now;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const spans =
    seen === undefined ? 'not in Jaeger' : `${seen.spans} spans across ${seen.services.join(', ')}`;
  process.stdout.write(
    `  ${entry.workflow.padEnd(28)} ${entry.result}\n  ${''.padEnd(28)} trace ${entry.traceId}: ${spans}\n` +
      `  ${''.padEnd(28)} ${jaeger}/trace/${entry.traceId}\n`,
  );
}

// 4. The operations view of what just ran: the dashboard, served until Ctrl-C when a person
// is watching; in CI (no terminal) only the way to start it.
const DASHBOARD_PORT = 8_484;
const dashboardCommand = `node --env-file=.stack/env cli/main.ts dashboard --port ${DASHBOARD_PORT}`;
if (exitCode === 0 && process.stdout.isTTY && process.env.CI === undefined) {
  process.stdout.write(
    `\ndashboard: http://127.0.0.1:${DASHBOARD_PORT}/ (serving until Ctrl-C; \`adfleet status\` for the terminal view)\n`,
  );
  const dashboard = spawn(
    process.execPath,
    [join(ROOT, 'cli', 'main.ts'), 'dashboard', '--port', String(DASHBOARD_PORT)],
    { cwd: ROOT, env: { ...process.env, OTEL_SERVICE_NAME: 'adfleet-dashboard' }, stdio: 'inherit' },
  );
  process.on('SIGINT', () => dashboard.kill('SIGINT'));
  await new Promise((resolve) => dashboard.once('exit', resolve));
} else {
  process.stdout.write(
    `\noperations: \`node --env-file=.stack/env cli/main.ts status\`; dashboard: \`${dashboardCommand}\` → http://127.0.0.1:${DASHBOARD_PORT}/\n`,
  );
}
process.exit(exitCode);
