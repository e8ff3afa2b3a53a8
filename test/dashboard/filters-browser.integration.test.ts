import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
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
  tileValue,
} from './browser-harness.ts';

const ANDROID_UA =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36';
const SHOP = 'https://shop.example';

/** Events a server-side sender posts: user agent and country given explicitly (issue 20). */
function dataSet(now: number) {
  const ev = (user: string, minutesAgo: number, type: string, page: string, ua: string, country: string) => ({
    event_id: `${user}-${minutesAgo}`,
    type,
    user_id: user,
    timestamp: new Date(now - minutesAgo * 60_000).toISOString(),
    page_url: `${SHOP}${page}`,
    user_agent: ua,
    country,
  });
  return [
    // u1: a phone in Germany, from the newsletter; two pages in one visit.
    {
      ...ev(
        'u1',
        50,
        'page_view',
        '/blog/launch?utm_source=newsletter&utm_medium=email&utm_campaign=spring',
        PHONE_UA,
        'DE',
      ),
      referrer: null,
    },
    { ...ev('u1', 48, 'page_view', '/pricing', PHONE_UA, 'DE'), referrer: `${SHOP}/blog/launch` },
    // u2: a desktop in France, from a search engine; one page (a bounce).
    { ...ev('u2', 40, 'page_view', '/', DESKTOP_UA, 'FR'), referrer: 'https://www.google.com/' },
    // u3: a desktop in the US: pricing, then a signup there.
    { ...ev('u3', 30, 'page_view', '/pricing', DESKTOP_UA, 'US'), referrer: 'https://news.ycombinator.com/' },
    ev('u3', 29, 'signup', '/pricing', DESKTOP_UA, 'US'),
    // u4: an Android phone in Germany, direct; one page.
    ev('u4', 20, 'page_view', '/blog/launch', ANDROID_UA, 'DE'),
    // u5: a desktop in Britain; its campaign's name holds the filter syntax's own `|` and `\`.
    ev('u5', 10, 'page_view', '/promo?utm_source=partner&utm_campaign=a%7Cb%5Cc', DESKTOP_UA, 'GB'),
  ];
}

/** Visitors, visits, bounce rate, page views, events, as the tiles show them. */
function tiles(page: Page) {
  return Promise.all(
    ['tile-visitors', 'tile-visits', 'tile-bounce-rate', 'tile-page-views', 'tile-events'].map((id) =>
      tileValue(page, id),
    ),
  );
}

function chips(page: Page): Promise<string[]> {
  return page.locator('#filter-chips li span').allTextContents();
}

/** Each row of a panel's table as its cells' text. */
async function rows(page: Page, panel: string): Promise<string[][]> {
  const trs = page.locator(`#${panel} tbody tr`);
  return Promise.all((await trs.all()).map((tr) => tr.locator('td').allTextContents()));
}

const filtersOf = (url: string) => new URL(url).searchParams.getAll('filter');

/** Waits for the page's URL to hold exactly these filters (History API changes show up async). */
function urlFilters(page: Page, expected: string[]) {
  const want = JSON.stringify(expected);
  return page.waitForURL((url) => JSON.stringify(url.searchParams.getAll('filter')) === want, {
    timeout: 10_000,
  });
}

const same = (got: unknown, want: unknown) => JSON.stringify(got) === JSON.stringify(want);

test(
  'dashboard filters: a shared URL, chips, clicking a row, back and forward',
  { timeout: 180_000 },
  async (t) => {
    if (!requireTool(t, 'chromium', 'drives the dashboard tests', ['--version'])) return;
    const defer = teardownStack(t);
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-dashboard-filters-'));
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
    const res = await fetch(`${api}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(dataSet(Date.now())),
    });
    assert.equal(res.status, 202);
    await eventually(
      async () => ((await (await fetch(`${api}/v1/stats/summary`)).json()) as { events: number }).events,
      (n) => n === 7,
      20_000,
      'events committed',
    );

    const browser = await launchChromium();
    defer(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(10_000);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const stats: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/stats/')) stats.push(r.url());
    });
    const pick = (panel: string, text: string) =>
      page.locator(`#${panel} tbody`).getByRole('button', { name: text, exact: true });

    /** Every stats endpoint was asked with exactly `filters`, and no request carried others than `also`. */
    const askedWith = (filters: string[], also: string[][] = []) => {
      for (const url of stats)
        assert.ok(
          [filters, ...also].some((f) => same(filtersOf(url), f)),
          `${url} carries ${JSON.stringify(filtersOf(url))}`,
        );
      for (const endpoint of ['summary', 'timeseries', 'event-types', 'breakdown'])
        assert.ok(
          stats.some((u) => new URL(u).pathname === `/v1/stats/${endpoint}` && same(filtersOf(u), filters)),
          `${endpoint} asked with ${JSON.stringify(filters)}`,
        );
    };

    await t.test('a shared URL opens the filtered view, and every request carries the filter', async () => {
      await page.goto(`${api}/?filter=device%3D%3Dmobile`);
      await settled(page, ['device==mobile']);
      assert.deepEqual(await chips(page), ['Device is mobile']);
      askedWith(['device==mobile']);
      // Needs issue 20's query API from here on. Under device==mobile: u1 (2 page views, one
      // visit) and u4 (1 page view: a bounce).
      assert.deepEqual(await tiles(page), [2, 2, 50, 3, 3]);
      assert.deepEqual(await rows(page, 'pages'), [
        ['/blog/launch', '2', '100.0 %'],
        ['/pricing', '1', '50.0 %'],
      ]);
    });

    await t.test('clicking a row adds its filter to the URL, the chips and every request', async () => {
      stats.length = 0;
      await pick('pages', '/pricing').click();
      await urlFilters(page, ['device==mobile', 'page==/pricing']);
      assert.deepEqual(await chips(page), ['Device is mobile', 'Page is /pricing']);
      await settled(page, ['device==mobile', 'page==/pricing']);
      // u1's /pricing view; its visit (two page views) is no bounce.
      assert.deepEqual(await tiles(page), [1, 1, 0, 1, 1]);
      // A reload of the previous view may have been under way at the click (the live stream and
      // a timer start them); its requests carry the previous filters.
      askedWith(['device==mobile', 'page==/pricing'], [['device==mobile']]);
    });

    await t.test('Back and Forward step through the filters; a chip removes its filter', async () => {
      await page.goBack();
      await settled(page, ['device==mobile']);
      assert.deepEqual(await chips(page), ['Device is mobile']);
      assert.deepEqual(await tiles(page), [2, 2, 50, 3, 3]);
      await page.goForward();
      await settled(page, ['device==mobile', 'page==/pricing']);
      assert.deepEqual(await chips(page), ['Device is mobile', 'Page is /pricing']);
      assert.deepEqual(await tiles(page), [1, 1, 0, 1, 1]);

      await page.getByRole('button', { name: 'Remove filter: Device is mobile' }).click();
      await urlFilters(page, ['page==/pricing']);
      await settled(page, ['page==/pricing']);
      // /pricing: u1's view, u3's view and u3's signup there.
      assert.deepEqual(await tiles(page), [2, 2, 0, 2, 3]);
      await page.click('#clear-filters');
      await urlFilters(page, []);
      await settled(page, []);
      assert.equal(await page.locator('#filters').isHidden(), true);
      assert.deepEqual(await tiles(page), [5, 5, 60, 6, 7]);
    });

    await t.test('a value with `|` and `\\` filters exactly; countries show flag and name', async () => {
      await page.getByRole('tab', { name: 'UTM campaign' }).click();
      await pick('sources', 'a|b\\c').click();
      await urlFilters(page, ['utm_campaign==a\\|b\\\\c']);
      assert.deepEqual(await chips(page), ['UTM campaign is a|b\\c']);
      await settled(page, ['utm_campaign==a\\|b\\\\c']);
      assert.deepEqual(await tiles(page), [1, 1, 100, 1, 1]);
      await page.click('#clear-filters');
      await settled(page, []);
      const countries = await rows(page, 'countries');
      assert.equal(countries.length, 4);
      assert.deepEqual(countries[0], ['🇩🇪 Germany', '2', '40.0 %']);

      // The same URL in another tab opens the same view.
      await pick('countries', '🇩🇪 Germany').click();
      await urlFilters(page, ['country==DE']);
      const shared = await browser.newPage();
      defer(() => shared.close());
      await shared.goto(page.url());
      await settled(shared, ['country==DE']);
      assert.deepEqual(await chips(shared), ['Country is 🇩🇪 Germany']);
      assert.deepEqual(await tiles(shared), [2, 2, 50, 3, 3]);
    });

    await t.test('a filter the server refuses is marked on its chip', async () => {
      await page.goto(`${api}/?filter=colour%3D%3Dred&filter=device%3D%3Dmobile`);
      await page.locator('#filter-chips li.invalid').waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('#filter-chips li.invalid').count(), 1);
      assert.equal(await page.getAttribute('#filter-chips li.invalid', 'data-filter'), 'colour==red');
      assert.match((await page.textContent('#updated')) ?? '', /^Could not load/);
      assert.deepEqual(pageErrors, [], 'no script errors');
    });
  },
);
