import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { memoryCacheStore, QueryCache, type CacheStore } from '../../src/query/cache.ts';
import { entriesArb, keyOf, keysLeft, keysOf, PURGE_PROJECTS, type Entry } from '../helpers/cache-purge.ts';

/** A Redis-like store (so QueryCache keeps a near cache in front of it) over a Map. */
function mapStore(): { store: CacheStore; data: Map<string, string> } {
  const data = new Map<string, string>();
  const store: CacheStore = {
    kind: 'redis',
    get: (key) => Promise.resolve(data.get(key)),
    set: (key, value) => {
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
  return { store, data };
}

/** A cache over `store` whose version is whatever `at.version` says when asked. */
function cacheOver(store: CacheStore, at: { version: number }): QueryCache {
  return new QueryCache({
    store,
    version: () => Promise.resolve(at.version),
    metrics: createMetrics(undefined, { defaults: false }),
    ttlSec: 60,
    logger: pino({ level: 'silent' }),
  });
}

async function fill(cache: QueryCache, at: { version: number }, entries: readonly Entry[]): Promise<void> {
  for (const e of entries) {
    at.version = e.version;
    await cache.through(e.project, e.question, () => Promise.resolve({ answer: e.question }));
  }
}

test('purge(project), memory store: every key of the project goes, every other key stays', async () => {
  await fc.assert(
    fc.asyncProperty(entriesArb, fc.constantFrom(...PURGE_PROJECTS), async (entries, project) => {
      const store = memoryCacheStore(10_000);
      const at = { version: 0 };
      const cache = cacheOver(store, at);
      await fill(cache, at, entries);
      assert.equal(await cache.purge(project), keysOf(entries, project));
      const left: string[] = [];
      await store.purge('*', (key) => (left.push(key), false));
      assert.deepEqual(left.sort(), keysLeft(entries, project));
    }),
    { numRuns: 300 },
  );
});

test('purge(project) in front of a shared store: the near cache forgets the project too', async () => {
  await fc.assert(
    fc.asyncProperty(entriesArb, fc.constantFrom(...PURGE_PROJECTS), async (entries, project) => {
      const { store, data } = mapStore();
      const at = { version: 0 };
      const cache = cacheOver(store, at);
      await fill(cache, at, entries);
      assert.equal(await cache.purge(project), keysOf(entries, project));
      assert.deepEqual([...data.keys()].sort(), keysLeft(entries, project));
      // Each purged question is computed again (the near cache held it), once; no other one is.
      const recomputed = new Set<string>();
      for (const e of entries) {
        at.version = e.version;
        let computed = false;
        await cache.through(e.project, e.question, () => {
          computed = true;
          return Promise.resolve({ answer: e.question });
        });
        assert.equal(computed, e.project === project && !recomputed.has(keyOf(e)), e.project);
        if (computed) recomputed.add(keyOf(e));
      }
    }),
    { numRuns: 200 },
  );
});
