import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { QueryCache, type CacheStore } from '../../src/query/cache.ts';

/** A Redis-like store that counts its round trips. */
function countingStore() {
  const data = new Map<string, string>();
  const calls = { get: 0, set: 0 };
  const store: CacheStore = {
    kind: 'redis',
    get: (key) => {
      calls.get++;
      return Promise.resolve(data.get(key));
    },
    set: (key, value) => {
      calls.set++;
      data.set(key, value);
      return Promise.resolve();
    },
    purge: (_pattern, matches) => {
      const keys = [...data.keys()].filter(matches);
      for (const key of keys) data.delete(key);
      return Promise.resolve(keys.length);
    },
    health: { name: 'redis', check: () => Promise.resolve('ok') },
    close: () => Promise.resolve(),
  };
  return { store, data, calls };
}

test('near cache: a repeated question costs no Redis round trip, a new version does, answers are frozen', async () => {
  const { store, data, calls } = countingStore();
  let version = 1;
  let computed = 0;
  const metrics = createMetrics();
  const make = () =>
    new QueryCache({
      store,
      version: () => Promise.resolve(version),
      metrics,
      ttlSec: 60,
      logger: pino({ level: 'silent' }),
    });
  const cache = make();
  const compute = () => Promise.resolve({ events: ++computed, rows: [{ n: computed }] });

  const first = await cache.through('p', 'q', compute);
  assert.deepEqual(first, { events: 1, rows: [{ n: 1 }] });
  assert.deepEqual(calls, { get: 1, set: 1 });
  const again = await cache.through('p', 'q', compute);
  assert.equal(again, first, 'the same object, from the near cache');
  assert.deepEqual(calls, { get: 1, set: 1 }, 'no Redis round trip');
  assert.ok(Object.isFrozen(again) && Object.isFrozen(again.rows[0]));
  assert.throws(() => {
    again.rows[0].n = 9;
  }, TypeError);

  // A commit moves the version: the near entry is not used, the answer is computed again.
  version = 2;
  assert.deepEqual(await cache.through('p', 'q', compute), { events: 2, rows: [{ n: 2 }] });
  assert.deepEqual(calls, { get: 2, set: 2 });

  // Another process (its own near cache, the same Redis) reads Redis once, then itself.
  const other = make();
  assert.deepEqual(await other.through('p', 'q', compute), { events: 2, rows: [{ n: 2 }] });
  await other.through('p', 'q', compute);
  assert.deepEqual(calls, { get: 3, set: 2 });
  assert.equal(computed, 2);
  assert.equal(data.size, 2);

  const hits = (await metrics.cacheHits.get()).values[0].value;
  const misses = (await metrics.cacheMisses.get()).values[0].value;
  assert.deepEqual([hits, misses], [3, 2]);
});
