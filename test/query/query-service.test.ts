import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type pg from 'pg';
import { pino } from 'pino';
import { TallyError } from '../../src/errors/tally-error.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { memoryCacheStore, QueryCache } from '../../src/query/cache.ts';
import { EventsStore } from '../../src/store/events-store.ts';
import { toServiceError } from '../../src/query/grpc/handlers.ts';
import { QueryService } from '../../src/query/query-service.ts';
import { StatsService } from '../../src/query/stats-service.ts';
import { StatsStore } from '../../src/store/stats-store.ts';
import { AnalyticsStore } from '../../src/store/analytics-store.ts';
import { BreakdownService } from '../../src/query/breakdown-service.ts';
import { ScopedStats } from '../../src/query/scoped-stats.ts';
import { ProductService } from '../../src/query/product/product-service.ts';

const logger = pino({ level: 'silent' });

function service(query: (sql: string) => Promise<{ rows: unknown[] }>, version = () => Promise.resolve(1)) {
  const pool = { query } as unknown as pg.Pool;
  const metrics = createMetrics(undefined, { defaults: false });
  const cache = new QueryCache({ store: memoryCacheStore(10), version, metrics, ttlSec: 60, logger });
  const stats = new StatsService(new StatsStore(pool));
  const store = new AnalyticsStore(pool);
  // The pool here is a bare `query` stub: the snapshot reads straight from it.
  const scoped = new ScopedStats(stats, {
    raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
    snapshot: (read) => read({ stats, store }),
  });
  return {
    metrics,
    query: new QueryService({
      stats: scoped,
      breakdown: new BreakdownService(scoped),
      product: new ProductService({
        scoped,
        raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
        readModel: () => Promise.resolve(undefined),
        maxScanEvents: 1,
      }),
      events: new EventsStore(pool),
      cache,
    }),
  };
}

test('PostgreSQL unreachable → TALLY_DB_UNAVAILABLE (503), gRPC UNAVAILABLE', async () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const { query } = service(() => Promise.reject(refused));
  const err = await query.summary('default', {}).catch((e: unknown) => e);
  assert.ok(err instanceof TallyError);
  assert.equal(err.code, 'TALLY_DB_UNAVAILABLE');
  assert.equal(err.statusCode, 503);
  assert.equal(toServiceError(err, logger).code, grpc.status.UNAVAILABLE);
  // The version read fails the same way.
  const noVersion = service(
    () => Promise.resolve({ rows: [] }),
    () => Promise.reject(refused),
  ).query;
  assert.equal(
    ((await noVersion.summary('default', {}).catch((e: unknown) => e)) as TallyError).code,
    'TALLY_DB_UNAVAILABLE',
  );
});

test('one validation: the same field errors whatever the caller, before any SQL', async () => {
  let queries = 0;
  const { query } = service(() => {
    queries++;
    return Promise.resolve({ rows: [] });
  });
  const cases: [Promise<unknown>, string][] = [
    [query.timeseries('default', { metric: 'revenue' }), 'metric'],
    [query.topPages('default', { limit: '0' }), 'limit'],
    [query.eventCount('default', { user_id: 'u' }), 'page_url'],
    [query.summary('default', { bogus: '1' }), 'bogus'],
    [query.userEvents('default', { user_id: '' }), 'user_id'],
    [query.summary('default', { filter: ['device==mobile', 'colour==red'] }), 'filter[1]'],
    [query.topPages('default', { filter: ['page==a\u0000'] }), 'filter[0]'],
    [query.timeseries('default', { bots: 'some' }), 'bots'],
    [query.breakdown('default', { dimension: 'colour' }), 'dimension'],
    [query.breakdown('default', { dimension: 'page', metrics: 'visitors,revenue' }), 'metrics'],
    [query.breakdown('default', { dimension: 'page', sort: 'visits' }), 'sort'],
    [query.breakdown('default', { dimension: 'page', page: '0' }), 'page'],
  ];
  for (const [promise, field] of cases) {
    const err = (await promise.catch((e: unknown) => e)) as TallyError;
    assert.equal(err.code, 'TALLY_INVALID_QUERY', field);
    assert.equal(err.details?.[0].field, field);
    assert.ok(toServiceError(err, logger).details?.startsWith(`${field}:`));
  }
  assert.equal(queries, 0);
});

test('cache: the second identical question is a hit, a new version is a miss', async () => {
  let version = 1;
  const { query, metrics } = service(
    () => Promise.resolve({ rows: [] }),
    () => Promise.resolve(version),
  );
  const range = { from: '2025-01-01T00:00:00Z', to: '2025-01-02T00:00:00Z' };
  await query.summary('default', range);
  await query.summary('default', range);
  assert.equal((await metrics.cacheHits.get()).values[0].value, 1);
  version = 2;
  await query.summary('default', range);
  assert.equal((await metrics.cacheMisses.get()).values[0].value, 2);
});

/**
 * The oracle for a day's start, without luxon: the first minute whose calendar date in `zone`
 * (as Intl formats it) is `day` or later. Local dates only move forward, so binary search works.
 */
function dayStartByIntl(day: string, zone: string): number {
  const format = new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  });
  const midnightUtc = Date.parse(`${day}T00:00:00Z`);
  let lo = (midnightUtc - 26 * 3_600_000) / 60_000; // local date still before `day`
  let hi = (midnightUtc + 26 * 3_600_000) / 60_000; // local date already `day` or later
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (format.format(mid * 60_000) >= day) hi = mid;
    else lo = mid;
  }
  return hi * 60_000;
}

test('property: a date-only from is the day’s start in the zone the answer is in', async () => {
  const { query } = service(() => Promise.resolve({ rows: [] }));
  const zones = Intl.supportedValuesOf('timeZone');
  // From 1980: before 1972 some zones were not a whole number of minutes off UTC.
  const days = fc
    .date({ min: new Date(Date.UTC(1980, 0, 1)), max: new Date(Date.UTC(2099, 11, 30)), noInvalidDate: true })
    .map((d) => d.toISOString().slice(0, 10));
  await fc.assert(
    fc.asyncProperty(days, fc.constantFrom(...zones), async (day, tz) => {
      const next = new Date(Date.parse(day) + 86_400_000).toISOString().slice(0, 10);
      // A day a zone skipped (Pacific/Apia, 2011-12-30) is an empty range, a 400.
      fc.pre(dayStartByIntl(day, tz) < dayStartByIntl(next, tz));
      const answer = await query.timeseries('default', { from: day, to: next, tz, interval: 'day' });
      assert.equal(answer.from, new Date(dayStartByIntl(day, tz)).toISOString(), `${day} in ${tz}`);
      assert.equal(answer.to, new Date(dayStartByIntl(next, tz)).toISOString(), `${next} in ${tz}`);
    }),
  );
});

test('cache: filters and bots are part of the question', async () => {
  const { query, metrics } = service(() => Promise.resolve({ rows: [] }));
  const range = { from: '2025-01-01T00:00:00Z', to: '2025-01-02T00:00:00Z' };
  const asked = [
    {},
    { filter: ['device==mobile'] },
    { filter: ['device==desktop'] },
    { filter: ['device==mobile', 'country==FR'] },
    { filter: ['country==FR', 'device==mobile'] },
    { bots: 'include' },
    { bots: 'only' },
  ];
  for (const extra of asked) await query.summary('default', { ...range, ...extra });
  assert.equal((await metrics.cacheMisses.get()).values[0].value, asked.length);
  // The same selection again, `bots=exclude` spelled out: all hits.
  await query.summary('default', { ...range, bots: 'exclude' });
  await query.summary('default', { ...range, filter: ['device==mobile'] });
  await query.breakdown('default', { ...range, dimension: 'page', filter: ['device==mobile'] });
  await query.breakdown('default', {
    ...range,
    dimension: 'page',
    filter: ['device==mobile'],
    metrics: 'visitors',
  });
  await query.breakdown('default', { ...range, dimension: 'page', filter: ['device==desktop'] });
  assert.equal((await metrics.cacheHits.get()).values[0].value, 3);
  assert.equal((await metrics.cacheMisses.get()).values[0].value, asked.length + 2);
});
