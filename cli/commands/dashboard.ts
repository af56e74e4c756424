import { Command } from 'commander';
import { positiveInt, runCommand } from '../context.ts';
import { startDashboard } from '../dashboard/server.ts';
import { createReader } from './status.ts';

/**
 * `adfleet dashboard [--port N] [--host H]`: the read-only web page over the same read
 * model as `adfleet status`, until Ctrl-C. Loopback unless told otherwise, and then only
 * with ADFLEET_DASHBOARD_TOKEN set.
 */
export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('Read-only web dashboard (overview, backfills, profiles, dead letters) until Ctrl-C')
    .option('--port <n>', 'port to listen on', positiveInt, 8_484)
    .option(
      '--host <host>',
      'address to bind; anything but loopback needs ADFLEET_DASHBOARD_TOKEN',
      '127.0.0.1',
    )
    .option('--refresh <seconds>', 'how often the open page refreshes itself', positiveInt, 3)
    .action((options: { port: number; host: string; refresh: number }) =>
      runCommand('dashboard', async (context) => {
        const reader = createReader(context, {});
        const token = context.config.ADFLEET_DASHBOARD_TOKEN;
        const dashboard = await startDashboard({
          reader,
          db: context.db(),
          jaegerUrl: context.config.ADFLEET_JAEGER_URL,
          host: options.host,
          port: options.port,
          refreshMs: options.refresh * 1000,
          ...(token === undefined ? {} : { token }),
        });
        process.stdout.write(
          `adfleet dashboard on ${dashboard.url}${token === undefined ? '' : ' (token required: open it once with ?token=…)'}\n`,
        );
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await dashboard.close();
        reader.close();
        return 'dashboard stopped';
      }),
    );
}
