// The layers of adfleet, checked by `npm run deps` (part of `npm test`). Layers point down
// only: contract → shared → domain → workers → cli, scripts, bench. infra/ stands beside
// them on contract/ alone; test/ sits on top of everything and nothing sits on it.
//
// Type-only imports count like any other: they are erased at run time, but a type the
// chassis takes from a worker is still the chassis knowing the worker, and a cycle through
// types is as hard to pull apart as one through values.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'contract-stands-alone',
      comment:
        'contract/ (topology, event catalog, config schema, metric names) imports nothing of the project but itself, so infra/ can load it without the runtime.',
      severity: 'error',
      from: { path: '^contract/' },
      to: { path: '^(shared|domain|workers|cli|scripts|bench|sandbox|infra|test)/' },
    },
    {
      name: 'contract-needs-only-zod',
      comment: 'contract/ loads no library but zod: synth must not pull in the SDKs or OpenTelemetry.',
      severity: 'error',
      from: { path: '^contract/' },
      to: {
        path: 'node_modules/',
        pathNot: 'node_modules/zod/',
      },
    },
    {
      name: 'infra-only-on-contract',
      comment: 'infra/ (the CDK app) imports contract/ and the CDK libraries only, never the runtime.',
      severity: 'error',
      from: { path: '^infra/' },
      to: {
        dependencyTypesNot: ['core'],
        pathNot: ['^(infra|contract)/', 'node_modules/(aws-cdk-lib|constructs|zod)/'],
      },
    },
    {
      name: 'shared-below-domain',
      comment: 'shared/ is the chassis: it knows no domain module, worker, CLI or tool.',
      severity: 'error',
      from: { path: '^shared/' },
      to: { path: '^(domain|workers|cli|scripts|bench|sandbox|infra|test)/' },
    },
    {
      name: 'domain-below-workers',
      comment:
        'A domain module is shared by workers, the CLI and the dashboard: it imports contract/ and shared/ only.',
      severity: 'error',
      from: { path: '^domain/' },
      to: { path: '^(workers|cli|scripts|bench|sandbox|infra|test)/' },
    },
    {
      name: 'workers-below-tooling',
      comment:
        'A worker ships in the image: it imports no CLI, script, benchmark, sandbox, infra or test code.',
      severity: 'error',
      from: { path: '^workers/' },
      to: { path: '^(cli|scripts|bench|sandbox|infra|test)/' },
    },
    {
      name: 'no-worker-imports-another',
      comment:
        "No worker imports another worker's folder: what two workers share belongs in domain/ or shared/.",
      severity: 'error',
      from: { path: '^workers/([^/]+)/' },
      to: { path: '^workers/', pathNot: '^workers/$1/' },
    },
    {
      name: 'cli-below-tooling',
      comment: 'The CLI ships in the image: it imports no script, benchmark, sandbox, infra or test code.',
      severity: 'error',
      from: { path: '^cli/' },
      to: { path: '^(scripts|bench|sandbox|infra|test)/' },
    },
    {
      name: 'test-not-on-bench',
      comment: 'Tests do not import benchmarks: what both need lives in test/support/, shared/ or sandbox/.',
      severity: 'error',
      from: { path: '^test/' },
      to: { path: '^bench/' },
    },
    {
      name: 'nothing-on-test',
      comment: 'The product and its tooling never import test code.',
      severity: 'error',
      from: { pathNot: '^(test|bench)/' },
      to: { path: '^test/' },
    },
    {
      name: 'bench-only-on-test-support',
      comment:
        'Benchmarks may drive the processes tests drive (test/support/, e.g. the Ads load worker), never a test file.',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/', pathNot: '^test/support/' },
    },
    {
      name: 'no-cycles',
      comment: 'No import cycles, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable',
      comment: 'Every import resolves to a file or an installed package.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // TypeScript 7 has no JavaScript API yet, which dependency-cruiser's tsc parser needs;
    // swc reads the same sources and reports type-only imports as well (so no
    // tsPreCompilationDeps, which would ask for tsc).
    parser: 'swc',
    // Keep node_modules/ paths as they appear from the checkout (a worktree may link it).
    preserveSymlinks: true,
    doNotFollow: { path: 'node_modules/' },
    // Resolve packages as Node does for ESM (node-pg-migrate, for one, exports only 'import').
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'] },
    exclude: { path: '^(\\.tools|\\.stack|\\.git|infra/cdk\\.out)/' },
  },
};
