import { describe, expect, it } from 'vitest';
import { spawnNode } from '../../support/processes.ts';

/**
 * The short fault drill (bench/drill.ts --short) as part of the suite: a SIGTERM, poison
 * messages of every kind, Redis down, a Postgres outage, an Ads 503 storm and refused
 * credentials against the three workers (two processes each) on a bulk job, a profile sync
 * and a backfill, with tracing on. Its table must show no work lost, no bulk item stranded,
 * wrong or applied twice, no healthy message dead-lettered, every poison message
 * dead-lettered with a reason, no crash loop and no seeded secret in any log line, DLQ
 * reason or span.
 */
describe('the short fault drill', () => {
  it('misses no figure', async () => {
    const drill = spawnNode('bench/drill.ts', { ...process.env } as Record<string, string>, ['--short']);
    const exit = await drill.exited;
    const table = drill.output.join('');
    expect(table, table).toContain('fault drill');
    expect(
      table.split('\n').filter((line) => line.startsWith('MISS')),
      table,
    ).toEqual([]);
    expect(exit.code, table).toBe(0);
  }, 420_000);
});
