import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type IConfiguration, type ICruiseResult } from 'dependency-cruiser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/processes.ts';

/**
 * The layer rules (.dependency-cruiser.cjs, run over the repository by `npm run deps` in
 * `npm test`) catch each wrong-way import: a throwaway tree with the repository's folder
 * names holds one of each, and the cruiser must name every rule.
 */

const config = createRequire(import.meta.url)(join(REPO_ROOT, '.dependency-cruiser.cjs')) as IConfiguration;

async function cruiseTree(root: string, files: Record<string, string>): Promise<ICruiseResult> {
  await mkdir(root, { recursive: true });
  // The packages the rules name (zod, pg, aws-cdk-lib) resolve as they do in the repository.
  await symlink(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  for (const [path, source] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), source);
  }
  const { output } = await cruise(
    ['.'],
    { ...config.options, ruleSet: { forbidden: config.forbidden ?? [] }, validate: true, baseDir: root },
    { extensions: ['.ts', '.js', '.cjs', '.mjs', '.json'] },
  );
  return output as ICruiseResult;
}

const violated = (result: ICruiseResult) =>
  result.summary.violations.map((violation) => `${violation.rule.name}: ${violation.from} → ${violation.to}`);

describe('layer rules', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'adfleet-layers-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('pass a tree whose imports all point down', async () => {
    const result = await cruiseTree(join(root, 'down'), {
      'contract/events.ts': "import { z } from 'zod';\nexport const Event = z.object({});\n",
      'shared/messaging/messenger.ts': "import '../../contract/events.ts';\nimport 'pg';\n",
      'domain/bulk/model.ts': "import '../../shared/messaging/messenger.ts';\n",
      'workers/bulk-item/worker.ts': "import '../../domain/bulk/model.ts';\nimport './handlers.ts';\n",
      'workers/bulk-item/handlers.ts': "import type { Event } from '../../contract/events.ts';\n",
      'cli/main.ts': "import '../workers/bulk-item/worker.ts';\n",
      'infra/app.ts': "import 'aws-cdk-lib';\nimport '../contract/events.ts';\nimport 'node:fs';\n",
      'bench/main.ts': "import '../test/support/load.ts';\nimport '../workers/bulk-item/worker.ts';\n",
      'test/support/load.ts': "import '../../shared/messaging/messenger.ts';\n",
      'test/workers/bulk-item.test.ts': "import '../support/load.ts';\nimport '../../cli/main.ts';\n",
    });
    expect(violated(result)).toEqual([]);
    expect(result.summary.totalCruised).toBeGreaterThanOrEqual(10);
  });

  it('name every rule for one wrong-way import each, type-only imports included', async () => {
    const result = await cruiseTree(join(root, 'wrong'), {
      'contract/topology.ts': "import '../shared/db.ts';\n",
      'contract/events.ts': "import 'pg';\n",
      'contract/queues.ts': "import './missing.ts';\n",
      'shared/db.ts': "import type { Handler } from '../workers/bulk-item/worker.ts';\n",
      'shared/a.ts': "import './b.ts';\n",
      'shared/b.ts': "import type { A } from './a.ts';\n",
      'domain/bulk/model.ts': "import '../../cli/main.ts';\n",
      'workers/bulk-item/worker.ts': "import '../profile-sync/sync.ts';\n",
      'workers/profile-sync/sync.ts': "import '../../test/support/env.ts';\n",
      'cli/main.ts': "import '../bench/main.ts';\n",
      'infra/app.ts': "import '../shared/db.ts';\n",
      'bench/main.ts': "import '../test/workers/bulk-item.test.ts';\n",
      'test/support/env.ts': '',
      'test/workers/bulk-item.test.ts': "import '../../bench/main.ts';\n",
    });
    const found = violated(result);
    const expected = [
      'contract-stands-alone: contract/topology.ts → shared/db.ts',
      'contract-needs-only-zod: contract/events.ts → node_modules/pg/esm/index.mjs',
      'no-unresolvable: contract/queues.ts → ./missing.ts',
      'shared-below-domain: shared/db.ts → workers/bulk-item/worker.ts',
      'domain-below-workers: domain/bulk/model.ts → cli/main.ts',
      'no-worker-imports-another: workers/bulk-item/worker.ts → workers/profile-sync/sync.ts',
      'workers-below-tooling: workers/profile-sync/sync.ts → test/support/env.ts',
      'nothing-on-test: workers/profile-sync/sync.ts → test/support/env.ts',
      'cli-below-tooling: cli/main.ts → bench/main.ts',
      'infra-only-on-contract: infra/app.ts → shared/db.ts',
      'bench-only-on-test-support: bench/main.ts → test/workers/bulk-item.test.ts',
      'test-not-on-bench: test/workers/bulk-item.test.ts → bench/main.ts',
      'no-cycles: shared/a.ts → shared/b.ts',
    ];
    for (const violation of expected) expect(found, violation).toContain(violation);
    // Every rule in the configuration is shown to catch something.
    const rules = new Set(result.summary.violations.map((violation) => violation.rule.name));
    expect([...rules].sort()).toEqual((config.forbidden ?? []).map((rule) => rule.name).sort());
  });
});
