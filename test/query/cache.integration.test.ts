import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { startQueryRole, type QueryRole } from '../../src/cli/query-role.ts';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { requireTool } from '../helpers/require-tool.ts';

const FROM = '2025-03-01T00:00:00Z';
const TO = '2025-03-03T00:00:00Z';
const SUMMARY = `/v1/stats/summary?from=${FROM}&to=${TO}`;

let nextId = 0;
function event(user: string, type = 'page_view') {
  const ts = Date.parse('2025-03-01T10:00:00Z') + nextId * 61_000;
  return { event_id: `c-${nextId++}`, type, user_id: user, page_url: 'https://a.test/', timestamp: ts };
}

async function cacheCounters(baseUrl: string): Promise<{ hits: number; misses: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const read = (name: string) =>
    Number(/^(\S+) (\d+)$/m.exec(text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? NaN);
  return { hits: read('tally_cache_hits_total'), misses: read('tally_cache_misses_total') };
}

async function summary(baseUrl: string) {
  const res = await getJson<{ events: number; unique_users: number }>(`${baseUrl}${SUMMARY}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { events: res.body.events, unique_users: res.body.unique_users };
}

test('in-process cache: a hit until the next committed batch, then the new answer', async (t) => {
  const tally = await startTestTally(t);
  assert.equal((await postJson(`${tally.url}/v1/events`, [event('a'), event('b')])).status, 202);

  const start = await cacheCounters(tally.url);
  assert.deepEqual(await summary(tally.url), { events: 2, unique_users: 2 });
  assert.deepEqual(await summary(tally.url), { events: 2, unique_users: 2 });
  const afterTwo = await cacheCounters(tally.url);
  assert.equal(afterTwo.misses - start.misses, 1);
  assert.equal(afterTwo.hits - start.hits, 1);

  // The 202 comes after the commit; the very next query sees the event.
  assert.equal((await postJson(`${tally.url}/v1/events`, event('c'))).status, 202);
  assert.deepEqual(await summary(tally.url), { events: 3, unique_users: 3 });
  assert.equal((await cacheCounters(tally.url)).misses - start.misses, 2);

  // A duplicate commits nothing new: the cached answer stays valid.
  const dup = { ...event('c'), event_id: 'c-0' };
  assert.equal((await postJson(`${tally.url}/v1/events`, dup)).status, 202);
  assert.deepEqual(await summary(tally.url), { events: 3, unique_users: 3 });
  assert.equal((await cacheCounters(tally.url)).hits - start.hits, 2);
});

async function queryRole(t: TestContext, databaseUrl: string, redisUrl: string): Promise<QueryRole> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    TALLY_QUERY_PORT: '0',
    TALLY_GRPC_PORT: '0',
    TALLY_DB_POOL_SIZE: '4',
    TALLY_LOG_LEVEL: 'silent',
  });
  const role = await startQueryRole(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  t.after(() => role.stop());
  return role;
}

async function readiness(baseUrl: string) {
  return getJson<{ status: string; checks: Record<string, string> }>(`${baseUrl}/ready`);
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('Redis cache shared by two query processes; fresh after each commit; Redis killed → still correct, /ready degraded', async (t) => {
  if (!requireTool(t, 'redis-server', 'the Redis cache suite')) return;
  const redis = await startTestRedis();
  t.after(() => redis.stop());
  const writer = await startTestTally(t); // ingest + the embedded PostgreSQL both query roles read
  const databaseUrl = (writer.database.pool.options as { connectionString: string }).connectionString;
  const one = await queryRole(t, databaseUrl, redis.url);
  const two = await queryRole(t, databaseUrl, redis.url);
  assert.equal(one.cacheKind, 'redis');
  const grpcTwo = analyticsClient(two.grpcPort);
  t.after(() => grpcTwo.close());

  assert.equal((await postJson(`${writer.url}/v1/events`, [event('a'), event('b')])).status, 202);
  // Ready once its read model has loaded (degraded until then: PostgreSQL answers meanwhile).
  const ready = await until(
    'process one to be ready',
    () => readiness(one.url),
    (r) => r.body.status === 'ready',
  );
  assert.deepEqual(ready.body, {
    status: 'ready',
    checks: { postgres: 'ok', redis: 'ok', read_model: 'ok' },
  });

  const c1 = await cacheCounters(one.url);
  assert.deepEqual(await summary(one.url), { events: 2, unique_users: 2 });
  assert.equal((await cacheCounters(one.url)).misses - c1.misses, 1);
  // The other process, over gRPC, finds the answer process one cached in Redis (written after
  // process one answered, so wait for it to be there).
  const inRedis = new Redis(redis.url, { lazyConnect: true });
  t.after(() => inRedis.disconnect());
  await until(
    'process one to store its answer in Redis',
    () => inRedis.dbsize(),
    (n) => n > 0,
  );
  const c2 = await cacheCounters(two.url);
  const viaGrpc = await grpcTwo.call('GetSummary', { from: FROM, to: TO });
  assert.equal(viaGrpc.events, 2);
  assert.equal((await cacheCounters(two.url)).hits - c2.hits, 1);

  // A batch committed by another process (the writer) reaches both with its version's
  // notification, a moment after the commit; never an old answer after that.
  assert.equal((await postJson(`${writer.url}/v1/events`, event('c'))).status, 202);
  await until(
    'process two to see the commit',
    () => summary(two.url),
    (s) => s.events === 3,
  );
  assert.deepEqual(await summary(two.url), { events: 3, unique_users: 3 });
  assert.equal((await grpcTwo.call('GetSummary', { from: FROM, to: TO })).events, 3);
  await until(
    'process one to see the commit',
    () => summary(one.url),
    (s) => s.events === 3,
  );
  assert.deepEqual(await summary(one.url), { events: 3, unique_users: 3 });

  // Redis dies mid-test: answers come from PostgreSQL, still exact and fresh; readiness degrades.
  await redis.kill();
  assert.equal((await postJson(`${writer.url}/v1/events`, [event('d'), event('a')])).status, 202);
  await until(
    'process one to see the commit',
    () => summary(one.url),
    (s) => s.events === 5,
  );
  assert.deepEqual(await summary(one.url), { events: 5, unique_users: 4 });
  await until(
    'process two to see the commit',
    () => summary(two.url),
    (s) => s.events === 5,
  );
  assert.equal((await grpcTwo.call('GetSummary', { from: FROM, to: TO })).unique_users, 4);
  // Redis down degrades readiness; the read model is 'ok' again once the load the summaries
  // above started (from a worker thread: ~0.2 s at least) has landed.
  const degraded = await until(
    'degraded readiness with the read model loaded',
    () => readiness(one.url),
    (r) => r.body.status === 'degraded' && r.body.checks.read_model === 'ok',
  );
  assert.equal(degraded.status, 200);
  assert.deepEqual(degraded.body.checks, { postgres: 'ok', redis: 'degraded', read_model: 'ok' });
  assert.equal((await postJson(`${writer.url}/v1/events`, event('e', 'click'))).status, 202);
  await until(
    'process two to see the commit',
    () => summary(two.url),
    (s) => s.events === 6,
  );
  assert.deepEqual(await summary(two.url), { events: 6, unique_users: 5 });

  // Redis back: readiness recovers and answers are cached again.
  await redis.restart();
  await until(
    'ready again',
    () => readiness(one.url),
    (r) => r.body.status === 'ready',
  );
  assert.deepEqual(await summary(one.url), { events: 6, unique_users: 5 });
  const c3 = await cacheCounters(one.url);
  assert.deepEqual(await summary(one.url), { events: 6, unique_users: 5 });
  assert.equal((await cacheCounters(one.url)).hits - c3.hits, 1);
});
