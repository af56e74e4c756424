import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import type { SandboxAdmin } from '../sandbox/ads-api/admin.ts';
import type { AdsApiClient } from '../shared/ads/client.ts';
import { marketplaceOf } from '../shared/ads/marketplaces.ts';

/**
 * The fault drill's bulk job: a file of bid, state and budget changes over the sandbox's
 * profiles (a few unknown keyword ids among them, which Amazon refuses), and the check of
 * what became of every line against the sandbox's final state and its per-entity mutation
 * counts.
 */

export interface PlannedRow {
  readonly line: number;
  readonly profileId: number;
  readonly entityType: 'keyword' | 'campaign';
  readonly entityId: string;
  readonly bid?: number;
  readonly budget?: number;
  readonly state?: 'ENABLED' | 'PAUSED';
  /** Amazon refuses it (an id it does not know): it must end FAILED and never be applied. */
  readonly refused: boolean;
}

/** A bid inside the marketplace's bounds that differs from `current`. */
function newBid(countryCode: string, current: number, salt: number): number {
  const { min } = marketplaceOf(countryCode).bid;
  const bid = Number((min * (2 + (salt % 50))).toFixed(2));
  return bid === current ? Number((bid + min).toFixed(2)) : bid;
}

/** `perProfile` rows on each profile: up to two campaign budgets, one unknown keyword, the rest live keywords. */
export async function planBulkRows(ads: AdsApiClient, perProfile: number): Promise<PlannedRow[]> {
  const rows: PlannedRow[] = [];
  let line = 2; // the header is line 1
  for (const profile of await ads.listProfiles()) {
    const { profileId, countryCode } = profile;
    const campaigns = [];
    for await (const campaign of ads.campaigns(profileId))
      if (campaign.state !== 'ARCHIVED') campaigns.push(campaign);
    const keywords = [];
    for await (const keyword of ads.keywords(profileId))
      if (keyword.state !== 'ARCHIVED') keywords.push(keyword);
    const budgets = campaigns.slice(0, 2);
    const wantedKeywords = perProfile - 1 - budgets.length;
    if (keywords.length < wantedKeywords) {
      throw new Error(
        `profile ${profileId} has ${keywords.length} live keywords; the drill's bulk job needs ${wantedKeywords}`,
      );
    }
    const { min } = marketplaceOf(countryCode).dailyBudget;
    for (const [index, campaign] of budgets.entries()) {
      const budget = Number((min * (20 + ((line + index) % 30))).toFixed(2));
      rows.push({
        line: line++,
        profileId,
        entityType: 'campaign',
        entityId: campaign.campaignId,
        budget: budget === campaign.budget.budget ? Number((budget + min).toFixed(2)) : budget,
        refused: false,
      });
    }
    for (const keyword of keywords.slice(0, wantedKeywords)) {
      const pause = line % 7 === 0;
      rows.push({
        line,
        profileId,
        entityType: 'keyword',
        entityId: keyword.keywordId,
        bid: newBid(countryCode, keyword.bid, line),
        ...(pause ? { state: keyword.state === 'PAUSED' ? 'ENABLED' : 'PAUSED' } : {}),
        refused: false,
      });
      line += 1;
    }
    rows.push({
      line: line++,
      profileId,
      entityType: 'keyword',
      entityId: String(9_000_000_000_000 + (profileId % 1_000_000) * 100),
      bid: newBid(countryCode, 0, line),
      refused: true,
    });
  }
  return rows;
}

export async function writeBulkFile(rows: readonly PlannedRow[]): Promise<string> {
  const path = join(tmpdir(), `drill-bulk-${process.pid}-${Date.now()}.csv`);
  const lines = ['profile_id,entity_type,entity_id,bid,budget,state'];
  for (const row of rows) {
    lines.push(
      [row.profileId, row.entityType, row.entityId, row.bid ?? '', row.budget ?? '', row.state ?? ''].join(
        ',',
      ),
    );
  }
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** Items a killed bulk-item process held under its lease: its Ads call may have reached Amazon. */
export async function itemsHeldBy(pool: pg.Pool, pid: number): Promise<number[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT id FROM bulk_items WHERE status = 'RUNNING' AND lease_owner LIKE '%:' || $1::text || ':%'`,
    [pid],
  );
  return rows.map((row) => Number(row.id));
}

export interface BulkResult {
  readonly jobStatus: string | undefined;
  /** From the job's row being written to its completion. */
  readonly ranSeconds: number | undefined;
  readonly items: number;
  /** Left PENDING, RUNNING or RETRY. */
  readonly stranded: number;
  /** Valid lines that did not end SUCCEEDED. */
  readonly notApplied: number;
  /** SUCCEEDED lines whose entity does not hold the requested value (or was never changed). */
  readonly wrongValue: number;
  /** Lines applied more than once, none of whose items a SIGKILL caught mid-call. */
  readonly appliedTwice: number;
  /** Lines applied more than once after a SIGKILL caught their item mid-call: at least once, as designed. */
  readonly reappliedAfterKill: number;
  /** Refused lines that ended FAILED with Amazon's code and were never applied. */
  readonly refusedAsPlanned: number;
  readonly refused: number;
}

export async function checkBulkJob(
  pool: pg.Pool,
  admin: SandboxAdmin,
  jobId: string,
  rows: readonly PlannedRow[],
  heldByKilled: ReadonlySet<number>,
): Promise<BulkResult> {
  const job = await pool.query<{ status: string; seconds: number | null }>(
    'SELECT status, extract(epoch FROM finished_at - created_at)::float8 AS seconds FROM bulk_jobs WHERE id = $1',
    [jobId],
  );
  const { rows: items } = await pool.query<{
    id: string;
    line: number;
    status: string;
    error_code: string | null;
  }>('SELECT id, line, status, error_code FROM bulk_items WHERE job_id = $1', [jobId]);
  const byLine = new Map(items.map((item) => [item.line, item]));
  const mutations = admin.mutations();
  let notApplied = 0;
  let wrongValue = 0;
  let appliedTwice = 0;
  let reappliedAfterKill = 0;
  let refusedAsPlanned = 0;
  for (const row of rows) {
    const item = byLine.get(row.line);
    const applied =
      (row.entityType === 'keyword' ? mutations.keywords : mutations.campaigns)[row.entityId] ?? 0;
    if (row.refused) {
      if (item?.status === 'FAILED' && item.error_code === 'entityNotFoundError' && applied === 0)
        refusedAsPlanned += 1;
      continue;
    }
    if (item?.status !== 'SUCCEEDED') {
      notApplied += 1;
      continue;
    }
    const held =
      row.entityType === 'keyword'
        ? admin.entity('keyword', Number(row.entityId))
        : admin.entity('campaign', Number(row.entityId));
    const right =
      held !== undefined &&
      applied > 0 &&
      (row.entityType === 'keyword'
        ? 'bid' in held && held.bid === row.bid && (row.state === undefined || held.state === row.state)
        : 'budget' in held && held.budget.budget === row.budget);
    if (!right) wrongValue += 1;
    if (applied > 1) {
      if (heldByKilled.has(Number(item.id))) reappliedAfterKill += 1;
      else appliedTwice += 1;
    }
  }
  return {
    jobStatus: job.rows[0]?.status,
    ranSeconds: job.rows[0]?.seconds ?? undefined,
    items: items.length,
    stranded: items.filter((item) => ['PENDING', 'RUNNING', 'RETRY'].includes(item.status)).length,
    notApplied,
    wrongValue,
    appliedTwice,
    reappliedAfterKill,
    refusedAsPlanned,
    refused: rows.filter((row) => row.refused).length,
  };
}
