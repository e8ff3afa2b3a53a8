import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
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

const logger = pino({ level: 'silent' });

function service(query: (sql: string) => Promise<{ rows: unknown[] }>, version = () => Promise.resolve(1)) {
  const pool = { query } as unknown as pg.Pool;
  const metrics = createMetrics(undefined, { defaults: false });
  const cache = new QueryCache({ store: memoryCacheStore(10), version, metrics, ttlSec: 60, logger });
  return {
    metrics,
    query: new QueryService({
      stats: new StatsService(new StatsStore(pool)),
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
