import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { pino } from 'pino';
import { startEmbeddedTally } from '../../src/cli/embedded-tally.ts';
import { loadConfig } from '../../src/config/load.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { requireTool } from '../helpers/require-tool.ts';
import {
  DESKTOP_UA,
  eventually,
  launchChromium,
  PHONE_UA,
  settled,
  teardownStack,
} from './browser-harness.ts';

const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);
const SHOP = 'https://shop.example';
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

/**
 * Five users through pricing → signup → purchase on the Tuesday of the week two weeks back (UTC
 * weeks, Monday first), two of them back the week after. The oracle, by hand:
 * - strict order: 5 saw /pricing; u1, u2, u3 signed up after it (1, 2, 3 minutes later: median
 *   2 minutes); u1 bought an hour after signing up. u5 signed up before /pricing: step 1 only.
 *   Counts 5, 3, 1: 60 % and 20 % of the first, 60 % and 33.3 % of the previous.
 * - any order: u5 counts at step 2 too: 5, 4, 1.
 * - under device==mobile: only u4 (the phone): 1, 0, 0.
 * - retention by week, first seen: the cohort of week W holds all five; u1 and u2 come back in
 *   W+1 (40 %), nobody in the current week W+2 (0 %); every other week's cohort is empty.
 * - cohorts by first signup (u1, u2, u3, u5), back by a page view: 4, 100 % in W (a page view in
 *   the cohort's own period counts, even before the signup), 50 % in W+1.
 */
function dataSet(now: number) {
  const today = Math.floor(now / DAY) * DAY;
  const monday = today - ((new Date(today).getUTCDay() + 6) % 7) * DAY;
  const cohortWeek = monday - 14 * DAY;
  const t0 = cohortWeek + DAY + 12 * HOUR;
  const events: object[] = [];
  const ev = (user: string, at: number, type: string, page: string, ua = DESKTOP_UA) =>
    events.push({
      event_id: `${user}-${type}-${at}`,
      type,
      user_id: user,
      timestamp: new Date(at).toISOString(),
      page_url: `${SHOP}${page}`,
      user_agent: ua,
      country: 'DE',
    });
  for (const [user, signupAfter] of [
    ['u1', 60],
    ['u2', 120],
    ['u3', 180],
  ] as const) {
    ev(user, t0, 'page_view', '/pricing');
    ev(user, t0 + signupAfter * SECOND, 'signup', '/pricing');
  }
  ev('u1', t0 + 60 * SECOND + HOUR, 'purchase', '/checkout');
  ev('u4', t0, 'page_view', '/pricing', PHONE_UA);
  ev('u5', t0 - HOUR, 'signup', '/signup');
  ev('u5', t0, 'page_view', '/pricing');
  ev('u1', t0 + 8 * DAY, 'page_view', '/blog');
  ev('u2', t0 + 8 * DAY, 'page_view', '/blog');
  return { events, cohortDate: new Date(cohortWeek).toISOString().slice(0, 10) };
}

interface FunnelBody {
  from: string;
  to: string;
  tz: string;
  filter?: string[];
  order: string;
}

interface StepRow {
  label: string;
  count: string;
  first: string;
  previous: string;
  median: string;
}

async function funnelRows(page: Page): Promise<StepRow[]> {
  return Promise.all(
    (await page.locator('#funnel-table tbody tr').all()).map(async (tr) => {
      const cells = await tr.locator('th, td').allTextContents();
      const [label, count, first, previous, median] = cells.map((c) => c.trim());
      return { label, count, first, previous, median };
    }),
  );
}

/** Clicks `button` and waits for `view` ('funnel' or 'retention') to finish: drawn or refused. */
async function ask(page: Page, view: string, button: string, expect: 'done' | 'error' = 'done') {
  await page.locator(`#${view}`).getByRole('button', { name: button }).click();
  await page.locator(`#${view}[data-state="${expect}"]`).waitFor();
}

function step(page: Page, n: number) {
  return page.locator('#funnel-steps > li').nth(n - 1);
}

test(
  'funnel and retention views in a real browser: known answers, the page view applied, API errors shown',
  { timeout: 90_000 },
  async (t) => {
    if (!requireTool(t, 'chromium', 'drives the dashboard tests', ['--version'])) return;
    const defer = teardownStack(t);
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-dashboard-product-'));
    defer(() => rm(dataDir, { recursive: true, force: true }));
    const tally = await startEmbeddedTally(
      loadConfig({
        TALLY_DATA_DIR: dataDir,
        SERVER_PORT: String(await findFreePort()),
        // Never the default 50051: another Tally on this machine may hold it.
        TALLY_GRPC_PORT: '0',
        TALLY_LOG_LEVEL: 'silent',
      }),
      pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    );
    defer(() => tally.stop());
    const api = tally.url;
    const now = Date.now();
    const { events, cohortDate } = dataSet(now);
    const res = await fetch(`${api}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    assert.equal(res.status, 202);
    await eventually(
      async () =>
        (
          (await (await fetch(`${api}/v1/stats/summary?from=${now - 30 * DAY}&to=${now}`)).json()) as {
            events: number;
          }
        ).events,
      (n) => n === events.length,
      20_000,
      'events committed',
    );

    const browser = await launchChromium();
    defer(() => browser.close());
    // The page asks in the browser's zone: UTC, the zone of the oracle's weeks.
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, timezoneId: 'UTC' });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const funnelBodies: FunnelBody[] = [];
    const retentionAsked: URLSearchParams[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/v1/stats/funnel')
        funnelBodies.push(JSON.parse(r.postData() ?? '{}') as FunnelBody);
      if (new URL(r.url()).pathname === '/v1/stats/retention')
        retentionAsked.push(new URL(r.url()).searchParams);
    });
    await page.goto(`${api}/?range=30d`);
    await settled(page, []);

    await t.test('a 3-step funnel shows counts, conversions and median times', async () => {
      await page.getByText('Funnel', { exact: true }).click();
      await page.getByRole('button', { name: 'Add step' }).click();
      assert.equal(await page.locator('#funnel-steps > li').count(), 3);
      await step(page, 1).getByLabel('Event type').fill('page_view');
      await step(page, 1).getByLabel('Page').fill('/pricing');
      await step(page, 2).getByLabel('Event type').fill('signup');
      await step(page, 3).getByLabel('Event type').fill('purchase');
      await page.getByLabel('Window').fill('7d');
      await ask(page, 'funnel', 'Show funnel');
      assert.deepEqual(await funnelRows(page), [
        { label: '1. page_view /pricing', count: '5', first: '100.0 %', previous: '–', median: '–' },
        { label: '2. signup', count: '3', first: '60.0 %', previous: '60.0 %', median: '2m 00s' },
        { label: '3. purchase', count: '1', first: '20.0 %', previous: '33.3 %', median: '1h 00m' },
      ]);
      // Asked under the page's range (30 days) and zone.
      const body = funnelBodies.at(-1)!;
      assert.equal(Number(body.to) - Number(body.from), 30 * DAY);
      assert.equal(body.tz, 'UTC');
      assert.equal(body.filter, undefined);

      await page.getByLabel('Order').selectOption('any');
      await ask(page, 'funnel', 'Show funnel');
      // Order any: u5's signup before /pricing counts.
      assert.deepEqual(
        (await funnelRows(page)).map((r) => r.count),
        ['5', '4', '1'],
      );
      await page.getByLabel('Order').selectOption('strict');

      // By device on the first step's event: the phone (u4) alone, the four desktops.
      await page.getByLabel('Breakdown').selectOption('device');
      await ask(page, 'funnel', 'Show funnel');
      const groups = await page
        .locator('#funnel-groups tr')
        .evaluateAll((trs) =>
          trs.map((tr) =>
            [...(tr as unknown as { cells: Iterable<{ textContent: string }> }).cells].map(
              (c) => c.textContent,
            ),
          ),
        );
      assert.deepEqual(groups[0], ['Device', 'Step 1', 'Step 2', 'Step 3']);
      assert.deepEqual(
        groups.slice(1).sort((a, b) => a[0].localeCompare(b[0])),
        [
          ['desktop', '4', '3', '1'],
          ['mobile', '1', '0', '0'],
        ],
      );
      await page.getByLabel('Breakdown').selectOption('');
      await ask(page, 'funnel', 'Show funnel');
      assert.equal(await page.locator('#funnel-groups').isHidden(), true);
    });

    await t.test("the page's filters apply, and a change of them asks again", async () => {
      await page.getByRole('tab', { name: 'Device type' }).click();
      await page.locator('#devices tbody').getByRole('button', { name: 'mobile', exact: true }).click();
      await settled(page, ['device==mobile']);
      await page.locator('#funnel[data-state="done"]').waitFor();
      await eventually(
        async () => (await funnelRows(page)).map((r) => [r.count, r.first, r.previous]),
        (rows) =>
          JSON.stringify(rows) ===
          JSON.stringify([
            ['1', '100.0 %', '–'],
            ['0', '0.0 %', '0.0 %'],
            ['0', '0.0 %', '–'],
          ]),
        10_000,
        'funnel under device==mobile',
      );
      assert.deepEqual(funnelBodies.at(-1)!.filter, ['device==mobile']);
      await page.click('#clear-filters');
      await settled(page, []);
      await eventually(
        async () => (await funnelRows(page)).map((r) => r.count),
        (counts) => JSON.stringify(counts) === JSON.stringify(['5', '3', '1']),
        10_000,
        'funnel without filters',
      );
    });

    await t.test("a step the API refuses shows the API's message next to the form", async () => {
      await step(page, 2).getByLabel('Event type').fill('');
      const sent = funnelBodies.length;
      await ask(page, 'funnel', 'Show funnel', 'error');
      const direct = await fetch(`${api}/v1/stats/funnel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(funnelBodies[sent]),
      });
      assert.equal(direct.status, 400);
      const refusal = (await direct.json()) as { message: string; errors: { field: string }[] };
      assert.equal(refusal.errors[0].field, 'steps[1]');
      assert.equal(await page.locator('#funnel-error').textContent(), refusal.message);
      assert.match(refusal.message, /steps\[1\]/);
      assert.equal(await page.locator('#funnel-error').isVisible(), true);
      // The step the API names is marked; the others are not.
      assert.equal(await step(page, 2).getByLabel('Event type').getAttribute('aria-invalid'), 'true');
      assert.equal(
        await step(page, 2).getByLabel('Event type').getAttribute('aria-describedby'),
        'funnel-error',
      );
      assert.equal(await step(page, 1).getByLabel('Event type').getAttribute('aria-invalid'), null);

      await step(page, 2).getByLabel('Event type').fill('signup');
      await page.getByLabel('Window').fill('100d');
      await ask(page, 'funnel', 'Show funnel', 'error');
      assert.match((await page.locator('#funnel-error').textContent()) ?? '', /window must be at most 90d/);
      assert.equal(await page.getByLabel('Window').getAttribute('aria-invalid'), 'true');
      assert.equal(await step(page, 2).getByLabel('Event type').getAttribute('aria-invalid'), null);

      await page.getByLabel('Window').fill('7d');
      await ask(page, 'funnel', 'Show funnel');
      assert.equal(await page.locator('#funnel-error').isHidden(), true);
      assert.equal(await page.getByLabel('Window').getAttribute('aria-invalid'), null);
      assert.deepEqual(
        (await funnelRows(page)).map((r) => r.count),
        ['5', '3', '1'],
      );
    });

    await t.test('steps can be removed down to two and added up to ten', async () => {
      const remove = (n: number) => page.getByRole('button', { name: `Remove step ${n}` });
      await remove(3).click();
      assert.equal(await page.locator('#funnel-steps > li').count(), 2);
      assert.equal(await remove(1).isDisabled(), true);
      for (let i = 2; i < 10; i++) await page.getByRole('button', { name: 'Add step' }).click();
      assert.equal(await page.getByRole('button', { name: 'Add step' }).isDisabled(), true);
      assert.equal(await page.locator('#funnel-steps legend').last().textContent(), 'Step 10');
    });

    await t.test('the retention table: cohorts with their size, a shaded cell per period', async () => {
      await page.getByText('Retention', { exact: true }).click();
      // Opening the view asks with its defaults (weeks, 8 of them).
      await page.locator('#retention[data-state="done"]').waitFor();
      assert.equal(await page.locator('#retention-table thead th').count(), 2 + 8);
      await page.getByLabel('Periods').fill('3');
      await ask(page, 'retention', 'Show retention');
      const headings = await page.locator('#retention-table thead th').allTextContents();
      assert.deepEqual(headings, ['Cohort', 'Users', 'Week 0', 'Week 1', 'Week 2']);
      const rows = await retentionRows(page);
      const cohort = rows.find((r) => r[0] === cohortDate);
      assert.deepEqual(cohort, [cohortDate, '5', '100.0 %', '40.0 %', '0.0 %']);
      // Every other week's cohort is empty; the current week's later periods are not over.
      for (const r of rows.filter((r) => r[0] !== cohortDate))
        assert.deepEqual(r.slice(1), ['0', '–', '–', '–']);
      const last = page.locator('#retention-table tbody tr').last();
      assert.equal(await last.locator('td').nth(2).getAttribute('title'), 'Not over yet');
      assert.equal(await last.locator('td').nth(2).getAttribute('data-value'), null);
      const shades = await page
        .locator('#retention-table tbody tr', { hasText: cohortDate })
        .locator('td.cell')
        .evaluateAll((tds) =>
          tds.map((td) => (td as unknown as { dataset: { shade: string } }).dataset.shade),
        );
      assert.deepEqual(shades, ['5', '3', '0']);

      await page.getByLabel('Cohort event').fill('signup');
      await page.getByLabel('Return event').fill('page_view');
      await ask(page, 'retention', 'Show retention');
      const bySignup = (await retentionRows(page)).find((r) => r[0] === cohortDate);
      assert.deepEqual(bySignup, [cohortDate, '4', '100.0 %', '50.0 %', '0.0 %']);
      // Asked under the page's range and zone, with what the form holds.
      const asked = retentionAsked.at(-1)!;
      assert.equal(Number(asked.get('to')) - Number(asked.get('from')), 30 * DAY);
      assert.deepEqual(
        ['tz', 'period', 'periods', 'cohort_event', 'return_event'].map((k) => asked.get(k)),
        ['UTC', 'week', '3', 'signup', 'page_view'],
      );
      // For a person to look at (CI keeps test-artifacts/).
      await mkdir(ARTIFACTS, { recursive: true });
      await page.setViewportSize({ width: 375, height: 800 });
      const overflow = await page.evaluate<number>(`document.documentElement.scrollWidth`);
      assert.ok(overflow <= 375, `no horizontal scrolling at 375 px (content is ${overflow} px wide)`);
      await page.screenshot({
        path: new URL('dashboard-product-375.png', ARTIFACTS).pathname,
        fullPage: true,
      });
      await page.setViewportSize({ width: 1280, height: 1000 });
      for (const view of ['funnel', 'retention'])
        await page
          .locator(`#${view}`)
          .screenshot({ path: new URL(`dashboard-${view}.png`, ARTIFACTS).pathname });
    });

    await t.test('a retention question the API refuses shows its message', async () => {
      await page.getByLabel('Periods').fill('60');
      await ask(page, 'retention', 'Show retention', 'error');
      assert.match(
        (await page.locator('#retention-error').textContent()) ?? '',
        /periods must be at most 52 with period=week/,
      );
      assert.equal(await page.getByLabel('Periods').getAttribute('aria-invalid'), 'true');
      assert.deepEqual(pageErrors, [], 'no script errors');
    });
  },
);

async function retentionRows(page: Page): Promise<string[][]> {
  return Promise.all(
    (await page.locator('#retention-table tbody tr').all()).map((tr) =>
      tr.locator('th, td').allTextContents(),
    ),
  );
}
