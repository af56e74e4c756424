import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';

/** A newcomer's first commands: the Node check before anything runs, pinned images. */

const CHECK = join(REPO_ROOT, 'scripts', 'check-node.cjs');
const wantedMajor = Number(readFileSync(join(REPO_ROOT, '.nvmrc'), 'utf8').trim());
const scripts = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts;

/** A Node older than .nvmrc on this machine (Debian's, as on a fresh CI machine), if any. */
function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim();
      if (Number(version.replace(/^v/, '').split('.')[0]) < wantedMajor) return candidate;
    } catch {
      // not there
    }
  }
  return undefined;
}

describe('the Node version check', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'adfleet-node-check-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('passes on the Node in .nvmrc', () => {
    const result = spawnSync(process.execPath, [CHECK], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('stops an older Node and names the fix', () => {
    // The same script beside a .nvmrc asking for a Node newer than this one.
    mkdirSync(join(scratch, 'scripts'));
    copyFileSync(CHECK, join(scratch, 'scripts', 'check-node.cjs'));
    writeFileSync(join(scratch, '.nvmrc'), '99\n');
    const result = spawnSync(process.execPath, [join(scratch, 'scripts', 'check-node.cjs')], {
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `adfleet needs Node.js 99 (the version in .nvmrc); this is Node.js ${process.versions.node}`,
    );
    expect(result.stderr).toContain('nvm use');
  });

  it('runs before every npm script that starts TypeScript', () => {
    const startsTypeScript = Object.entries(scripts).filter(
      ([name, command]) =>
        !name.startsWith('pre') && (/\bnode \S+\.ts\b/.test(command) || /cdk synth|vitest/.test(command)),
    );
    expect(startsTypeScript.map(([name]) => name).sort()).toEqual(
      ['bench', 'cdk:synth', 'demo', 'drill', 'stack', 'stack:down', 'test'].sort(),
    );
    for (const [name] of startsTypeScript) {
      expect(scripts[`pre${name}`], `pre${name}`).toMatch(/^node scripts\/check-node\.cjs( &&|$)/);
    }
  });

  // Debian's Node 20 is on every machine of this kind (it installs Node 24 from it): the
  // check must itself run there, through npm, before the TypeScript entrypoint fails.
  const older = olderNode();
  it.runIf(older !== undefined)('is what `npm run demo` prints on an older Node', () => {
    const result = spawnSync('npm', ['run', 'demo'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { PATH: `${join(older as string, '..')}:/usr/bin:/bin`, HOME: process.env.HOME ?? '/tmp' },
    });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`adfleet needs Node.js ${wantedMajor}`);
    expect(result.stderr).toContain('nvm use');
    expect(`${result.stdout}${result.stderr}`).not.toContain('ERR_UNKNOWN_FILE_EXTENSION');
  });
});

describe('the Docker stack', () => {
  it('pins every image to an exact tag', () => {
    const compose = readFileSync(join(REPO_ROOT, 'localstack', 'docker-compose.yml'), 'utf8');
    const images = [...compose.matchAll(/^\s*image:\s*(\S+)\s*$/gm)].map((match) => match[1] as string);
    expect(images).toHaveLength(4);
    for (const image of images) expect(image, image).toMatch(/:\d+\.\d+(\.\d+)?$/);
  });
});
