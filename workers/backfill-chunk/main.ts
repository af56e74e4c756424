// Telemetry first: everything after it is loaded through the instrumentation hook.
import '../../shared/telemetry/start.ts';

const { runWorker } = await import('../../shared/runtime/run-worker.ts');
const { backfillChunkWorker } = await import('./worker.ts');
await runWorker(backfillChunkWorker);
