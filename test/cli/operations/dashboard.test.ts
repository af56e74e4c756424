import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../support/database.ts';
import { stackEnv, workerEnv } from '../../support/env.ts';
import { insertProfiles, profileRow } from '../../support/factories.ts';
import { type NodeProcess, REPO_ROOT, spawnNode } from '../../support/processes.ts';
import { freePort } from '../../support/tcp-proxy.ts';
import { createTestTopology, type TestTopology } from '../../support/topology.ts';
import { INCIDENT, seedDatabase, seedQueues } from './incident.ts';

/**
 * The dashboard in Debian's Chromium, driven by playwright-core (no browser download):
 * each page of the seeded incident, the page keeping itself current, and the token.
 * Screenshots are kept in .stack/dashboard/ as artifacts.
 */

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'test-dashboard-token-7f3a9c2e';
const SCREENSHOTS = join(REPO_ROOT, '.stack', 'dashboard');
// The machine may be busy: a page or its refresh can take seconds, not the default one.
const POLL = { timeout: 15_000 };
const readText = (element: { innerText: string }) => element.innerText;

describe('adfleet dashboard in a real browser', () => {
  let topology: TestTopology;
  let database: TestDatabase;
  let dashboard: NodeProcess;
  let browser: Browser;
  let page: Page;
  let base: string;

  beforeAll(async () => {
    [topology, database] = await Promise.all([
      createTestTopology('dashboard'),
      createTestDatabase(stackEnv().DATABASE_URL as string),
    ]);
    await Promise.all([seedDatabase(database.pool), seedQueues(topology)]);
    const port = await freePort();
    dashboard = spawnNode(
      'cli/main.ts',
      workerEnv(topology.prefix, {
        DATABASE_URL: database.url,
        ADFLEET_DASHBOARD_TOKEN: TOKEN,
        LOG_LEVEL: 'warn',
      }),
      ['dashboard', '--port', String(port), '--refresh', '1'],
    );
    await vi.waitFor(
      () => expect(dashboard.output.join(''), 'dashboard output').toContain('adfleet dashboard on'),
      {
        timeout: 30_000,
        interval: 200,
      },
    );
    base = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    mkdirSync(SCREENSHOTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await dashboard?.stop('SIGTERM');
    await Promise.all([topology?.destroy(), database?.drop()]);
  });

  // Playwright's locator innerText: the text as rendered, cells apart (textContent runs them together).
  // biome-ignore lint/performance/useDomNodeTextContent: this is Playwright's API, not the DOM property
  const text = (selector: string) => page.locator(selector).innerText();
  const screenshot = (name: string) =>
    page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

  it('refuses every request without the token', async () => {
    for (const path of [
      '/',
      '/profiles',
      '/dead-letters/bulk-item',
      `/backfills/${INCIDENT.backfillJobId}`,
      '/api/status',
    ]) {
      expect((await fetch(`${base}${path}`)).status).toBe(401);
      expect(
        (await fetch(`${base}${path}`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } }))
          .status,
      ).toBe(401);
    }
    expect(
      (await fetch(`${base}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(200);
    const response = await page.goto(`${base}/`);
    expect(response?.status()).toBe(401);
  });

  it('shows the incident on the overview, with trace links and the commands to run', async () => {
    await page.goto(`${base}/?token=${TOKEN}`);
    expect(new URL(page.url()).search).toBe(''); // the token went into a cookie, not the history
    await expect.poll(() => page.locator('h1').textContent(), POLL).toContain('Needs a human');
    const findings = await text('#findings');
    expect(findings).toContain(`${INCIDENT.deadLetters} dead letter(s)`);
    expect(findings).toContain(INCIDENT.deadLetterReason);
    expect(findings).toContain('adfleet dlq redrive --queue bulk-item');
    expect(findings).toMatch(/chain 0 has made no progress for 1\dm/);
    expect(findings).toContain(`pid ${INCIDENT.deadPid}`);
    expect(findings).toContain('died without stopping');
    expect(findings).toContain('no live profile-sync process while 1 message(s) wait');
    expect(await text('#queues tr[data-queue="bulk-item"]')).toMatch(/\b12\b/);
    expect(await text(`#workers tr[data-pid="${INCIDENT.deadPid}"]`)).toContain('stale');
    expect(await text(`#backfills tr[data-job="${INCIDENT.backfillJobId}"]`)).toMatch(
      /campaign-currency[\s\S]*35\.0%[\s\S]*70,000 of ~200,000/,
    );
    const trace = page.locator(`#backfills tr[data-job="${INCIDENT.backfillJobId}"] a[href*="/trace/"]`);
    expect(await trace.getAttribute('href')).toBe(`http://127.0.0.1:16686/trace/${INCIDENT.backfillTraceId}`);
    expect(await text(`#bulk-jobs tr[data-job="${INCIDENT.bulkJobId}"]`)).toMatch(
      /COMPLETED_WITH_ERRORS[\s\S]*100\.0%[\s\S]*63[\s\S]*37/,
    );
    expect(findings).toContain(`profile ${INCIDENT.staleProfileId} (Stale Shop GmbH): sync failing for 2h`);
    await screenshot('overview');
  });

  it('shows the backfill with its rows/s chart and throttle decisions', async () => {
    await page.goto(`${base}/backfills/${INCIDENT.backfillJobId}`);
    await expect.poll(() => page.locator('h1').textContent(), POLL).toBe('backfill campaign-currency');
    const points = (await page.locator('#rate-chart polyline').getAttribute('points')) ?? '';
    expect(points.trim().split(/\s+/)).toHaveLength(14);
    expect(await page.locator('#rate-chart').getAttribute('aria-label')).toContain('peak 240');
    expect(await text('#throttle-events')).toContain(INCIDENT.throttleReason);
    const body = await text('main');
    expect(body).toMatch(/chain 0 has made no progress/);
    expect(body).toContain(`adfleet backfill resume ${INCIDENT.backfillJobId}`);
    await screenshot('backfill');
  });

  it('shows the bulk job with its failed items and downloads its report as CSV', async () => {
    await page.goto(`${base}/`);
    await page.click(`#bulk-jobs a[href="/bulk/${INCIDENT.bulkJobId}"]`);
    await expect.poll(() => page.locator('h1').textContent(), POLL).toBe(`bulk job ${INCIDENT.bulkFile}`);
    expect(await text('#counts')).toContain(`failed ${INCIDENT.bulkFailed}`);
    expect(await text('#failure-codes')).toContain(`${INCIDENT.bulkErrorCode}\t${INCIDENT.bulkFailed}`);
    const failedRows = page.locator('#failed-items tr:has(td)');
    expect(await failedRows.count()).toBe(INCIDENT.bulkFailed);
    expect(await failedRows.nth(0).evaluate(readText)).toContain(INCIDENT.bulkErrorMessage);
    expect(await page.locator('#progress-chart rect').count()).toBeGreaterThan(1);
    await screenshot('bulk-job');

    const csvOf = async (selector: string) => {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
      const path = join(SCREENSHOTS, download.suggestedFilename());
      await download.saveAs(path);
      return readFileSync(path, 'utf8').trimEnd().split('\n');
    };
    const all = await csvOf('#report-csv');
    expect(all[0]).toBe(
      'item_id,line,profile_id,entity_type,entity_id,change,status,attempts,error_code,error_message,response',
    );
    expect(all).toHaveLength(INCIDENT.bulkItems + 1);
    expect(all.filter((line) => line.includes(',SUCCEEDED,'))).toHaveLength(
      INCIDENT.bulkItems - INCIDENT.bulkFailed,
    );
    const failed = await csvOf('#failed-csv');
    expect(failed).toHaveLength(INCIDENT.bulkFailed + 1);
    for (const line of failed.slice(1)) {
      expect(line).toContain(`,FAILED,1,${INCIDENT.bulkErrorCode},${INCIDENT.bulkErrorMessage},`);
    }
    expect(failed[1]).toMatch(/^\d+,2,31,keyword,100001,"\{""bid"":2000\}",FAILED/);
  });

  it('lists profiles stalest first', async () => {
    await page.goto(`${base}/profiles`);
    const rows = page.locator('#profiles tr[data-profile]');
    await expect.poll(() => rows.count(), POLL).toBe(2);
    expect(await rows.nth(0).getAttribute('data-profile')).toBe(String(INCIDENT.staleProfileId));
    expect(await rows.nth(0).evaluate(readText)).toContain('Stale Shop GmbH');
    expect(await rows.nth(0).evaluate(readText)).toContain(INCIDENT.syncError);
    expect(await rows.nth(1).evaluate(readText)).toContain('Fresh Store Inc');
    await screenshot('profiles');
  });

  it('lists the dead letters of a queue with their reasons', async () => {
    await page.goto(`${base}/dead-letters`);
    expect(await text('#dead-letter-queues')).toContain(
      `${INCIDENT.deadLetters}× ${INCIDENT.deadLetterReason}`,
    );
    await page.click('a[href="/dead-letters/bulk-item"]');
    const rows = page.locator('#dead-letters tr:has(td)');
    await expect.poll(() => rows.count(), POLL).toBe(INCIDENT.deadLetters);
    expect(await rows.nth(0).evaluate(readText)).toContain(INCIDENT.deadLetterReason);
    await screenshot('dead-letters');
  });

  it('updates itself when the facts change, without reloading', async () => {
    await page.goto(`${base}/`);
    await page.evaluate(() => {
      (globalThis as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    expect(await text('#profiles')).toContain('1 not synced');
    await insertProfiles(database.pool, [
      profileRow({
        id: 9_000_000_003,
        countryCode: 'FR',
        accountName: 'Late Night SARL',
        // Three days without a good sync: past the 26 h objective.
        lastSyncedAt: new Date(Date.now() - 3 * 86_400_000),
      }),
    ]);
    await expect.poll(() => text('#profiles'), POLL).toContain('2 not synced');
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(
      true,
    );
    await screenshot('overview-updated');
  });

  it('refuses to bind beyond loopback without a token', async () => {
    const run = spawnNode('cli/main.ts', workerEnv(topology.prefix, { DATABASE_URL: database.url }), [
      'dashboard',
      '--host',
      '0.0.0.0',
      '--port',
      String(await freePort()),
    ]);
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(run.output.join('')).toContain('requires ADFLEET_DASHBOARD_TOKEN');
  });
});
