#!/usr/bin/env node
// The operator CLI. Telemetry first, so a command's span is the root of the workflow's trace.
import '../shared/telemetry/start.ts';

const { Command } = await import('commander');
const { backfillCommand } = await import('./commands/backfill.ts');
const { bulkCommand } = await import('./commands/bulk.ts');
const { dbCommand } = await import('./commands/db.ts');
const { dlqCommand } = await import('./commands/dlq.ts');
const { statusCommand } = await import('./commands/status.ts');
const { dashboardCommand } = await import('./commands/dashboard.ts');
const { syncCommand } = await import('./commands/sync.ts');
const { runCommand } = await import('./context.ts');

const program = new Command('adfleet')
  .description('Operate the adfleet workers: bulk jobs, backfills, syncs, dead letters')
  .showHelpAfterError();

program.addCommand(statusCommand());
program.addCommand(dashboardCommand());
program.addCommand(bulkCommand());
program.addCommand(backfillCommand());
program.addCommand(dlqCommand());
program.addCommand(dbCommand());
program.addCommand(syncCommand());

program
  .command('sync-all')
  .description('Ask profile-sync to sync every profile now (what the nightly schedule does)')
  .action(() =>
    runCommand('sync-all', async ({ messenger }) => {
      await messenger.publish('SyncAllProfilesRequested', { reason: 'operator' });
      return 'SyncAllProfilesRequested published';
    }),
  );

await program.parseAsync(process.argv);
