import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse';
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

/** A raw record as read from the file, before checking. */
export interface RawRecord {
  readonly line: number;
  readonly fields: Readonly<Record<string, unknown>>;
}

export type FileFormat = 'csv' | 'jsonl' | 'json-array';

/** Reads a file's records one at a time; a structural problem (bad CSV quoting, bad JSON) is a RowError. */
export async function* readRecords(path: string): AsyncGenerator<RawRecord | RowError> {
  const extension = extname(path).toLowerCase();
  if (extension === '.csv') yield* readCsv(path);
  else if (extension === '.jsonl' || extension === '.ndjson' || extension === '.json') yield* readJson(path);
  else yield { line: 0, reason: `unsupported file type "${extension}": use .csv, .json or .jsonl` };
}

async function* readCsv(path: string): AsyncGenerator<RawRecord | RowError> {
  const parser = createReadStream(path).pipe(
    parse({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true }),
  );
  let header: string[] | undefined;
  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: string[];
      info: { lines: number };
    }>) {
      if (header === undefined) {
        header = record.map((name) => name.toLowerCase());
        const problems = checkHeader(header);
        if (problems.length > 0) {
          for (const reason of problems) yield { line: info.lines, reason };
          return;
        }
        continue;
      }
      if (record.length !== header.length) {
        yield { line: info.lines, reason: `expected ${header.length} fields, got ${record.length}` };
        continue;
      }
      const fields: Record<string, unknown> = {};
      for (let index = 0; index < header.length; index += 1) {
        const value = record[index];
        if (value !== undefined && value !== '') fields[header[index] as string] = value;
      }
      yield { line: info.lines, fields };
    }
  } catch (error) {
    const line = (error as { lines?: number }).lines ?? 0;
    yield { line, reason: `not valid CSV: ${(error as Error).message}` };
  }
  if (header === undefined) yield { line: 1, reason: 'the file is empty: a header line is required' };
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
  return { line, fields: value as Record<string, unknown> };
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
const NUMERIC_ID = /^[1-9]\d{0,15}$/;

/**
 * The entities a file has changed so far, each with the line it was first seen on.
 *
 * Hand-written rather than a Map: Amazon's ids are above 2^31, so a Map<number, number>
 * boxes every key as a heap number and a million-row file keeps about 60 MiB of entries
 * (twice that while the Map rehashes), a quarter of the submit's memory budget. This open-
 * addressing table keeps keys and lines in two typed arrays: 12 bytes a slot, 24 MiB at a
 * million entities, and nothing for the collector to trace. Keys are positive integers
 * (NUMERIC_ID), so 0 marks an empty slot.
 */
export class EntityLines {
  private keys = new Float64Array(1 << 12);
  private lines = new Int32Array(1 << 12);
  private size = 0;

  /** The line `key` was first seen on, or undefined (and then `line` is remembered for it). */
  firstLine(key: number, line: number): number | undefined {
    if ((this.size + 1) * 2 > this.keys.length) this.grow();
    const mask = this.keys.length - 1;
    let slot = EntityLines.hash(key) & mask;
    for (;;) {
      const found = this.keys[slot];
      if (found === 0) {
        this.keys[slot] = key;
        this.lines[slot] = line;
        this.size += 1;
        return undefined;
      }
      if (found === key) return this.lines[slot];
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
    const { keys, lines } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.lines = new Int32Array(keys.length * 2);
    const mask = this.keys.length - 1;
    for (let old = 0; old < keys.length; old += 1) {
      const key = keys[old] as number;
      if (key === 0) continue;
      let slot = EntityLines.hash(key) & mask;
      while (this.keys[slot] !== 0) slot = (slot + 1) & mask;
      this.keys[slot] = key;
      this.lines[slot] = lines[old] as number;
    }
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
    const unknown = Object.keys(fields).filter((name) => !COLUMNS.includes(name));
    if (unknown.length > 0) return fail(`unknown column ${unknown.map((name) => `"${name}"`).join(', ')}`);

    const profileText = text(fields.profile_id);
    if (profileText === undefined) return fail('profile_id is missing');
    if (!NUMERIC_ID.test(profileText)) return fail(`profile_id "${profileText}" is not a numeric id`);
    const profileId = Number(profileText);

    const type = text(fields.entity_type)?.toLowerCase();
    if (type === undefined) return fail('entity_type is missing');
    if (!(ENTITY_TYPES as readonly string[]).includes(type)) {
      return fail(`unknown entity_type "${type}" (one of ${ENTITY_TYPES.join(', ')})`);
    }
    const entityType = type as EntityType;

    const entityId = text(fields.entity_id);
    if (entityId === undefined) return fail('entity_id is missing');
    if (!NUMERIC_ID.test(entityId)) return fail(`entity_id "${entityId}" is not a numeric id`);

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
      change = { ...(bid === undefined ? {} : { bid }), ...(state === undefined ? {} : { state }) };
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
      change = { ...(budget === undefined ? {} : { budget }), ...(state === undefined ? {} : { state }) };
    }

    const earlier = this.seen[entityType].firstLine(Number(entityId), line);
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
