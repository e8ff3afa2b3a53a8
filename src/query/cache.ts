import { LRUCache } from 'lru-cache';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';

/**
 * Cache-aside for query answers, keyed by (project, data version, question).
 *
 * Freshness: the data version is `tally.data_versions`, bumped inside every batch transaction
 * (src/store/data-versions.ts). A reader takes the version first, then looks the answer up under
 * it, and computes and stores it on a miss. A commit moves the version, so the very next query
 * misses: a cached answer is never older than the last commit, whatever process wrote it and
 * whatever process asks. The version lives in PostgreSQL rather than in Redis because only a
 * value written in the same transaction as the data is exact in both directions (see
 * data-versions.ts); reading it is one primary-key lookup, well under a millisecond. Entries of
 * old versions are never read again and expire by TTL (TALLY_CACHE_TTL_SEC), the backstop.
 *
 * Where: Redis when configured (shared by every query process), else an in-process LRU. Redis
 * errors never fail a query: the answer comes from PostgreSQL and readiness says `degraded`.
 */
export interface CacheStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSec: number): Promise<void>;
  health: HealthCheck;
  close(): Promise<void>;
}

export interface QueryCacheDeps {
  store: CacheStore;
  /** The current data version of a project. */
  version: (project: string) => Promise<number>;
  metrics: Pick<Metrics, 'cacheHits' | 'cacheMisses'>;
  ttlSec: number;
  logger: Logger;
}

export class QueryCache {
  readonly #deps: QueryCacheDeps;
  #lastWarn = 0;

  constructor(deps: QueryCacheDeps) {
    this.#deps = deps;
  }

  /** The cached answer to `question` for the project's current data, computing it on a miss. */
  async through<T>(project: string, question: string, compute: () => Promise<T>): Promise<T> {
    const { store, metrics, ttlSec } = this.#deps;
    const version = await this.#deps.version(project);
    const key = `tally:q:${version}:${JSON.stringify([project, question])}`;
    let cached: string | undefined;
    try {
      cached = await store.get(key);
    } catch (err) {
      this.#warn(err);
    }
    if (cached !== undefined) {
      metrics.cacheHits.inc();
      return JSON.parse(cached) as T;
    }
    metrics.cacheMisses.inc();
    const value = await compute();
    store.set(key, JSON.stringify(value), ttlSec).catch((err: unknown) => this.#warn(err));
    return value;
  }

  #warn(err: unknown): void {
    // A cache outage would otherwise log once per query.
    const now = Date.now();
    if (now - this.#lastWarn < 10_000) return;
    this.#lastWarn = now;
    this.#deps.logger.warn({ err }, 'query cache unavailable; answering from PostgreSQL');
  }
}

/** In-process LRU: the cache without Redis (one process, `TALLY_CACHE_MAX_ENTRIES` answers). */
export function memoryCacheStore(maxEntries: number): CacheStore {
  const lru = new LRUCache<string, string>({ max: maxEntries });
  return {
    kind: 'memory',
    get: (key) => Promise.resolve(lru.get(key)),
    set: (key, value, ttlSec) => {
      lru.set(key, value, { ttl: ttlSec * 1000 });
      return Promise.resolve();
    },
    health: { name: 'cache', check: () => Promise.resolve('ok') },
    close: () => Promise.resolve(),
  };
}

const REDIS_TIMEOUT_MS = 250;

/**
 * Redis through ioredis. Commands fail at once while disconnected (no offline queue) and after
 * REDIS_TIMEOUT_MS when Redis hangs, so an outage costs a query nothing but the cache; the client
 * reconnects by itself.
 */
export function redisCacheStore(url: string, logger: Logger): CacheStore {
  const redis = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  let lastError = 0;
  redis.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastError > 10_000) logger.warn({ err }, 'redis error');
    lastError = now;
  });
  return {
    kind: 'redis',
    async get(key) {
      return (await redis.get(key)) ?? undefined;
    },
    async set(key, value, ttlSec) {
      await redis.set(key, value, 'EX', ttlSec);
    },
    health: {
      name: 'redis',
      // Redis is a cache: without it queries are slower, never wrong, so it degrades readiness only.
      async check() {
        if (redis.status !== 'ready') return 'degraded';
        try {
          return (await redis.ping()) === 'PONG' ? 'ok' : 'degraded';
        } catch {
          return 'degraded';
        }
      },
    },
    async close() {
      // QUIT lets a pending SET finish; while disconnected there is nothing to wait for.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
