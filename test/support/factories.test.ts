import { describe, expect, it } from 'vitest';
import { type CatalogType, catalog } from '../../contract/events.ts';
import { parseIncoming } from '../../shared/messaging/envelope.ts';
import { eventBridgeBody, fleetMessageBody, payloadOf, profileRow, sqsMessage } from './factories.ts';

describe('record factories', () => {
  const types = Object.keys(catalog) as CatalogType[];

  it.each(types)('build a %s the catalog accepts, and parse back as one', (type) => {
    const payload = payloadOf(type);
    expect(catalog[type].schema.safeParse(payload).success).toBe(true);
    expect(parseIncoming(sqsMessage(fleetMessageBody(type))).type).toBe(type);
    expect(parseIncoming(sqsMessage(eventBridgeBody(type))).origin).toBe('eventbridge');
  });

  it('apply overrides, and refuse one the catalog would refuse', () => {
    expect(payloadOf('SyncProfile', { trigger: { kind: 'schedule' } }).trigger).toEqual({ kind: 'schedule' });
    expect(() => payloadOf('SyncProfile', { profileId: -1 })).toThrow();
    expect(() => payloadOf('BulkItemBatch', { itemIds: [] })).toThrow();
  });

  it('give each row its own id', () => {
    const [a, b] = [profileRow(), profileRow()];
    expect(a.id).not.toBe(b.id);
    expect(profileRow({ countryCode: 'JP' })).toMatchObject({ countryCode: 'JP' });
  });
});
