import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { Parser } from 'csv-parse';
import { MARKETPLACES, type Marketplace } from '../../shared/ads/marketplaces.ts';
import { ENTITY_TYPES, EntityType } from './status.ts';

/**
 * What a bulk file holds and how each row is checked. One row is one change of one entity:
 *
 *   profile_id   the Amazon Ads profile the entity belongs to (required)
 *   entity_type  `keyword` or `campaign` (required)
 *   entity_id    Amazon's numeric id of the keyword or campaign (required)
 *   bid          keywords only: the new bid, in the marketplace's currency, at most 2 decimals
 *   budget       campaigns only: the new daily budget, at most 2 decimals
 *   state        `ENABLED` or `PAUSED` (archiving is not a bulk change)
 *
 * Each row changes at least one of bid/budget/state. A CSV file has these names as its
 * header (any subset that includes the three required ones, in any order); a JSON file is
 * JSON Lines (one object per line with these keys) or a JSON array of such objects.
 */

export const REQUIRED_COLUMNS = ['profile_id', 'entity_type', 'entity_id'] as const;
export const CHANGE_COLUMNS = ['bid', 'budget', 'state'] as const;
export const COLUMNS: readonly string[] = [...REQUIRED_COLUMNS, ...CHANGE_COLUMNS];
const EDITABLE_STATES = new Set(['ENABLED', 'PAUSED']);
/** A JSON array is parsed whole; past this size the file must be JSON Lines (streamed). */
export const MAX_JSON_ARRAY_BYTES = 64 * 1024 * 1024;

export interface KeywordChange {
  readonly bid?: number;
  readonly state?: 'ENABLED' | 'PAUSED';
}
export interface CampaignChange {
  readonly budget?: number;
  readonly state?: 'ENABLED' | 'PAUSED';
}

export interface BulkRow {
  readonly line: number;
  readonly profileId: number;
  readonly entityType: EntityType;
  readonly entityId: string;
  readonly change: KeywordChange | CampaignChange;
}

export interface RowError {
  /** CSV and JSON Lines: the file's line; JSON array: the entry's position (1-based). */
  readonly line: number;
  readonly reason: string;
}

/** A record's values as read from the file, before checking; absent columns are undefined. */
export interface FieldValues {
  readonly profile_id: unknown;
  readonly entity_type: unknown;
  readonly entity_id: unknown;
  readonly bid: unknown;
  readonly budget: unknown;
  readonly state: unknown;
}

/** A raw record as read from the file, before checking. */
export interface RawRecord {
  readonly line: number;
  readonly fields: FieldValues;
}

export type FileFormat = 'csv' | 'jsonl' | 'json-array';

/** Receives each record as it is read, synchronously. */
export type RecordVisitor = (record: RawRecord | RowError) => void;

/**
 * Reads a file's records and hands each to `visit` as it is read; after each chunk of the
 * file, `betweenChunks` is awaited (the caller's back-pressure). Records are visited, not
 * yielded: handing a million records over one by one through an async iterator cost more
 * than checking them, and a record that dies in the call that made it never leaves the
 * young generation (batches of them did, and grew the heap). A structural problem (bad CSV
 * quoting, bad JSON, a column the file may not have) is a RowError.
 */
export async function readRecords(
  path: string,
  visit: RecordVisitor,
  betweenChunks: () => Promise<void> = async () => {},
): Promise<void> {
  const extension = extname(path).toLowerCase();
  if (extension === '.csv') return readCsv(path, visit, betweenChunks);
  if (extension === '.jsonl' || extension === '.ndjson' || extension === '.json') {
    let count = 0;
    for await (const record of readJson(path)) {
      visit(record);
      count += 1;
      if (count % 1_000 === 0) await betweenChunks();
    }
    return;
  }
  visit({ line: 0, reason: `unsupported file type "${extension}": use .csv, .json or .jsonl` });
}

/**
 * CSV through csv-parse's stream parser, driven by hand: each chunk of the file is written
 * to it, and its `on_record` hook checks each record as the parser finishes it, with the
 * record's line (returning nothing, so no record travels through the stream at all).
 */
async function readCsv(path: string, visit: RecordVisitor, betweenChunks: () => Promise<void>) {
  let columns: CsvColumns | undefined;
  let stop = false;
  const onRecord = (record: string[], { lines: line }: { lines: number }): undefined => {
    if (stop) return undefined;
    if (columns === undefined) {
      const header = record.map((name) => name.toLowerCase());
      const problems = checkHeader(header);
      if (problems.length > 0) {
        for (const reason of problems) visit({ line, reason });
        stop = true;
        return undefined;
      }
      columns = csvColumns(header);
      return undefined;
    }
    if (record.length !== columns.width) {
      visit({ line, reason: `expected ${columns.width} fields, got ${record.length}` });
      return undefined;
    }
    visit({ line, fields: columns.values(record) });
    return undefined;
  };
  const parser = new Parser({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    on_record: onRecord,
  });
  let parseError: (Error & { lines?: number }) | undefined;
  parser.on('error', (error: Error) => {
    parseError ??= error;
  });
  const input = createReadStream(path, { highWaterMark: 256 * 1024 });
  try {
    for await (const chunk of input) {
      // The parser reports an error a tick after the chunk that had it, so it is looked
      // for before the next chunk is written (and after the last, below).
      if (parseError !== undefined || stop) break;
      parser.write(chunk);
      await betweenChunks();
    }
    await new Promise((resolve) => setImmediate(resolve));
    if (parseError === undefined && !stop) {
      parser.end();
      await finished(parser, { readable: false }).catch(() => {});
    }
  } finally {
    input.destroy();
  }
  if (parseError !== undefined) {
    parser.destroy();
    visit({ line: parseError.lines ?? 0, reason: `not valid CSV: ${parseError.message}` });
    return;
  }
  if (columns === undefined && !stop)
    visit({ line: 1, reason: 'the file is empty: a header line is required' });
}

/** Where each column is in a CSV record, resolved once from the header. */
interface CsvColumns {
  readonly width: number;
  values(record: readonly string[]): FieldValues;
}

function csvColumns(header: readonly string[]): CsvColumns {
  const at = (name: string) => header.indexOf(name);
  const [profile, type, id, bid, budget, state] = [
    at('profile_id'),
    at('entity_type'),
    at('entity_id'),
    at('bid'),
    at('budget'),
    at('state'),
  ];
  // An empty field is an absent value; record[-1] (a column the file lacks) is undefined.
  const value = (record: readonly string[], index: number) => {
    const field = record[index];
    return field === '' ? undefined : field;
  };
  return {
    width: header.length,
    values: (record) => ({
      profile_id: value(record, profile),
      entity_type: value(record, type),
      entity_id: value(record, id),
      bid: value(record, bid),
      budget: value(record, budget),
      state: value(record, state),
    }),
  };
}

function checkHeader(header: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const name of header) {
    if (!COLUMNS.includes(name)) problems.push(`unknown column "${name}" (columns: ${COLUMNS.join(', ')})`);
    if (seen.has(name)) problems.push(`column "${name}" appears twice`);
    seen.add(name);
  }
  for (const required of REQUIRED_COLUMNS) {
    if (!seen.has(required)) problems.push(`missing column "${required}"`);
  }
  if (!CHANGE_COLUMNS.some((name) => seen.has(name))) {
    problems.push(`no change column: at least one of ${CHANGE_COLUMNS.join(', ')} is needed`);
  }
  return problems;
}

async function* readJson(path: string): AsyncGenerator<RawRecord | RowError> {
  const first = await firstNonSpaceCharacter(path);
  if (first === '[') {
    const { size } = await stat(path);
    if (size > MAX_JSON_ARRAY_BYTES) {
      yield {
        line: 1,
        reason: `a JSON array larger than ${MAX_JSON_ARRAY_BYTES / 1024 / 1024} MiB is not read whole: write it as JSON Lines (one object per line)`,
      };
      return;
    }
    let entries: unknown;
    try {
      entries = JSON.parse(await readAll(path));
    } catch (error) {
      yield { line: 1, reason: `not valid JSON: ${(error as Error).message}` };
      return;
    }
    if (!Array.isArray(entries)) {
      yield { line: 1, reason: 'a JSON file holds an array of objects or one object per line' };
      return;
    }
    for (const [index, entry] of entries.entries()) yield jsonRecord(index + 1, entry);
    return;
  }
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  for await (const text of lines) {
    number += 1;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      yield { line: number, reason: `not valid JSON: ${(error as Error).message}` };
      continue;
    }
    yield jsonRecord(number, value);
  }
}

function jsonRecord(line: number, value: unknown): RawRecord | RowError {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { line, reason: 'each entry must be an object' };
  }
  const entry = value as Record<string, unknown>;
  const unknown = Object.keys(entry).filter((name) => !COLUMNS.includes(name));
  if (unknown.length > 0) {
    return { line, reason: `unknown column ${unknown.map((name) => `"${name}"`).join(', ')}` };
  }
  return {
    line,
    fields: {
      profile_id: entry.profile_id,
      entity_type: entry.entity_type,
      entity_id: entry.entity_id,
      bid: entry.bid,
      budget: entry.budget,
      state: entry.state,
    },
  };
}

async function firstNonSpaceCharacter(path: string): Promise<string | undefined> {
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 4096 })) {
    const match = /\S/.exec((chunk as string).replace(/^\uFEFF/, ''));
    if (match !== null) return match[0];
  }
  return undefined;
}

async function readAll(path: string): Promise<string> {
  let text = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8' })) text += chunk;
  return text.replace(/^\uFEFF/, '');
}

/** Where a profile is: its marketplace's bounds apply to its bids and budgets. */
export type MarketplaceOf = (profileId: number) => Marketplace | undefined;

/** Bounds for a profile the fleet has not synced yet: the widest any marketplace allows. */
const WIDEST_BOUNDS = {
  bid: {
    min: Math.min(...MARKETPLACES.map((m) => m.bid.min)),
    max: Math.max(...MARKETPLACES.map((m) => m.bid.max)),
  },
  dailyBudget: {
    min: Math.min(...MARKETPLACES.map((m) => m.dailyBudget.min)),
    max: Math.max(...MARKETPLACES.map((m) => m.dailyBudget.max)),
  },
};

const MONEY = /^\d{1,9}(\.\d{1,2})?$/;
const NUMERIC_ID = /^[1-9]\d*$/;

/**
 * Ids above 2^53 - 1 are refused, not carried as strings: the fleet holds profile and
 * entity ids as JS numbers end to end (int8 columns read as numbers in shared/db.ts,
 * `profileId: number` in every message schema, the duplicate check's table of doubles), so
 * a larger id would silently become a neighbouring one. Amazon's profile, campaign and
 * keyword ids are far below it (16 digits at most, the largest ~4.5e15).
 */
export const LARGEST_ID = Number.MAX_SAFE_INTEGER;

/** A positive integer id, or the reason the value is not one. */
function amazonId(raw: string, name: string): number | string {
  if (!NUMERIC_ID.test(raw)) return `${name} "${raw}" is not a numeric id`;
  const id = Number(raw);
  if (!Number.isSafeInteger(id)) {
    return `${name} ${raw} is larger than ${LARGEST_ID}, the largest id this fleet carries exactly`;
  }
  return id;
}

/**
 * The entities a file has changed so far, each with the line it was first seen on.
 *
 * Hand-written rather than a Map: Amazon's ids are above 2^31, so a Map<number, number>
 * boxes every key as a heap number and a million-row file keeps about 60 MiB of entries
 * (twice that while the Map rehashes), a quarter of the submit's memory budget. This open-
 * addressing table keeps each key and its line side by side in one typed array (a probe
 * is one cache miss, not one per array): 16 bytes a slot, 32 MiB at a million entities,
 * and nothing for the collector to trace. Keys are positive integers no larger than
 * LARGEST_ID (exact as doubles), so 0 marks an empty slot.
 */
export class EntityLines {
  /** Slot i is [2i] the key, [2i + 1] its line. */
  private slots = new Float64Array(2 << 12);
  private size = 0;

  /** The line `key` was first seen on, or undefined (and then `line` is remembered for it). */
  firstLine(key: number, line: number): number | undefined {
    if ((this.size + 1) * 4 > this.slots.length) this.grow();
    const { slots } = this;
    const mask = (slots.length >>> 1) - 1;
    let slot = EntityLines.hash(key) & mask;
    for (;;) {
      const found = slots[slot * 2];
      if (found === 0) {
        slots[slot * 2] = key;
        slots[slot * 2 + 1] = line;
        this.size += 1;
        return undefined;
      }
      if (found === key) return slots[slot * 2 + 1];
      slot = (slot + 1) & mask;
    }
  }

  private static hash(key: number): number {
    // Both 32-bit halves of the integer, mixed (Fibonacci hashing) so sequential ids spread.
    const low = key >>> 0;
    const high = (key / 4_294_967_296) >>> 0;
    return Math.imul(low ^ Math.imul(high, 0x85eb_ca6b), 0x9e37_79b1) >>> 0;
  }

  private grow(): void {
    const old = this.slots;
    const slots = new Float64Array(old.length * 2);
    const mask = (slots.length >>> 1) - 1;
    for (let at = 0; at < old.length; at += 2) {
      const key = old[at] as number;
      if (key === 0) continue;
      let slot = EntityLines.hash(key) & mask;
      while (slots[slot * 2] !== 0) slot = (slot + 1) & mask;
      slots[slot * 2] = key;
      slots[slot * 2 + 1] = old[at + 1] as number;
    }
    this.slots = slots;
  }
}

/**
 * Checks rows one at a time, and across the file: the same entity may appear only once
 * (which of two changes should win would otherwise depend on the order they reach Amazon).
 * Entities are remembered as numbers in typed arrays (EntityLines), so a million-row file
 * stays small.
 */
export class RowValidator {
  private readonly marketplaceOf: MarketplaceOf;
  private readonly seen: Record<EntityType, EntityLines> = {
    keyword: new EntityLines(),
    campaign: new EntityLines(),
  };

  constructor(marketplaceOf: MarketplaceOf) {
    this.marketplaceOf = marketplaceOf;
  }

  check(record: RawRecord): BulkRow | RowError {
    const { line, fields } = record;
    const fail = (reason: string): RowError => ({ line, reason });

    const profileText = text(fields.profile_id);
    if (profileText === undefined) return fail('profile_id is missing');
    const profileId = amazonId(profileText, 'profile_id');
    if (typeof profileId === 'string') return fail(profileId);

    const type = text(fields.entity_type)?.toLowerCase();
    if (type === undefined) return fail('entity_type is missing');
    if (!(ENTITY_TYPES as readonly string[]).includes(type)) {
      return fail(`unknown entity_type "${type}" (one of ${ENTITY_TYPES.join(', ')})`);
    }
    const entityType = type as EntityType;

    const entityId = text(fields.entity_id);
    if (entityId === undefined) return fail('entity_id is missing');
    const entityNumber = amazonId(entityId, 'entity_id');
    if (typeof entityNumber === 'string') return fail(entityNumber);

    const stateText = text(fields.state)?.toUpperCase();
    if (stateText !== undefined && !EDITABLE_STATES.has(stateText)) {
      return fail(`state "${stateText}" is not ENABLED or PAUSED`);
    }
    const state = stateText as 'ENABLED' | 'PAUSED' | undefined;
    const marketplace = this.marketplaceOf(profileId);
    const bounds = marketplace ?? WIDEST_BOUNDS;
    const where = marketplace === undefined ? 'any marketplace' : `marketplace ${marketplace.countryCode}`;

    let change: KeywordChange | CampaignChange;
    if (entityType === EntityType.Keyword) {
      if (fields.budget !== undefined && fields.budget !== '')
        return fail('budget applies to campaigns, not keywords');
      const bid = money(fields.bid, 'bid');
      if (typeof bid === 'string') return fail(bid);
      if (bid !== undefined && (bid < bounds.bid.min || bid > bounds.bid.max)) {
        return fail(`bid ${bid} is out of range for ${where} (${bounds.bid.min} to ${bounds.bid.max})`);
      }
      if (bid === undefined && state === undefined) return fail('nothing to change: give a bid or a state');
      change = bid === undefined ? { state } : state === undefined ? { bid } : { bid, state };
    } else {
      if (fields.bid !== undefined && fields.bid !== '')
        return fail('bid applies to keywords, not campaigns');
      const budget = money(fields.budget, 'budget');
      if (typeof budget === 'string') return fail(budget);
      if (budget !== undefined && (budget < bounds.dailyBudget.min || budget > bounds.dailyBudget.max)) {
        return fail(
          `budget ${budget} is out of range for ${where} (${bounds.dailyBudget.min} to ${bounds.dailyBudget.max})`,
        );
      }
      if (budget === undefined && state === undefined) {
        return fail('nothing to change: give a budget or a state');
      }
      change = budget === undefined ? { state } : state === undefined ? { budget } : { budget, state };
    }

    const earlier = this.seen[entityType].firstLine(entityNumber, line);
    if (earlier !== undefined)
      return fail(`${entityType} ${entityId} is changed twice (also on line ${earlier})`);
    return { line, profileId, entityType, entityId, change };
  }
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const result = typeof value === 'string' ? value.trim() : String(value);
  return result === '' ? undefined : result;
}

/** A money amount, undefined when absent, or the reason it is not one. */
function money(value: unknown, name: string): number | undefined | string {
  const raw = text(value);
  if (raw === undefined) return undefined;
  if (typeof value === 'number' ? !Number.isFinite(value) || !MONEY.test(String(value)) : !MONEY.test(raw)) {
    return `${name} "${raw}" is not a number with at most 2 decimals`;
  }
  return Number(raw);
}

export function isRowError(value: RawRecord | BulkRow | RowError): value is RowError {
  return 'reason' in value;
}
