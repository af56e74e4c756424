import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/processes.ts';
import { SECRET_ARNS, synthesizeFleet } from './fleet-template.ts';

/**
 * The real `cdk synth`, as a deploying engineer runs it from infra/: the CLI runs
 * `node app.ts` (infra/cdk.json) and writes the cloud assembly. No Docker image is built
 * (synth only stages the build context), no AWS account is needed.
 */

const run = promisify(execFile);
const REGION = 'eu-west-1';

let outdir: string;
let cliTemplate: Record<string, unknown>;
afterAll(() => rmSync(outdir, { recursive: true, force: true }));
beforeAll(async () => {
  outdir = mkdtempSync(path.join(tmpdir(), 'adfleet-cdk-cli-'));
  const context = Object.entries(SECRET_ARNS).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
  // No emulator endpoints or credentials from the test environment, no instance metadata
  // probing, and this Node (24) first on PATH, since the app is `node app.ts`.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
  await run(
    process.execPath,
    [
      path.join(REPO_ROOT, 'node_modules/aws-cdk/bin/cdk'),
      'synth',
      '--quiet',
      '--no-notices',
      '--no-version-reporting',
      // Construct paths and asset paths in metadata are for the console and SAM; the
      // in-process synth omits them.
      '--no-path-metadata',
      '--no-asset-metadata',
      '--output',
      outdir,
      ...context,
    ],
    {
      cwd: path.join(REPO_ROOT, 'infra'),
      env: {
        ...env,
        AWS_EC2_METADATA_DISABLED: 'true',
        // The CLI passes it to the app as CDK_DEFAULT_REGION; no credentials, so no account.
        AWS_REGION: REGION,
        PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
      },
      timeout: 90_000,
    },
  );
  cliTemplate = JSON.parse(readFileSync(path.join(outdir, 'adfleet-fleet.template.json'), 'utf8'));
}, 120_000);

describe('cdk synth (the CLI)', () => {
  it('writes a template equal to the in-process synthesis the other tests assert on', () => {
    const { template } = synthesizeFleet({ ...SECRET_ARNS }, { region: REGION });
    // Asset hashes follow the sources, which other work may change between the two synths;
    // what the image contains is checked below.
    const withoutHashes = (value: unknown) =>
      JSON.parse(JSON.stringify(value).replace(/[0-9a-f]{64}/g, '<hash>'));
    expect(withoutHashes(cliTemplate)).toEqual(withoutHashes(template.toJSON()));
    Template.fromJSON(cliTemplate).resourceCountIs('AWS::ECS::Service', 3);
  });

  it('stages the worker image build context with only what the image needs', () => {
    const assets = JSON.parse(readFileSync(path.join(outdir, 'adfleet-fleet.assets.json'), 'utf8')) as {
      dockerImages: Record<string, { source: { directory: string } }>;
    };
    const images = Object.values(assets.dockerImages);
    // One image for all three workers.
    expect(images).toHaveLength(1);
    const context = readdirSync(path.join(outdir, images[0]?.source.directory ?? 'missing')).sort();
    // The layers the workers and the CLI run on (contract → shared → domain → workers, cli).
    const layers = ['contract', 'shared', 'domain', 'workers', 'cli'].filter((dir) =>
      existsSync(path.join(REPO_ROOT, dir)),
    );
    expect(context).toEqual(
      ['.dockerignore', 'Dockerfile', 'package-lock.json', 'package.json', ...layers].sort(),
    );
  });
});
