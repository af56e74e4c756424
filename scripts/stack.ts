/**
 * `npm run stack` / `npm run stack:down`: the local dependencies of the fleet.
 *
 * Where a Docker engine answers, the compose file in localstack/ is used. Everywhere else
 * (CI, dev machines without an engine) each service runs as a plain process on loopback,
 * installed on first use into `.tools/` (or from Debian packages) and reused afterwards:
 *
 *   AWS emulator  127.0.0.1:4566   LocalStack 4.14.0 without Docker, or moto (ADFLEET_EMULATOR)
 *   Postgres      127.0.0.1:5432   Debian package, data in .stack/postgres (as root: /var/lib/postgresql/adfleet-<checkout>)
 *   Redis         127.0.0.1:6379   Debian package
 *   Jaeger        127.0.0.1:4318 (OTLP/HTTP), 127.0.0.1:16686 (UI, query API)
 *   Ads sandbox   127.0.0.1:4580   sandbox/ads-api
 *   Chromium      /usr/bin/chromium  Debian package, for the dashboard's browser tests
 *
 * Idempotent: a service whose port already answers is left alone, so a second run returns
 * in seconds. It ends by applying the topology and the migrations and writing the
 * environment a worker needs to `.stack/env` (usable with `node --env-file=.stack/env`).
 *
 * It prints one line per service; what the tools it runs print (apt-get, initdb, pip, go
 * build, LocalStack's spec build) goes to `.stack/logs/<step>.log`, and a failing step's
 * error names its log and quotes the end of it.
 *
 * `node scripts/stack.ts ensure` (before `npm test`) returns at once when the stack's
 * environment is written and every service answers, and runs `up` otherwise.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../contract/config.ts';
import { resourceNames } from '../contract/topology.ts';
import { createAwsClients } from '../shared/aws.ts';
import { bootstrapTopology } from '../shared/bootstrap.ts';
import { migrate, runAdminStatement } from '../shared/db.ts';
import { readStackEnv, STACK_ENV_FILE } from './stack-env.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATE_DIR = join(ROOT, '.stack');
const TOOLS_DIR = join(ROOT, '.tools');
const LOG_DIR = join(STATE_DIR, 'logs');
const PID_DIR = join(STATE_DIR, 'pids');

const JAEGER_VERSION = 'v1.76.0';
const MOTO_VERSION = '5.2.1';
const HOST = '127.0.0.1';

const Emulator = { LocalStack: 'localstack', Moto: 'moto' } as const;
type Emulator = (typeof Emulator)[keyof typeof Emulator];

const PORTS = {
  emulator: 4566,
  postgres: 5432,
  redis: 6379,
  otlp: 4318,
  jaegerQuery: 16686,
  adsSandbox: 4580,
} as const;

const DATABASE_URL = `postgres://postgres@${HOST}:${PORTS.postgres}/adfleet`;

/** The environment a worker, the CLI and the tests need against this stack. */
function stackEnvironment(emulator: Emulator): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: `http://${HOST}:${PORTS.emulator}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    DATABASE_URL,
    REDIS_URL: `redis://${HOST}:${PORTS.redis}`,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${HOST}:${PORTS.otlp}`,
    ADFLEET_ADS_API_URL: `http://${HOST}:${PORTS.adsSandbox}`,
    ADFLEET_EMULATOR: emulator,
    ADFLEET_JAEGER_URL: `http://${HOST}:${PORTS.jaegerQuery}`,
  };
}

function log(message: string) {
  process.stdout.write(`stack: ${message}\n`);
}

/** The one line a service gets: name, where it listens, and what this run did about it. */
function serviceLine(service: string, where: string, state: string) {
  log(`${service.padEnd(13)} ${where.padEnd(52)} ${state}`);
}

const since = (startedAt: number) => `${((Date.now() - startedAt) / 1000).toFixed(1)} s`;

interface RunOptions {
  /** The log under .stack/logs/ that gets the command's output (stderr too). */
  readonly log: string;
  /** Return stdout instead of logging it (stderr still goes to the log). */
  readonly capture?: boolean;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Runs a tool with its output in .stack/logs/<log>.log, not on the terminal: a first run
 * installs packages and builds binaries, and their pages of output bury the one line that
 * matters. A failure names the log and quotes its end.
 */
function run(command: string, args: string[], options: RunOptions): string {
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = join(LOG_DIR, `${options.log}.log`);
  const fd = openSync(logFile, 'a');
  try {
    writeFileSync(fd, `\n$ ${command} ${args.join(' ')}\n`);
    const output = execFileSync(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', options.capture ? 'pipe' : fd, fd],
      encoding: 'utf8',
    });
    return output ?? '';
  } catch (error) {
    const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
    throw new Error(
      `${command} ${args.join(' ')} failed (${(error as Error).message.split('\n')[0]}); ` +
        `its output is in ${relative(ROOT, logFile)}, ending:\n${tail}`,
    );
  } finally {
    closeSync(fd);
  }
}

function commandExists(command: string) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function portOpen(port: number, host = HOST): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s; see ${LOG_DIR}`);
}

async function httpOk(url: string) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** Starts a long-running process detached from this one, logging to .stack/logs/<name>.log. */
function startDetached(name: string, command: string, args: string[], env: Record<string, string> = {}) {
  mkdirSync(LOG_DIR, { recursive: true });
  mkdirSync(PID_DIR, { recursive: true });
  const out = openSync(join(LOG_DIR, `${name}.log`), 'a');
  const child = spawn(command, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...env },
  });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  writeFileSync(join(PID_DIR, `${name}.pid`), String(child.pid));
  child.unref();
}

let aptUpdated = false;
function aptInstall(...packages: string[]) {
  log(`installing ${packages.join(', ')} (apt-get; output in .stack/logs/apt.log)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq'], { log: 'apt', env });
    aptUpdated = true;
  }
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { log: 'apt', env });
}

// ---------------------------------------------------------------- Chromium

/** Debian's Chromium: the dashboard tests drive it with playwright-core, which never downloads a browser. */
export const CHROMIUM = '/usr/bin/chromium';

function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  if (isRoot && commandExists('apt-get')) aptInstall('chromium');
  else log(`no ${CHROMIUM}: the dashboard tests need it (apt-get install chromium, as root)`);
}

// ---------------------------------------------------------------- Postgres

function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((version) => existsSync(join(base, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

const isRoot = process.getuid?.() === 0;

/**
 * Where the local database lives. As root the server runs as `postgres`, which may not be
 * able to reach a checkout under /root: then the data goes under postgres's own home, one
 * directory per checkout.
 */
function postgresDir(): string {
  if (!isRoot) return join(STATE_DIR, 'postgres');
  const checkout = createHash('sha256').update(ROOT).digest('hex').slice(0, 12);
  return join('/var/lib/postgresql', `adfleet-${checkout}`);
}

/** Postgres refuses to run as root: as root, the server runs as the `postgres` user. */
function asPostgresUser(command: string, args: string[]) {
  const options = { log: 'postgres-setup' };
  return isRoot
    ? run('runuser', ['-u', 'postgres', '--', command, ...args], options)
    : run(command, args, options);
}

async function startPostgres() {
  const startedAt = Date.now();
  let state = 'already up';
  if (!(await portOpen(PORTS.postgres))) {
    let bin = postgresBinDir();
    if (bin === undefined) {
      aptInstall('postgresql');
      bin = postgresBinDir();
      if (bin === undefined) throw new Error('postgresql installed but initdb not found');
    }
    const dir = postgresDir();
    const data = join(dir, 'data');
    mkdirSync(dir, { recursive: true });
    if (isRoot) run('chown', ['-R', 'postgres:postgres', dir], { log: 'postgres-setup' });
    state = 'started';
    if (!existsSync(join(data, 'PG_VERSION'))) {
      asPostgresUser(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
      state = 'created (initdb) and started';
    }
    // Durability settings are for a disposable local database: tests and benchmarks
    // compare approaches side by side on the same settings.
    const options = [
      `-c listen_addresses=${HOST}`,
      `-p ${PORTS.postgres}`,
      `-k ${dir}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=300',
      '-c shared_buffers=256MB',
    ].join(' ');
    asPostgresUser(join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-l',
      join(dir, 'postgres.log'),
      '-o',
      options,
      '-w',
      '-t',
      '60',
      'start',
    ]);
    state = `${state} in ${since(startedAt)}`;
  }
  await runAdminStatement(DATABASE_URL, 'CREATE DATABASE adfleet').catch((error: { code?: string }) => {
    if (error.code !== '42P04') throw error; // duplicate_database: it is there already
  });
  serviceLine('postgres', `${HOST}:${PORTS.postgres}`, state);
}

function stopPostgres() {
  const bin = postgresBinDir();
  if (bin === undefined) return;
  // Both places a cluster of this checkout may live (see postgresDir).
  for (const dir of new Set([postgresDir(), join(STATE_DIR, 'postgres')])) {
    const data = join(dir, 'data');
    if (!existsSync(join(data, 'postmaster.pid'))) continue;
    try {
      asPostgresUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {
      // Already stopped.
    }
  }
}

// ---------------------------------------------------------------- Redis

async function startRedis() {
  const startedAt = Date.now();
  let state = 'already up';
  if (!(await portOpen(PORTS.redis))) {
    if (!commandExists('redis-server')) aptInstall('redis-server');
    startDetached('redis', 'redis-server', [
      '--bind',
      HOST,
      '--port',
      String(PORTS.redis),
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
    ]);
    await waitFor('Redis', () => portOpen(PORTS.redis), 15_000);
    state = `started in ${since(startedAt)}`;
  }
  serviceLine('redis', `${HOST}:${PORTS.redis}`, state);
}

// ---------------------------------------------------------------- AWS emulator

/** Debian ships `venv`'s pip bootstrap (ensurepip) apart from python3 itself. */
function ensureVenvSupport(python: string) {
  try {
    execFileSync(python, ['-c', 'import ensurepip'], { stdio: 'ignore' });
  } catch {
    aptInstall('python3', 'python3-venv');
  }
}

function pythonVenv(name: string, python: string, install: (pip: string) => void) {
  const venv = join(TOOLS_DIR, name);
  const marker = join(venv, '.installed');
  if (!existsSync(marker)) {
    rmSync(venv, { recursive: true, force: true });
    mkdirSync(TOOLS_DIR, { recursive: true });
    log(`installing ${name} into ${relative(ROOT, venv)} (pip; output in .stack/logs/${name}.log)`);
    ensureVenvSupport(python);
    run(python, ['-m', 'venv', venv], { log: name });
    install(join(venv, 'bin', 'pip'));
    writeFileSync(marker, new Date().toISOString());
  }
  return venv;
}

/**
 * LocalStack 4.14.0's SQS and EventBridge code needs Python 3.13 (3.11 fails to import it,
 * 3.12 answers every SQS call with a 500): a python3.13+ on PATH or under pyenv.
 */
function python313(): string | undefined {
  const pyenv = join(process.env.HOME ?? '/root', '.pyenv', 'versions');
  const pyenvPythons = existsSync(pyenv)
    ? readdirSync(pyenv)
        .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
        .map((version) => join(pyenv, version, 'bin', 'python3'))
    : [];
  // Asked, not guessed: a pyenv shim answers `command -v` for versions it cannot run.
  return ['python3.14', 'python3.13', ...pyenvPythons, 'python3'].find((candidate) => {
    try {
      const answer = execFileSync(candidate, ['-c', 'import sys; print(sys.version_info >= (3, 13))'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      return answer.trim() === 'True';
    } catch {
      return false;
    }
  });
}

async function localStackReady(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/_localstack/health`, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return false;
    const { services = {} } = (await response.json()) as { services?: Record<string, string> };
    // With eager loading a service that failed to load says "error" instead of looking fine.
    return ['sqs', 'events', 'scheduler'].every((service) => services[service] === 'running');
  } catch {
    return false;
  }
}

async function startLocalStack(python: string, endpoint: string) {
  const venv = pythonVenv('localstack-venv', python, (pip) =>
    run(pip, ['install', '--no-deps', '-r', join(ROOT, 'localstack', 'requirements.txt')], {
      log: 'localstack-venv',
    }),
  );
  const root = join(STATE_DIR, 'localstack');
  mkdirSync(join(root, 'usr', 'lib', 'localstack'), { recursive: true });
  const env = {
    // This machine may carry a /.dockerenv: without this LocalStack believes it runs in a
    // container and ignores FILESYSTEM_ROOT.
    OVERRIDE_IN_DOCKER: '0',
    FILESYSTEM_ROOT: root,
    SERVICES: 'sqs,events,scheduler',
    GATEWAY_LISTEN: `${HOST}:${PORTS.emulator}`,
    LOCALSTACK_HOST: `${HOST}:${PORTS.emulator}`,
    SQS_ENDPOINT_STRATEGY: 'path',
    DNS_ADDRESS: '0',
    EAGER_SERVICE_LOADING: '1',
    SKIP_SSL_CERT_DOWNLOAD: '1',
    DISABLE_EVENTS: '1',
  };
  const catalogBuilt = readdirSync(join(root, 'usr', 'lib', 'localstack')).some((file) =>
    file.startsWith('service-catalog-'),
  );
  if (!catalogBuilt) {
    // Built once ahead of time: otherwise the first request builds it and the process
    // keeps ~500 MB instead of ~150 MB.
    run(join(venv, 'bin', 'python'), ['-m', 'localstack.aws.spec'], {
      log: 'localstack-venv',
      env: { ...process.env, ...env },
    });
  }
  startDetached('emulator', join(venv, 'bin', 'python'), ['-m', 'localstack.runtime.main'], env);
  await waitFor('LocalStack', () => localStackReady(endpoint), 120_000);
}

async function startMoto(endpoint: string) {
  const venv = pythonVenv('moto-venv', 'python3', (pip) =>
    run(pip, ['install', `moto[server]==${MOTO_VERSION}`], { log: 'moto-venv' }),
  );
  startDetached('emulator', join(venv, 'bin', 'moto_server'), ['-H', HOST, '-p', String(PORTS.emulator)]);
  await waitFor('moto', () => httpOk(`${endpoint}/moto-api/`), 60_000);
}

async function startEmulator(wanted: Emulator): Promise<Emulator> {
  const startedAt = Date.now();
  const endpoint = `http://${HOST}:${PORTS.emulator}`;
  const where = `${endpoint} (SQS, EventBridge, Scheduler)`;
  if (await portOpen(PORTS.emulator)) {
    const running = await runningEmulator(wanted);
    serviceLine(`aws emulator`, where, `already up (${running})`);
    return running;
  }
  let emulator: Emulator = Emulator.Moto;
  let python: string | undefined;
  if (wanted === Emulator.LocalStack) python = python313();
  if (python !== undefined) {
    await startLocalStack(python, endpoint);
    emulator = Emulator.LocalStack;
  } else {
    if (wanted === Emulator.LocalStack) {
      log('LocalStack 4.14.0 needs Python 3.13 and none was found: using moto instead');
    }
    await startMoto(endpoint);
  }
  serviceLine('aws emulator', where, `started ${emulator} in ${since(startedAt)}`);
  return emulator;
}

// ---------------------------------------------------------------- Jaeger

/** The Go toolchain: `go` on PATH, else the official tarball's place (not on every PATH). */
function goBinary(): string {
  const candidates = ['go', '/usr/local/go/bin/go'];
  const found = candidates.find((candidate) => {
    try {
      execFileSync(candidate, ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (found === undefined) {
    throw new Error(
      `Jaeger is built from the Go module proxy, but no Go toolchain was found (tried ${candidates.join(', ')}). ` +
        'Install Go 1.24+ or start Jaeger yourself with OTLP/HTTP on 127.0.0.1:4318.',
    );
  }
  return found;
}

/**
 * Jaeger's module has replace directives, so `go install …@version` refuses it; the
 * module is fetched from the Go module proxy and built as the main module instead.
 */
function buildJaeger(binary: string) {
  const go = goBinary();
  const work = join(TOOLS_DIR, 'jaeger-build');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  log(
    `building Jaeger ${JAEGER_VERSION} from the Go module proxy (once; a few minutes; output in .stack/logs/jaeger-build.log)`,
  );
  const options = { log: 'jaeger-build' };
  const download = JSON.parse(
    run(go, ['mod', 'download', '-json', `github.com/jaegertracing/jaeger@${JAEGER_VERSION}`], {
      ...options,
      capture: true,
    }),
  ) as { Dir: string };
  const source = join(work, 'src');
  run('cp', ['-r', download.Dir, source], options);
  run('chmod', ['-R', 'u+w', source], options);
  run(go, ['build', '-o', binary, './cmd/jaeger'], {
    ...options,
    cwd: source,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
  });
  rmSync(work, { recursive: true, force: true });
}

async function startJaeger() {
  const startedAt = Date.now();
  let state = 'already up';
  if (!(await portOpen(PORTS.otlp))) {
    const binary = join(TOOLS_DIR, 'bin', 'jaeger');
    if (!existsSync(binary)) buildJaeger(binary);
    startDetached('jaeger', binary, [], { JAEGER_LISTEN_HOST: HOST });
    await waitFor('Jaeger', () => httpOk(`http://${HOST}:${PORTS.jaegerQuery}/api/services`), 60_000);
    state = `started in ${since(startedAt)}`;
  }
  serviceLine('jaeger', `${HOST}:${PORTS.otlp} (OTLP), UI http://${HOST}:${PORTS.jaegerQuery}`, state);
}

// ---------------------------------------------------------------- Ads API sandbox

async function startAdsSandbox() {
  const startedAt = Date.now();
  let state = 'already up';
  const main = join(ROOT, 'sandbox', 'ads-api', 'main.ts');
  if (!(await portOpen(PORTS.adsSandbox))) {
    startDetached('ads-sandbox', process.execPath, [main], {
      ADFLEET_SANDBOX_PORT: String(PORTS.adsSandbox),
    });
    await waitFor('Ads API sandbox', () => portOpen(PORTS.adsSandbox), 30_000);
    state = `started in ${since(startedAt)}`;
  }
  serviceLine('ads sandbox', `http://${HOST}:${PORTS.adsSandbox}`, state);
}

// ---------------------------------------------------------------- up / down

function dockerEngineReachable() {
  if (process.env.ADFLEET_STACK_DOCKER === '0' || !commandExists('docker')) return false;
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Which emulator answers on the port: a running one is reused whatever the setting says. */
async function runningEmulator(fallback: Emulator): Promise<Emulator> {
  const endpoint = `http://${HOST}:${PORTS.emulator}`;
  if (await httpOk(`${endpoint}/_localstack/health`)) return Emulator.LocalStack;
  if (await httpOk(`${endpoint}/moto-api/`)) return Emulator.Moto;
  return fallback;
}

function selectedEmulator(): Emulator {
  const value = process.env.ADFLEET_EMULATOR ?? Emulator.LocalStack;
  if (value !== Emulator.LocalStack && value !== Emulator.Moto) {
    throw new Error(`ADFLEET_EMULATOR must be "localstack" or "moto", not "${value}"`);
  }
  return value;
}

async function up() {
  const started = Date.now();
  mkdirSync(STATE_DIR, { recursive: true });
  let emulator = selectedEmulator();
  if (dockerEngineReachable()) {
    emulator = Emulator.LocalStack;
    const compose = join(ROOT, 'localstack', 'docker-compose.yml');
    run('docker', ['compose', '-f', compose, 'up', '-d', '--wait'], { log: 'docker-compose' });
    serviceLine('docker', relative(ROOT, compose), 'up (LocalStack, Jaeger, Postgres, Redis)');
  } else {
    // Sequential on purpose: installs share apt's lock and the machine's two cores.
    await startPostgres();
    await startRedis();
    emulator = await startEmulator(emulator);
    await startJaeger();
  }
  await startAdsSandbox();
  ensureChromium();

  const env = stackEnvironment(emulator);
  const { applied } = await migrate(env.DATABASE_URL as string);
  serviceLine(
    'migrations',
    'database adfleet',
    applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`,
  );

  // The workers' own config, so the topology gets the names they will look for.
  Object.assign(process.env, env);
  const config = loadConfig();
  const clients = createAwsClients(config);
  const topologyLog: string[] = [];
  try {
    await bootstrapTopology(clients, resourceNames(config.ADFLEET_RESOURCE_PREFIX), (line) =>
      topologyLog.push(line),
    );
  } finally {
    clients.destroy();
  }
  mkdirSync(LOG_DIR, { recursive: true });
  writeFileSync(join(LOG_DIR, 'topology.log'), `${topologyLog.join('\n')}\n`);
  serviceLine(
    'topology',
    `prefix ${config.ADFLEET_RESOURCE_PREFIX}`,
    `${topologyLog.length} resources in place (.stack/logs/topology.log)`,
  );

  const lines = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  writeFileSync(STACK_ENV_FILE, `${lines.join('\n')}\n`);
  log(`ready in ${since(started)}; environment in .stack/env (node --env-file=.stack/env …)`);
}

/**
 * Before `npm test`: nothing to do when the environment is written and every service
 * answers (a second `up` would also be quick, but would re-apply the topology each run);
 * the whole `up` otherwise, so that a fresh clone's `npm test` brings its stack itself. A
 * caller that points the tests elsewhere (AWS_ENDPOINT_URL, DATABASE_URL and REDIS_URL all
 * set) is left alone.
 */
async function ensure() {
  const aimedElsewhere = ['AWS_ENDPOINT_URL', 'DATABASE_URL', 'REDIS_URL'].every(
    (key) => (process.env[key] ?? '') !== '',
  );
  if (aimedElsewhere) {
    log('AWS_ENDPOINT_URL, DATABASE_URL and REDIS_URL are set: using those, not the local stack');
    return;
  }
  const written = Object.keys(readStackEnv()).length > 0;
  const answering = await Promise.all(Object.values(PORTS).map((port) => portOpen(port)));
  if (written && answering.every(Boolean)) {
    log('local stack is up (npm run stack to re-check it; .stack/env)');
    return;
  }
  log('local stack not up: starting it (npm run stack)');
  await up();
}

function down() {
  if (dockerEngineReachable()) {
    run('docker', ['compose', '-f', join(ROOT, 'localstack', 'docker-compose.yml'), 'down'], {
      log: 'docker-compose',
    });
  }
  stopPostgres();
  if (existsSync(PID_DIR)) {
    for (const file of readdirSync(PID_DIR)) {
      const pid = Number(readFileSync(join(PID_DIR, file), 'utf8'));
      try {
        // The group: LocalStack and moto start children of their own.
        process.kill(-pid, 'SIGTERM');
        log(`stopped ${file.replace(/\.pid$/, '')}`);
      } catch {
        // Already gone.
      }
      rmSync(join(PID_DIR, file));
    }
  }
  log('down');
}

const command = process.argv[2] ?? 'up';
if (import.meta.main) {
  if (command === 'up') {
    await up();
  } else if (command === 'ensure') {
    await ensure();
  } else if (command === 'down') {
    down();
  } else {
    process.stderr.write('usage: node scripts/stack.ts up|ensure|down\n');
    process.exit(2);
  }
}
