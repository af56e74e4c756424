import { Command } from 'commander';

/** `adfleet backfill …` — placeholder until the backfill engine lands. */
export function backfillCommand(): Command {
  return new Command('backfill').description(
    'Production-safe backfills (start, pause, resume, cancel, status, list)',
  );
}
