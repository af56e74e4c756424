/**
 * `npm run bench`: every benchmark, each printing its variants side by side from one run.
 * Needs the local stack (`npm run stack`); choose a subset with `npm run bench -- queue ads`.
 */
import { runAdsRateLimitBench } from './ads-rate-limit.ts';
import { runBackfillBench } from './backfill.ts';
import { runBulkBench } from './bulk.ts';
import { runCapacityBench } from './capacity.ts';
import { runQueueWorkerBench } from './queue-worker.ts';
import { runStatusBench } from './status.ts';
import { benchEnv } from './support.ts';
import { runSyncBench } from './sync.ts';

const benches: Record<string, () => Promise<void>> = {
  queue: runQueueWorkerBench,
  ads: runAdsRateLimitBench,
  backfill: runBackfillBench,
  status: runStatusBench,
  bulk: runBulkBench,
  capacity: runCapacityBench,
  sync: runSyncBench,
};

benchEnv(); // fails early, with what to do, when the stack is not up
const selected = process.argv.slice(2);
for (const name of selected) {
  if (!(name in benches))
    throw new Error(`unknown benchmark "${name}"; known: ${Object.keys(benches).join(', ')}`);
}
for (const [name, run] of Object.entries(benches)) {
  if (selected.length > 0 && !selected.includes(name)) continue;
  const started = Date.now();
  await run();
  process.stdout.write(`(${name}: ${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
}
