import { FatalError } from '../../shared/errors.ts';
import { campaignCurrency } from './backfills/campaign-currency.ts';
import type { AnyBackfill } from './definition.ts';

/** Every backfill the messenger can run, by name. */
export type BackfillRegistry = ReadonlyMap<string, AnyBackfill>;

export function createRegistry(definitions: readonly AnyBackfill[]): BackfillRegistry {
  const registry = new Map<string, AnyBackfill>();
  for (const definition of definitions) {
    if (registry.has(definition.name)) throw new Error(`backfill "${definition.name}" is declared twice`);
    registry.set(definition.name, definition);
  }
  return registry;
}

export const BACKFILLS: BackfillRegistry = createRegistry([campaignCurrency]);

/** A job names a backfill this build does not have (removed, renamed): retrying cannot help. */
export class UnknownBackfillError extends FatalError {
  override readonly name = 'UnknownBackfillError';
}

export function backfillNamed(registry: BackfillRegistry, name: string): AnyBackfill {
  const definition = registry.get(name);
  if (definition === undefined) {
    throw new UnknownBackfillError(`no backfill named "${name}"; known: ${[...registry.keys()].join(', ')}`);
  }
  return definition;
}
