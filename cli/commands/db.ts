import { Command } from 'commander';
import { migrate } from '../../shared/db.ts';
import { runCommand } from '../context.ts';

/** `adfleet db migrate`: apply pending migrations (run once per release, before the workers). */
export function dbCommand(): Command {
  const db = new Command('db').description('Database schema');
  db.command('migrate')
    .description('Apply pending migrations (advisory-locked: safe to run from several places)')
    .action(() =>
      runCommand('db migrate', async ({ config }) => {
        const { applied } = await migrate(config.DATABASE_URL);
        return applied.length === 0 ? 'schema up to date' : `applied: ${applied.join(', ')}`;
      }),
    );
  return db;
}
