import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveDimensions } from '../../src/event/derive.ts';
import { startTestTally } from '../helpers/embedded-tally.ts';

const BROWSER_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
// TRICKY: the bot rule of src/event/derive.ts is another change of issue 20; until it is merged
// the last part of the test has nothing to check.
const botsKnown = deriveDimensions({ pageUrl: null, referrer: null, userAgent: GOOGLEBOT }).bot;

test('tally start: a beacon behind a trusted proxy is stored with its User-Agent, country and dimensions, never its address', async (t) => {
  const tally = await startTestTally(t, { TALLY_TRUSTED_PROXIES: '127.0.0.1, ::1' });
  const send = (body: unknown, headers: Record<string, string>) =>
    fetch(`${tally.url}/v1/collect`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...headers },
      body: JSON.stringify(body),
    });
  const res = await send(
    { event_id: 'v1', type: 'page_view', user_id: 'u1', page_url: 'https://shop.example/p?utm_source=news' },
    { 'user-agent': BROWSER_UA, 'x-forwarded-for': '8.8.8.8' },
  );
  assert.equal(res.status, 202, await res.text());
  const { rows } = await tally.database.pool.query<Record<string, unknown>>(
    `SELECT user_agent, country, hostname, path, is_bot FROM tally.events WHERE event_id = 'v1'`,
  );
  assert.deepEqual(rows, [
    { user_agent: BROWSER_UA, country: 'US', hostname: 'shop.example', path: '/p', is_bot: false },
  ]);
  // The address is in no column of the raw row.
  const all = await tally.database.pool.query<{ row: string }>(`SELECT e::text AS row FROM tally.events e`);
  assert.ok(all.rows.every((r) => !r.row.includes('8.8.8.8')));

  if (!botsKnown) return t.diagnostic('derive.ts flags no bots yet: the bot part is skipped');
  const bot = await send(
    { event_id: 'b1', type: 'page_view', user_id: 'crawler', page_url: 'https://shop.example/p' },
    { 'user-agent': GOOGLEBOT },
  );
  assert.equal(bot.status, 202);
  const stored = await tally.database.pool.query<{ is_bot: boolean }>(
    `SELECT is_bot FROM tally.events WHERE event_id = 'b1'`,
  );
  assert.deepEqual(stored.rows, [{ is_bot: true }]);
  const counted = await tally.database.pool.query<{ n: string }>(
    `SELECT coalesce(sum(count), 0) AS n FROM tally.rollup_events WHERE level = 0`,
  );
  assert.equal(counted.rows[0].n, '1', 'the bot page view is not counted');
  const metrics = await (await fetch(`${tally.url}/metrics`)).text();
  assert.match(metrics, /^tally_bot_events_total 1$/m);
});
