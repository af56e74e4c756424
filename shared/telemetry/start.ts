/**
 * Telemetry for one process, started BEFORE any instrumented module is imported.
 *
 * Worker entrypoints import this module first and load everything else with dynamic
 * `import()` afterwards (`workers/<name>/main.ts`), which is what `node --import` would do,
 * while keeping the stable start command `node workers/<name>/main.ts`.
 *
 * ESM modules are patched through import-in-the-middle's loader hook; the message channel
 * limits the hook to the modules an instrumentation asked for (aws-sdk, pg, ioredis,
 * undici), so the fleet's own TypeScript files load untouched.
 */
import { register } from 'node:module';
import { createAddHookMessageChannel } from 'import-in-the-middle';

const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);

const { startTelemetry } = await import('./sdk.ts');
export const telemetry = startTelemetry();
await waitForAllMessagesAcknowledged();
