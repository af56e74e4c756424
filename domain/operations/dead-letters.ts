import { FLEET_ATTRIBUTES } from '../../shared/messaging/trace-context.ts';

/**
 * The record the chassis puts on every message it dead-letters (the `adfleet-dead-letter`
 * attribute, shared/messaging/queue-worker.ts). A message SQS moved by its redrive policy
 * (maxReceiveCount reached without the chassis seeing the last receive) has none.
 */
export interface DeadLetterRecord {
  readonly reason: string;
  readonly type: string;
  readonly messageId: string;
  readonly receiveCount: number | null;
  readonly at: string;
}

export const NO_REASON = '(no reason recorded: moved by SQS redrive)';

/** The record from a message's attributes (attribute name → string value). */
export function deadLetterRecordOf(attributes: Readonly<Record<string, string>>): DeadLetterRecord {
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(attributes[FLEET_ATTRIBUTES.deadLetter] ?? '{}');
  } catch {
    // A record that does not parse says as much as none.
  }
  return {
    reason: typeof parsed.reason === 'string' && parsed.reason !== '' ? parsed.reason : NO_REASON,
    type: typeof parsed.type === 'string' ? parsed.type : '?',
    messageId: typeof parsed.messageId === 'string' ? parsed.messageId : '?',
    receiveCount: typeof parsed.receiveCount === 'number' ? parsed.receiveCount : null,
    at: typeof parsed.at === 'string' ? parsed.at : '',
  };
}

/** The most frequent reasons first (ties: the alphabetically first), at most `limit`. */
export function topReasons(
  records: readonly DeadLetterRecord[],
  limit = 3,
): Array<{ reason: string; count: number }> {
  const counts = new Map<string, number>();
  for (const record of records) {
    const reason = record.reason.slice(0, 300);
    counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  return [...counts]
    .map(([reason, count]) => ({ reason, count }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason))
    .slice(0, limit);
}
