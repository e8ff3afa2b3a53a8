import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { getJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';
import { prng } from '../helpers/oracle.ts';
import { sessionize, storeWebEvents, type WebEvent } from './web-fixtures.ts';

const MINUTE = 60_000;
const START = Date.UTC(2024, 5, 3, 8);

function events(count: number): WebEvent[] {
  const random = prng(20);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  return Array.from({ length: count }, (_, i) => {
    const bot = random() < 0.1;
    return {
      event_id: `g-${i}`,
      user_id: bot ? 'crawler' : `u-${Math.floor(random() * 25)}`,
      type: pick(['page_view', 'page_view', 'click']),
      ts: START + Math.floor(random() * 36 * 60) * MINUTE,
      session_id: null,
      properties: random() < 0.5 ? { plan: pick(['pro', 'free']) } : null,
      path: pick(['/', '/pricing', '/docs']),
      hostname: 'example.com',
      referrer_host: pick([null, 'google.com']),
      channel: pick(['Direct', 'Email', 'Organic Search']),
      utm_source: pick([null, 'newsletter']),
      utm_medium: null,
      utm_campaign: null,
      utm_term: null,
      utm_content: null,
      browser: pick(['Chrome', 'Firefox']),
      os: pick(['iOS', 'Windows']),
      device: pick(['mobile', 'desktop']),
      country: pick(['FR', 'US', null]),
      is_bot: bot,
    };
  });
}

/** gRPC's proto3 `optional` back into REST's JSON: a requested metric that is absent is null. */
function breakdownAsRest(answer: Record<string, unknown>): Record<string, unknown> {
  const metrics = answer.metrics as string[];
  const fill = (row: Record<string, unknown>, extra: string[] = []) => {
    for (const m of [...metrics, ...extra]) row[m] ??= null;
    return row;
  };
  return {
    ...answer,
    results: (answer.results as Record<string, unknown>[]).map((r) => fill({ ...r }, ['percentage'])),
    total: fill({ ...(answer.total as Record<string, unknown>) }),
  };
}

test('gRPC answers breakdown and filtered questions as REST does, and names a bad filter', async (t) => {
  const tally = await startTestTally(t);
  const list = events(400);
  await storeWebEvents(tally.url, tally.database.pool, list, sessionize(list, 30 * MINUTE));
  const client = analyticsClient(tally.grpcPort);
  t.after(() => client.close());
  const range = { from: new Date(START).toISOString(), to: new Date(START + 2 * 86_400_000).toISOString() };
  const filters = ['channel==Email|Direct', 'device!=desktop', 'page~=PRIC|/'];
  const rest = (path: string, params: Record<string, string | number>, filter: string[]) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) p.set(k, String(v));
    for (const f of filter) p.append('filter', f);
    return getJson(`${tally.url}${path}?${p.toString()}`);
  };

  for (const [dimension, metrics, bots] of [
    ['page', 'visitors,visits,bounce_rate', 'exclude'],
    ['channel', 'visits,visit_duration,views_per_visit,events', 'include'],
    ['property:plan', 'page_views', 'only'],
  ] as const) {
    for (const filter of [[], filters]) {
      const params = { ...range, dimension, metrics, bots, limit: 2, page: 1 };
      const viaRest = await rest('/v1/stats/breakdown', params, filter);
      assert.equal(viaRest.status, 200, JSON.stringify(viaRest.body));
      assert.ok((viaRest.body.results as unknown[]).length > 0, `${dimension} has rows`);
      const viaGrpc = await client.call('GetBreakdown', { ...params, filters: filter });
      assert.deepEqual(breakdownAsRest(viaGrpc), viaRest.body, `${dimension} ${filter.join(' ')}`);
    }
  }
  for (const [rpc, path, extra] of [
    ['GetTopPages', '/v1/stats/top-pages', { limit: 3 }],
    ['GetEventTypes', '/v1/stats/event-types', {}],
    ['GetTimeseries', '/v1/stats/timeseries', { metric: 'visits', interval: 'hour' }],
    ['GetTimeseries', '/v1/stats/timeseries', { metric: 'visitors', interval: 'day' }],
  ] as const) {
    const params = { ...range, ...extra, bots: 'include' };
    const viaRest = await rest(path, params, filters);
    assert.equal(viaRest.status, 200, JSON.stringify(viaRest.body));
    assert.deepEqual(await client.call(rpc, { ...params, filters }), viaRest.body, rpc);
  }
  const summary = await client.call('GetSummary', { ...range, filters, bots: 'include' });
  const restSummary = (await rest('/v1/stats/summary', { ...range, bots: 'include' }, filters)).body;
  assert.deepEqual(summary, restSummary);
  assert.ok((summary.visits as number) > 0 && (summary.visitors as number) > 0);

  // Bad arguments: the field first, the code in the trailer, the same as REST's errors[].field.
  for (const [rpc, request, field] of [
    ['GetBreakdown', { dimension: 'page', filters: ['device==mobile', 'colour==red'] }, 'filter[1]'],
    ['GetSummary', { filters: ['page==a\\x'] }, 'filter[0]'],
    ['GetBreakdown', { dimension: 'colour' }, 'dimension'],
    ['GetTopPages', { bots: 'some' }, 'bots'],
  ] as const) {
    const err = (await client.call(rpc, request).catch((e: unknown) => e)) as grpc.ServiceError;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, rpc);
    assert.ok(err.details.startsWith(`${field}:`), err.details);
    assert.deepEqual(err.metadata.get('tally-error-code'), ['TALLY_INVALID_QUERY']);
  }
});
