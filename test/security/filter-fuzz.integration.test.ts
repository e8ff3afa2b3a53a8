import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';
import { sessionize, storeWebEvents, type WebEvent } from '../query/web-fixtures.ts';

/**
 * Filters and dimensions (issue 20) under hostile values: parameters only, so a value is data;
 * the random filter syntax is fuzzed with every other query in fuzz.integration.test.ts.
 */

test('filter values are data: hostile filters get a coded 400 or the exact answer', async (t) => {
  const tally = await startTestTally(t);
  const paths = ["/it's", '/100%', '/a_b', '/axb', '/back\\slash', '/pipe|x', '/quote"d', '/plain'];
  const start = Date.UTC(2024, 0, 2);
  const events: WebEvent[] = paths.flatMap((path, i) =>
    Array.from({ length: i + 1 }, (_, j) => ({
      event_id: `h-${i}-${j}`,
      user_id: `u-${j}`,
      type: 'page_view',
      ts: start + (i * 10 + j) * 3_600_000,
      session_id: null,
      properties: { "'; DROP TABLE tally.events; --": path },
      path,
      hostname: 'example.com',
      referrer_host: null,
      channel: 'Direct',
      utm_source: null,
      utm_medium: null,
      utm_campaign: null,
      utm_term: null,
      utm_content: null,
      browser: null,
      os: null,
      device: null,
      country: null,
      is_bot: false,
    })),
  );
  await storeWebEvents(tally.url, tally.database.pool, events, sessionize(events, 30 * 60_000));
  const range = `from=${new Date(start).toISOString()}&to=${new Date(start + 10 * 86_400_000).toISOString()}`;
  const count = (match: (p: string) => boolean) => events.filter((e) => match(e.path!)).length;
  const get = (path: string, filters: string[], extra = '') =>
    getJson(
      `${tally.url}${path}?${range}${extra}${filters.map((f) => `&filter=${encodeURIComponent(f)}`).join('')}`,
    );

  const exact: [string[], number][] = [
    [['page==/100%'], count((p) => p === '/100%')],
    [['page~=%'], count((p) => p.includes('%'))],
    [['page~=_'], count((p) => p.includes('_'))],
    [['page~=\\\\'], count((p) => p.includes('\\'))],
    [['page==/pipe\\|x'], count((p) => p === '/pipe|x')],
    [["page~='"], count((p) => p.includes("'"))],
    [['page~="'], count((p) => p.includes('"'))],
    [["page==' OR '1'='1"], 0],
    [["page!=' OR '1'='1"], events.length],
    [['page~=A_B|AXB'], count((p) => p === '/a_b' || p === '/axb')],
    [["property:'; DROP TABLE tally.events; --==/plain"], count((p) => p === '/plain')],
    [['property:$1==/plain'], 0],
    [Array.from({ length: 100 }, (_, i) => `page!=/p${i}`), events.length],
  ];
  for (const [filters, expected] of exact) {
    const res = await get('/v1/stats/summary', filters);
    assert.equal(res.status, 200, `${filters[0]}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.events, expected, filters[0]);
  }
  const wildcard = await get('/v1/stats/breakdown', ['page~=%|_'], '&dimension=page&metrics=events');
  assert.deepEqual(
    (wildcard.body.results as { value: string }[]).map((r) => r.value),
    ['/a_b', '/100%'],
  );
  const byKey = await get(
    '/v1/stats/breakdown',
    [],
    `&dimension=${encodeURIComponent("property:' OR 1>0 --")}`,
  );
  assert.deepEqual(byKey.body.results, [{ value: '(none)', visitors: 8, percentage: 100 }]);

  // A NUL byte never reaches the filter parser over HTTP: the URL is refused first (hardening.ts).
  const nul = await get('/v1/stats/summary', ['page==a\u0000b']);
  assert.equal(nul.status, 400);
  assert.equal(nul.body.code, 'TALLY_INVALID_QUERY');
  assert.match(String(nul.body.message), /NUL/);
  const refused: [string[], string, RegExp][] = [
    // 10 KB that stay 10 KB in a URL (a quote or % would triple, past Node's 16 KB header limit: 431).
    [['device==mobile', `page==${'_'.repeat(10 * 1024)}`], 'filter[1]', /longer than 2048/],
    [Array.from({ length: 101 }, () => 'device==mobile'), 'filter', /at most 100 filters/],
    [['page=/x'], 'filter[0]', /expected <dimension><op><value>/],
    [['page==a\\%'], 'filter[0]', /bad escape/],
  ];
  for (const [filters, field, message] of refused) {
    for (const path of ['/v1/stats/summary', '/v1/stats/breakdown', '/v1/stats/timeseries']) {
      const res = await get(path, filters, path.endsWith('breakdown') ? '&dimension=page' : '');
      assert.equal(res.status, 400, `${path} ${filters.at(-1)!.slice(0, 40)}`);
      assert.equal(res.body.code, 'TALLY_INVALID_QUERY');
      const error = (res.body.errors as { field: string; message: string }[] | undefined)?.[0];
      assert.ok(error, JSON.stringify(res.body));
      assert.equal(error.field, field);
      assert.match(error.message, message);
    }
  }
});
