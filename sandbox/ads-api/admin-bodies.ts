import { z } from 'zod';
import { ENTITY_KINDS, MAX_SIZES } from './data.ts';
import { MARKETPLACES } from './marketplaces.ts';

/**
 * Bodies of the admin routes under /_sandbox/, validated so a wrong body is a 400 that names
 * the field instead of a sandbox quietly doing something else.
 */

const positive = z.number().positive();

/** Ids as numbers, or as the digit strings the API itself returns. */
const entityId = z.union([z.number().int().positive(), z.string().regex(/^\d+$/).transform(Number)]);

export const entityKind = z.enum(ENTITY_KINDS);

export const entityRouteParams = z.object({ kind: entityKind, id: entityId });

export const capacityBody = z.object({
  profileId: z.number().int().positive().optional(),
  ratePerSecond: positive,
  burst: positive.optional(),
});

export const clientCapacityBody = z.object({ ratePerSecond: positive, burst: positive.optional() });

export const faultsBody = z.object({
  failNext: z.number().int().nonnegative().optional(),
  errorRate: z.number().min(0).max(1).optional(),
  status: z.number().int().min(400).max(599).optional(),
  latencyMs: z.number().nonnegative().optional(),
  slowRate: z.number().min(0).max(1).optional(),
  slowMs: z.number().nonnegative().optional(),
});

export const entityIdsBody = z.object({ kind: entityKind, ids: z.array(entityId).min(1) });

export const entityUpdatesBody = z.object({
  kind: entityKind,
  changes: z
    .array(
      z.object({
        id: entityId,
        bid: positive.optional(),
        budget: positive.optional(),
        state: z.enum(['ENABLED', 'PAUSED', 'ARCHIVED']).optional(),
      }),
    )
    .min(1),
});

const size = (max: number) => z.number().int().min(0).max(max);

export const profileBody = z.object({
  campaigns: size(MAX_SIZES.campaigns),
  adGroupsPerCampaign: size(MAX_SIZES.adGroupsPerCampaign),
  keywordsPerAdGroup: size(MAX_SIZES.keywordsPerAdGroup),
  countryCode: z
    .enum(MARKETPLACES.map((marketplace) => marketplace.countryCode) as [string, ...string[]])
    .optional(),
});

export const credentialsBody = z.object({ refuse: z.boolean() });

/** "changes.0.bid: Too small: expected number to be >0" — the path first, so the field is named. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length === 0 ? 'body' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
}
