import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';

/**
 * Questions only the raw events answer (a filter, bots=include|only, visits, a breakdown) are
 * refused with TALLY_RAW_UNAVAILABLE where the raw rows are missing, never answered as zeros;
 * and the visits under an event filter are chosen by the selected events in [from, to) only.
 */

const HOUR = 3_600_000;
const DAY = 86_400_000;

type ErrorBody = { code: string; errors: { field: string; code: string }[] };

async function refused(url: string, field: string) {
  const res = await getJson<ErrorBody>(url);
  assert.equal(res.status, 400, `${url}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.code, 'TALLY_RAW_UNAVAILABLE', url);
  assert.deepEqual(
    res.body.errors.map((e) => [e.field, e.code]),
    [[field, 'TALLY_RAW_UNAVAILABLE']],
    url,
  );
}

test('TALLY_STORE_RAW=false: raw questions are a coded 400 naming their parameter; the summary keeps its rollup figures', async (t) => {
  const tally = await startTestTally(t, { TALLY_STORE_RAW: 'false' });
  const ts = Date.now() - HOUR;
  const sent = await postJson(`${tally.url}/v1/events`, [
    {
      event_id: 'a',
      type: 'page_view',
      user_id: 'u1',
      timestamp: new Date(ts).toISOString(),
      page_url: 'https://x.com/a',
    },
  ]);
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  const stats = `${tally.url}/v1/stats`;
  await refused(`${stats}/summary?filter=page==/a`, 'filter');
  await refused(`${stats}/summary?bots=include`, 'bots');
  await refused(`${stats}/summary?bots=only&filter=page==/a`, 'filter');
  await refused(`${stats}/breakdown?dimension=page`, 'dimension');
  await refused(`${stats}/breakdown?dimension=page&bots=only`, 'bots');
  await refused(`${stats}/timeseries?metric=visits&interval=hour`, 'metric');
  await refused(`${stats}/timeseries?metric=visitors&interval=hour&event_type=page_view`, 'event_type');
  await refused(`${stats}/timeseries?metric=unique_users&interval=hour&event_type=page_view`, 'event_type');
  await refused(`${stats}/timeseries?metric=events&interval=hour&filter=page==/a`, 'filter');
  await refused(`${stats}/top-pages?bots=include`, 'bots');
  await refused(`${stats}/event-types?filter=country==FR`, 'filter');

  // The dashboard's summary: events and users from the rollups, visit figures null (not 0).
  const summary = await getJson(`${stats}/summary`);
  assert.equal(summary.status, 200, JSON.stringify(summary.body));
  assert.equal(summary.body.events, 1);
  assert.equal(summary.body.unique_users, 1);
  assert.equal(summary.body.visitors, 1);
  for (const k of ['visits', 'bounce_rate', 'visit_duration', 'visit_duration_median', 'views_per_visit']) {
    assert.equal(summary.body[k], null, k);
  }
  // Rollup questions still answer.
  const series = await getJson(`${stats}/timeseries?metric=unique_users&interval=hour`);
  assert.equal(series.status, 200, JSON.stringify(series.body));
});

test('TALLY_RAW_RETENTION_DAYS: from before the cutoff is refused for raw questions; visits follow selected events in range', async (t) => {
  const tally = await startTestTally(t, { TALLY_RAW_RETENTION_DAYS: '7' });
  const stats = `${tally.url}/v1/stats`;
  const cutoff = Math.floor(Date.now() / DAY) * DAY - 7 * DAY;
  const iso = (ms: number) => new Date(ms).toISOString();
  const old = `from=${iso(cutoff - DAY)}&to=${iso(cutoff + DAY)}`;
  await refused(`${stats}/summary?${old}&filter=page==/a`, 'from');
  await refused(`${stats}/breakdown?${old}&dimension=channel`, 'from');
  await refused(`${stats}/timeseries?${old}&metric=visits&interval=day`, 'from');
  await refused(`${stats}/top-pages?${old}&bots=only`, 'from');
  const summary = await getJson(`${stats}/summary?${old}`);
  assert.equal(summary.status, 200, JSON.stringify(summary.body));
  assert.equal(summary.body.visits, null);
  const inWindow = await getJson(`${stats}/summary?from=${iso(cutoff)}&filter=page==/a`);
  assert.equal(inWindow.status, 200, JSON.stringify(inWindow.body));

  // One visit (an explicit session): a page view in range, a click two hours later, after `to`.
  const start = Math.floor(Date.now() / DAY) * DAY - DAY + 10 * HOUR;
  const event = (id: string, type: string, ts: number) => ({
    event_id: id,
    type,
    user_id: 'u1',
    session_id: 's1',
    timestamp: iso(ts),
    page_url: 'https://x.com/a',
  });
  const sent = await postJson(`${tally.url}/v1/events`, [
    event('v1', 'page_view', start),
    event('v2', 'click', start + 2 * HOUR),
  ]);
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  const range = `from=${iso(start - HOUR)}&to=${iso(start + HOUR)}`;
  const clicked = await getJson(`${stats}/summary?${range}&filter=event_type==click`);
  assert.equal(clicked.status, 200, JSON.stringify(clicked.body));
  assert.equal(clicked.body.events, 0);
  assert.equal(clicked.body.visits, 0, 'the click after `to` does not select the visit');
  const viewed = await getJson(`${stats}/summary?${range}&filter=event_type==page_view`);
  assert.equal(viewed.body.visits, 1);
  const byType = await getJson<{ results: { value: string; visits: number }[] }>(
    `${stats}/breakdown?${range}&dimension=event_type&metrics=visits`,
  );
  assert.equal(byType.status, 200, JSON.stringify(byType.body));
  assert.deepEqual(byType.body.results, [{ value: 'page_view', visits: 1, percentage: 100 }]);
  const whole = await getJson(
    `${stats}/summary?from=${iso(start - HOUR)}&to=${iso(start + 3 * HOUR)}&filter=event_type==click`,
  );
  assert.equal(whole.body.visits, 1, 'in a range holding the click, it selects the visit');
  // unique_users under event_type is visitors: the distinct users of those events.
  const users = await getJson<{ points: { value: number }[] }>(
    `${stats}/timeseries?from=${iso(start - HOUR)}&to=${iso(start + 3 * HOUR)}&metric=unique_users&interval=day&event_type=click`,
  );
  assert.equal(users.status, 200, JSON.stringify(users.body));
  assert.deepEqual(
    users.body.points.map((p) => p.value),
    [1],
  );
});
