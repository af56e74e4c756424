import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeProcess } from '../../support/processes.ts';
import {
  type BulkWorld,
  buildRows,
  cliOutput,
  createBulkWorld,
  expectCountsMatchItems,
  itemsOf,
  runCli,
  sandboxEntities,
  startBulkWorker,
  waitForJob,
  waitForWorkers,
  writeCsv,
} from './support.ts';

const KILLS = 3;

/**
 * Workers die mid-batch (SIGKILL, several times) while a second job changes half of the
 * first job's entities: every item still ends final, none is lost or left RUNNING, and
 * every entity ends with the latest requested value.
 */
describe('bulk jobs survive SIGKILL, and the later-submitted job wins', { timeout: 300_000 }, () => {
  let world: BulkWorld;
  const workers: NodeProcess[] = [];

  beforeAll(async () => {
    world = await createBulkWorld('bulk-kill', { profiles: 10 });
  });
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await world.close();
  });

  async function submit(path: string): Promise<string> {
    const cli = runCli(world, ['bulk', 'submit', path, '--json']);
    const { code } = await cliOutput(cli);
    expect(code, cli.output.join('\n')).toBe(0);
    return String(cli.logs.find((line) => typeof line.jobId === 'string')?.jobId);
  }

  async function runningItemsOf(pid: number): Promise<number> {
    const { rows } = await world.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM bulk_items WHERE status = 'RUNNING' AND lease_owner LIKE '%:' || $1 || ':%'`,
      [pid],
    );
    return rows[0]?.n ?? 0;
  }

  it('recovers the items a killed worker held and applies the latest change of every entity', async () => {
    const profileIds = world.sandbox.admin.profileIds();
    const first = await buildRows(world, profileIds, 50, 0, 0);
    const second = (await buildRows(world, profileIds, 50, 0, 17)).filter(
      (row, index) => row.entity_type === 'keyword' && index % 2 === 0,
    );
    world.sandbox.admin.injectFaults({ latencyMs: 1_000 });
    const settings = {
      ADFLEET_BULK_BATCH_SIZE: '10',
      ADFLEET_BULK_LEASE_MS: '5000',
      ADFLEET_BULK_PROFILE_IN_FLIGHT: '2',
      // Messages a killed worker had received but not started come back only after the
      // queue's visibility timeout (30 s); the sweeper re-sends their items sooner.
      ADFLEET_BULK_STALL_AFTER_MS: '8000',
    };
    // Only the victim runs while it is being killed, so it always holds some of the work.
    let victim = startBulkWorker(world, settings, 'bulk-victim');
    workers.push(victim);
    await waitForWorkers([victim]);

    const t0 = Date.now();
    const mark = (what: string) =>
      process.stdout.write(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}\n`);
    const firstJob = await submit(await writeCsv(first, 'bulk-kill-a'));
    let secondJob: string | undefined;
    for (let kill = 1; kill <= KILLS; kill += 1) {
      const pid = victim.child.pid as number;
      const deadline = Date.now() + 20_000;
      while ((await runningItemsOf(pid)) === 0 && Date.now() < deadline) await sleep(50);
      expect(await runningItemsOf(pid), `kill ${kill}: the victim holds items`).toBeGreaterThan(0);
      mark(`kill ${kill}`);
      victim.child.kill('SIGKILL');
      await victim.exited;
      if (kill === 1) secondJob = await submit(await writeCsv(second, 'bulk-kill-b'));
      victim = startBulkWorker(world, settings, 'bulk-victim');
      workers.push(victim);
      await waitForWorkers([victim]);
    }
    const steady = startBulkWorker(world, settings, 'bulk-steady');
    workers.push(steady);

    const jobA = await waitForJob(world.db.pool, firstJob, undefined, 'final', 120_000);
    mark('first job final');
    const jobB = await waitForJob(world.db.pool, String(secondJob), undefined, 'final', 60_000);
    mark('second job final');
    world.sandbox.admin.injectFaults({});
    expect(jobA.status).toBe('COMPLETED');
    expect(jobB.status).toBe('COMPLETED');
    await expectCountsMatchItems(world.db.pool, firstJob);
    await expectCountsMatchItems(world.db.pool, String(secondJob));

    const itemsA = await itemsOf(world.db.pool, firstJob);
    const itemsB = await itemsOf(world.db.pool, String(secondJob));
    expect(itemsA).toHaveLength(first.length);
    expect(itemsB).toHaveLength(second.length);
    // Items the killed workers held were recovered: sent again (the lost attempt and this
    // one), or read back, when Amazon had applied the dead worker's call (domain/bulk/verify.ts).
    const { rows: recovered } = await world.db.pool.query<{ resent: number; readBack: number }>(
      `SELECT count(*) FILTER (WHERE attempts > 1)::int AS "resent",
              count(*) FILTER (WHERE response ? 'readBack')::int AS "readBack"
         FROM bulk_items WHERE job_id = $1`,
      [firstJob],
    );
    const [{ resent, readBack }] = recovered as [{ resent: number; readBack: number }];
    expect(resent + readBack, `re-sent ${resent}, read back ${readBack}`).toBeGreaterThan(0);
    expect(
      [...itemsA, ...itemsB].filter((item) => !['SUCCEEDED', 'CANCELLED'].includes(item.status)),
    ).toEqual([]);
    expect(itemsB.every((item) => item.status === 'SUCCEEDED')).toBe(true);
    for (const item of itemsA.filter((i) => i.status === 'CANCELLED'))
      expect(item.error_code).toBe('SUPERSEDED');

    // Every entity holds the latest requested value: the second job's where it has one.
    const latest = new Map(first.map((row) => [row.entity_id, row]));
    for (const row of second) latest.set(row.entity_id, row);
    const { keywords, campaigns } = await sandboxEntities(world.ads, profileIds);
    for (const [id, row] of latest) {
      if (row.entity_type === 'keyword') expect(keywords.get(id)?.bid, `keyword ${id}`).toBe(row.bid);
      else expect(campaigns.get(id)?.budget.budget, `campaign ${id}`).toBe(row.budget);
    }
    const mutations = world.sandbox.admin.mutations();
    const applied = [...Object.values(mutations.keywords), ...Object.values(mutations.campaigns)].reduce(
      (sum, n) => sum + n,
      0,
    );
    const succeeded = [...itemsA, ...itemsB].filter((item) => item.status === 'SUCCEEDED').length;
    process.stdout.write(
      `${KILLS} kills: ${resent + readBack} items recovered (${readBack} read back), ${applied - succeeded} changes re-sent to Amazon after a crash, ${itemsA.filter((i) => i.status === 'CANCELLED').length} superseded\n`,
    );
  });
});
