import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { purgeSharedCache } from '../../src/cli/user-commands.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { QueryCache, redisCacheStore } from '../../src/query/cache.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { entriesArb, keyOf, keysLeft, keysOf, PURGE_PROJECTS } from '../helpers/cache-purge.ts';
import { startTestTally } from '../helpers/embedded-tally.ts';
import { startTestRedis } from '../helpers/redis.ts';
import { requireTool } from '../helpers/require-tool.ts';

const BROWSER_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

async function allKeys(redis: Redis): Promise<string[]> {
  return (await redis.keys('*')).sort();
}

test('purge(project) on Redis: SCAN with the escaped glob finds every key of the project, and only those go', async (t) => {
  if (!requireTool(t, 'redis-server', 'the Redis cache purge suite')) return;
  const server = await startTestRedis();
  t.after(() => server.stop());
  const store = redisCacheStore(server.url, pino({ level: 'silent' }));
  t.after(() => store.close());
  const redis = new Redis(server.url);
  redis.on('error', () => undefined);
  t.after(() => redis.disconnect());
  const at = { version: 0 };
  const cache = new QueryCache({
    store,
    version: () => Promise.resolve(at.version),
    metrics: createMetrics(undefined, { defaults: false }),
    ttlSec: 60,
    logger: pino({ level: 'silent' }),
  });
  await fc.assert(
    fc.asyncProperty(entriesArb, fc.constantFrom(...PURGE_PROJECTS), async (entries, project) => {
      await redis.flushall();
      // Straight into Redis: through() stores without waiting, and this is about what Redis holds.
      for (const e of entries) await redis.set(keyOf(e), '{}', 'EX', 60);
      assert.equal(await cache.purge(project), keysOf(entries, project));
      assert.deepEqual(await allKeys(redis), keysLeft(entries, project));
    }),
    { numRuns: 100 },
  );
  // More keys than a SCAN page and an UNLINK batch.
  await redis.flushall();
  const many = Array.from({ length: 3000 }, (_, i) => ({
    version: i % 7,
    project: i % 3 === 0 ? 'sh*p' : 'shop',
    question: `q${i}`,
  }));
  for (let i = 0; i < many.length; i += 500) {
    await redis.mset(...many.slice(i, i + 500).flatMap((e) => [keyOf(e), '{}']));
  }
  assert.equal(await cache.purge('shop'), keysOf(many, 'shop'));
  assert.deepEqual(await allKeys(redis), keysLeft(many, 'shop'));
});

test('tally users delete with REDIS_URL purges the shared cache of the project; a Redis that is gone is said, not thrown', async (t) => {
  if (!requireTool(t, 'redis-server', 'the Redis cache purge suite')) return;
  const server = await startTestRedis();
  t.after(() => server.stop());
  const redis = new Redis(server.url);
  redis.on('error', () => undefined);
  t.after(() => redis.disconnect());
  const entries = [
    { version: 3, project: 'shop', question: 'a' },
    { version: 4, project: 'shop', question: 'b' },
    { version: 4, project: 'blog', question: 'a' },
  ];
  for (const e of entries) await redis.set(keyOf(e), '{}');
  assert.equal(await purgeSharedCache(server.url, 'shop'), undefined);
  assert.deepEqual(await allKeys(redis), keysLeft(entries, 'shop'));
  await server.stop();
  assert.match(
    (await purgeSharedCache(server.url, 'blog'))!,
    /Redis did not answer; .* expire by TALLY_CACHE_TTL_SEC/,
  );
});

test('a purge whose Redis is gone never throws: it logs, and the entries expire by TTL', async (t) => {
  if (!requireTool(t, 'redis-server', 'the Redis cache purge suite')) return;
  const server = await startTestRedis();
  const store = redisCacheStore(server.url, pino({ level: 'silent' }));
  t.after(() => store.close());
  await server.stop();
  const warned: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warned.push(line) });
  const cache = new QueryCache({
    store,
    version: () => Promise.resolve(1),
    metrics: createMetrics(undefined, { defaults: false }),
    ttlSec: 60,
    logger,
  });
  assert.equal(await cache.purge('shop'), 0, 'never throws');
  assert.equal(warned.length, 1);
  assert.match(warned[0], /query cache purge failed/);
});

test(
  'DELETE /v1/users/:user_id on tally start with Redis: the cached answers of the project are gone after the 200, another project’s stay',
  { timeout: 120_000 },
  async (t) => {
    if (!requireTool(t, 'redis-server', 'the Redis cache purge suite')) return;
    const server = await startTestRedis();
    t.after(() => server.stop());
    const tally = await startTestTally(t, { REDIS_URL: server.url });
    const redis = new Redis(server.url);
    redis.on('error', () => undefined);
    t.after(() => redis.disconnect());
    const keys = new ApiKeyStore(tally.database.pool);
    const write = (await createApiKey(keys, 'shop', 'write')).key;
    const read = (await createApiKey(keys, 'shop', 'read')).key;
    const admin = (await createApiKey(keys, 'shop', 'admin')).key;
    const blogWrite = (await createApiKey(keys, 'blog', 'write')).key;
    const blogRead = (await createApiKey(keys, 'blog', 'read')).key;
    await tally.keys.refresh();

    const now = Date.now();
    const send = async (key: string, users: string[]) => {
      const res = await fetch(`${tally.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key },
        body: JSON.stringify(
          users.map((user_id, i) => ({
            type: 'page_view',
            user_id,
            timestamp: now - 60_000 * (i + 1),
            user_agent: BROWSER_UA,
          })),
        ),
      });
      assert.equal(res.status, 202);
    };
    const summary = async (key: string) => {
      const res = await fetch(`${tally.url}/v1/stats/summary`, { headers: { 'x-api-key': key } });
      assert.equal(res.status, 200);
      return ((await res.json()) as { events: number }).events;
    };
    await send(write, ['gone', 'gone', 'kept']);
    await send(blogWrite, ['gone', 'other']);
    assert.equal(await summary(read), 3);
    assert.equal(await summary(blogRead), 2);
    const projectsIn = async () => {
      const found = new Set<string>();
      for (const key of await allKeys(redis))
        found.add((JSON.parse(key.slice(key.indexOf(':[') + 1)) as string[])[0]);
      return found;
    };
    // The answers are stored in Redis without waiting: poll until both projects' are there.
    const deadline = Date.now() + 10_000;
    while (!((await projectsIn()).has('shop') && (await projectsIn()).has('blog'))) {
      assert.ok(Date.now() < deadline, 'answers cached in Redis');
      await new Promise((r) => setTimeout(r, 50));
    }

    const res = await fetch(`${tally.url}/v1/users/gone?project=shop`, {
      method: 'DELETE',
      headers: { 'x-api-key': admin },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(
      [...(await projectsIn())],
      ['blog'],
      "shop's cached answers are gone at the 200, blog's stay",
    );
    assert.equal(await summary(read), 1);
  },
);
