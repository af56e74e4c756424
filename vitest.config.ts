import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // leak-check: a file that leaves a worker, pool, client or server open fails.
    setupFiles: ['test/support/setup-env.ts', 'test/support/leak-check.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files run in parallel, each with its own queues, database and Redis prefix.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: '.stack/test-results.json' }]],
  },
});
