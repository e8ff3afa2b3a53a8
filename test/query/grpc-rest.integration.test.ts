import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';
import { Oracle, prng } from '../helpers/oracle.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KOLKATA = 5.5 * HOUR;
const START = Date.UTC(2025, 0, 10, 5, 17, 23);
const SPAN = 3 * DAY;
const TYPES = ['page_view', 'page_view', 'page_view', 'click', 'click', 'user.login', 'purchase'];
const PAGES = Array.from({ length: 12 }, (_, i) => `https://example.com/p/${i}`);

function generate(count: number): { oracle: Oracle; events: Record<string, unknown>[] } {
  const random = prng(4);
  const oracle = new Oracle();
  const events: Record<string, unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const type = TYPES[Math.floor(random() * TYPES.length)];
    const e = {
      event_id: `q-${i}`,
      type,
      user_id: `u-${Math.floor(random() * 70)}`,
      ts: START + Math.floor(random() * SPAN),
      page_url: type === 'user.login' ? undefined : PAGES[Math.floor(random() * PAGES.length)],
    };
    oracle.add(e);
    events.push({ ...e, ts: undefined, timestamp: new Date(e.ts).toISOString() });
  }
  return { oracle, events };
}

const iso = (t: number) => new Date(t).toISOString();

// The same questions, as REST paths and as gRPC calls with the same parameters.
interface Question {
  rest: string;
  rpc: string;
  params: Record<string, string | number>;
}

function questions(): Question[] {
  const whole = { from: iso(Date.UTC(2025, 0, 9)), to: iso(Date.UTC(2025, 0, 14)) };
  const ragged = { from: '2025-01-10T07:13:00Z', to: '2025-01-12T19:41:00Z' };
  const qs: Question[] = [];
  for (const range of [whole, ragged, { from: String(START + 5 * HOUR), to: String(START + 7 * HOUR) }]) {
    qs.push({ rest: '/v1/stats/summary', rpc: 'GetSummary', params: range });
    qs.push({ rest: '/v1/stats/top-pages', rpc: 'GetTopPages', params: { ...range, limit: 5 } });
    qs.push({ rest: '/v1/stats/event-types', rpc: 'GetEventTypes', params: range });
  }
  for (const metric of ['events', 'page_views', 'unique_users'])
    for (const interval of ['hour', 'day'])
      for (const tz of ['UTC', 'Asia/Kolkata'])
        for (const range of [whole, ragged])
          qs.push({
            rest: '/v1/stats/timeseries',
            rpc: 'GetTimeseries',
            params: { ...range, metric, interval, tz },
          });
  qs.push({
    rest: '/v1/stats/timeseries',
    rpc: 'GetTimeseries',
    params: { from: '2025-01-11T10:00:00Z', to: '2025-01-11T12:30:00Z', interval: 'minute' },
  });
  qs.push({
    rest: '/v1/stats/timeseries',
    rpc: 'GetTimeseries',
    params: { ...ragged, event_type: 'click', page_url: PAGES[3], interval: 'day' },
  });
  // Date-only: that day's start in `tz` (timeseries), in UTC elsewhere.
  const day = { from: '2025-01-11', to: '2025-01-12' };
  qs.push({ rest: '/v1/stats/summary', rpc: 'GetSummary', params: day });
  qs.push({
    rest: '/v1/stats/timeseries',
    rpc: 'GetTimeseries',
    params: { ...day, tz: 'Asia/Kolkata', interval: 'hour' },
  });
  for (const user of ['u-1', 'u-2', 'u-69']) {
    qs.push({
      rest: `/v1/users/${user}/events`,
      rpc: 'GetUserEvents',
      params: { user_id: user, limit: 500 },
    });
    qs.push({
      rest: '/analytics/events',
      rpc: 'GetEventCount',
      params: { user_id: user, page_url: PAGES[1] },
    });
  }
  return qs;
}

function restUrl(base: string, q: Question): string {
  const url = new URL(q.rest, base);
  for (const [k, v] of Object.entries(q.params))
    if (k !== 'user_id' || q.rpc !== 'GetUserEvents') url.searchParams.set(k, String(v));
  return url.toString();
}

/** gRPC's proto3 shape back into REST's JSON shape (empty string → null, properties as object). */
function asRest(rpc: string, answer: Record<string, unknown>): Record<string, unknown> {
  if (rpc === 'GetSummary') {
    // proto3 `optional`: a ratio without visits is absent, REST's null.
    const out = { ...answer };
    for (const k of ['bounce_rate', 'visit_duration', 'visit_duration_median', 'views_per_visit'])
      out[k] ??= null;
    return out;
  }
  if (rpc !== 'GetUserEvents') return answer;
  const events = (answer.events as Record<string, unknown>[]).map((e) => {
    const { properties_json, ...rest } = e;
    const out: Record<string, unknown> = {
      ...rest,
      properties: properties_json === '' ? null : JSON.parse(properties_json as string),
    };
    for (const k of ['page_url', 'referrer', 'session_id', 'service']) if (out[k] === '') out[k] = null;
    return out;
  });
  return { ...answer, events };
}

test('REST and gRPC give identical answers, and both match the oracle', async (t) => {
  const tally = await startTestTally(t);
  const { oracle, events } = generate(2500);
  for (let i = 0; i < events.length; i += 500) {
    const res = await postJson(`${tally.url}/v1/events`, events.slice(i, i + 500));
    assert.equal(res.status, 202, JSON.stringify(res.body));
  }
  const client = analyticsClient(tally.grpcPort);
  t.after(() => client.close());

  for (const q of questions()) {
    const rest = await getJson(restUrl(tally.url, q));
    assert.equal(rest.status, 200, `${q.rest} ${JSON.stringify(q.params)}: ${JSON.stringify(rest.body)}`);
    const viaGrpc = asRest(q.rpc, await client.call(q.rpc, q.params));
    assert.deepEqual(viaGrpc, rest.body, `${q.rpc} ${JSON.stringify(q.params)}`);
  }

  // The oracle, for the questions with a simple expected answer.
  const from = Date.UTC(2025, 0, 9);
  const to = Date.UTC(2025, 0, 14);
  const summary = await client.call('GetSummary', { from: iso(from), to: iso(to) });
  assert.deepEqual(
    { events: summary.events, page_views: summary.page_views, unique_users: summary.unique_users },
    oracle.summary(from, to),
  );
  const raggedFrom = Date.parse('2025-01-10T07:13:00Z');
  const raggedTo = Date.parse('2025-01-12T19:41:00Z');
  const ragged = await client.call('GetSummary', { from: iso(raggedFrom), to: iso(raggedTo) });
  assert.deepEqual(
    { events: ragged.events, page_views: ragged.page_views, unique_users: ragged.unique_users },
    oracle.summary(raggedFrom, raggedTo),
  );
  for (const [metric, interval, tz, offset] of [
    ['unique_users', 'day', 'Asia/Kolkata', KOLKATA],
    ['unique_users', 'hour', 'UTC', 0],
    ['unique_users', 'day', 'UTC', 0],
    ['page_views', 'hour', 'UTC', 0],
    ['events', 'day', 'UTC', 0],
  ] as const) {
    const series = await client.call('GetTimeseries', { from: iso(from), to: iso(to), metric, interval, tz });
    const expected = oracle.series(metric, interval, offset);
    const points = series.points as { t: string; value: number }[];
    for (const p of points)
      assert.equal(p.value, expected.get(Date.parse(p.t)) ?? 0, `${metric} ${interval} ${tz} ${p.t}`);
    assert.equal(
      points.reduce((s, p) => s + (p.value > 0 ? 1 : 0), 0),
      expected.size,
    );
  }
  // A date-only range is one whole day: UTC for the summary, Kolkata's day for the timeseries.
  const utcDay = await getJson(`${tally.url}/v1/stats/summary?from=2025-01-11&to=2025-01-12`);
  const {
    from: dayFrom,
    to: dayTo,
    events: dayEvents,
    page_views: dayViews,
    unique_users: dayUsers,
  } = utcDay.body;
  assert.deepEqual(
    { from: dayFrom, to: dayTo, events: dayEvents, page_views: dayViews, unique_users: dayUsers },
    {
      from: '2025-01-11T00:00:00.000Z',
      to: '2025-01-12T00:00:00.000Z',
      ...oracle.summary(Date.UTC(2025, 0, 11), Date.UTC(2025, 0, 12)),
    },
  );
  const kolkataDay = await client.call('GetTimeseries', {
    from: '2025-01-11',
    to: '2025-01-12',
    tz: 'Asia/Kolkata',
    interval: 'day',
  });
  const dayStart = Date.UTC(2025, 0, 11) - KOLKATA;
  assert.equal(kolkataDay.from, iso(dayStart));
  assert.equal(kolkataDay.to, iso(dayStart + DAY));
  assert.deepEqual(kolkataDay.points, [
    { t: '2025-01-11T00:00:00+05:30', value: oracle.summary(dayStart, dayStart + DAY).events },
  ]);

  const top = await client.call('GetTopPages', { from: iso(from), to: iso(to), limit: 3 });
  assert.deepEqual(top.pages, oracle.topPages().slice(0, 3));
  const count = await client.call('GetEventCount', { user_id: 'u-2', page_url: PAGES[1] });
  assert.equal(
    count.count,
    oracle.events.filter((e) => e.user_id === 'u-2' && e.page_url === PAGES[1]).length,
  );
  assert.ok(count.count > 0, 'the generated data should give u-2 events on that page');
  const userEvents = await client.call('GetUserEvents', { user_id: 'u-2', limit: 1000 });
  assert.deepEqual(
    new Set((userEvents.events as { event_id: string }[]).map((e) => e.event_id)),
    new Set(oracle.userEvents('u-2').map((e) => e.event_id)),
  );
});

test('gRPC: INVALID_ARGUMENT names the field; health and reflection answer', async (t) => {
  const tally = await startTestTally(t);
  const client = analyticsClient(tally.grpcPort);
  t.after(() => client.close());

  const cases: [string, Record<string, unknown>, string][] = [
    ['GetSummary', { from: '2025-01-02T00:00:00Z', to: '2025-01-01T00:00:00Z' }, 'from'],
    ['GetSummary', { to: 'yesterday-ish' }, 'to'],
    ['GetSummary', { from: '2025-02-29' }, 'from'],
    ['GetTimeseries', { from: '2025-01-01', to: '2025-13-01', tz: 'Asia/Kolkata' }, 'to'],
    ['GetTimeseries', { metric: 'revenue' }, 'metric'],
    ['GetTimeseries', { interval: 'week' }, 'interval'],
    ['GetTimeseries', { tz: 'Mars/Olympus' }, 'tz'],
    ['GetTimeseries', { metric: 'unique_users', page_url: 'https://x' }, 'page_url'],
    ['GetTopPages', { limit: 5000 }, 'limit'],
    ['GetUserEvents', {}, 'user_id'],
    ['GetEventCount', { user_id: 'u-1' }, 'page_url'],
  ];
  for (const [method, request, field] of cases) {
    await assert.rejects(client.call(method, request), (err: grpc.ServiceError) => {
      assert.equal(
        err.code,
        grpc.status.INVALID_ARGUMENT,
        `${method} ${JSON.stringify(request)}: ${err.message}`,
      );
      assert.ok(
        err.details.startsWith(`${field}:`),
        `${method}: "${err.details}" should start with ${field}:`,
      );
      assert.deepEqual(err.metadata.get('tally-error-code').length, 1);
      return true;
    });
  }

  for (const [query, field] of [
    ['from=2026-02-30', 'from'],
    ['from=2026-12-01&to=2026-13-01&tz=Asia/Kolkata', 'to'],
  ]) {
    const rest = await getJson<{ code: string; errors: { field: string }[] }>(
      `${tally.url}/v1/stats/timeseries?${query}`,
    );
    assert.equal(rest.status, 400, query);
    assert.equal(rest.body.code, 'TALLY_INVALID_QUERY');
    assert.equal(rest.body.errors[0].field, field, query);
  }

  assert.equal(await client.health(''), 'SERVING');
  assert.equal(await client.health('tally.v1.AnalyticsService'), 'SERVING');
  const services = await client.listServices();
  assert.ok(services.includes('tally.v1.AnalyticsService'), services.join(', '));
  assert.ok(services.includes('grpc.health.v1.Health'), services.join(', '));
});
