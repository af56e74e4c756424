import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './processes.ts';

/**
 * The leak check (leak-check.ts, a setup file of every test file) fails a file that leaves
 * a pg pool, a Redis client or a worker process open, and passes one that closes what it
 * opened: vitest runs the files in test/fixtures/leaks/ in a process of its own.
 */
describe('the leak check', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'adfleet-leaks-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('fails each file that leaves something open, naming it, and passes the clean one', () => {
    const report = join(scratch, 'report.json');
    const run = spawnSync(
      process.execPath,
      [
        join(REPO_ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
        'run',
        '--config',
        'test/fixtures/leaks/vitest.config.ts',
        '--outputFile',
        report,
      ],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 50_000 },
    );
    expect(run.status, run.stderr).toBe(1);
    const { testResults } = JSON.parse(readFileSync(report, 'utf8')) as {
      testResults: Array<{ name: string; status: string; message: string }>;
    };
    const byFile = Object.fromEntries(
      testResults.map((result) => [
        result.name.split('/').pop(),
        { status: result.status, message: result.message },
      ]),
    );
    expect(byFile['clean.leak.ts']).toEqual({ status: 'passed', message: '' });
    expect(byFile['pool.leak.ts']?.status).toBe('failed');
    expect(byFile['pool.leak.ts']?.message).toMatch(
      /Postgres connection to 127\.0\.0\.1:5432: end the pg pool/,
    );
    expect(byFile['redis.leak.ts']?.status).toBe('failed');
    expect(byFile['redis.leak.ts']?.message).toMatch(
      /Redis connection to 127\.0\.0\.1:6379: quit the Redis client/,
    );
    expect(byFile['process.leak.ts']?.status).toBe('failed');
    expect(byFile['process.leak.ts']?.message).toMatch(
      /child process workers\/bulk-item\/main\.ts .* still running/,
    );
  });
});
