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
 * it, and computes and stores it on a miss. A commit moves the version, so the next query
 * misses. The version lives in PostgreSQL rather than in Redis because only a value written in
 * the same transaction as the data is exact in both directions (see data-versions.ts). Each
 * process keeps the versions in memory, moved by the commits' notifications, so a hit costs no
 * PostgreSQL round trip: a commit made by this process is seen by its very next query (the
 * writer reports it before answering 202), one made by another process a moment later, when its
 * notification arrives. An answer is never stored under a version newer than its data. Entries
 * of old versions are never read again and expire by TTL (TALLY_CACHE_TTL_SEC), the backstop.
 *
 * Where: Redis when configured (shared by every query process), else an in-process LRU. Redis
 * errors never fail a query: the answer comes from PostgreSQL and readiness says `degraded`.
 * In front of Redis, each process keeps the answers it used lately, parsed and frozen (a near
 * cache): a repeated question costs neither a Redis round trip nor a JSON.parse, and over REST
 * no serialization either (routes.ts keeps each frozen answer's JSON). Its keys are Redis's keys,
 * versioned, so it is exactly as fresh as Redis.
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

/** Most bytes (of the answers' JSON) the near cache in front of Redis keeps per process. */
const NEAR_CACHE_BYTES = 8 * 1024 * 1024;

export class QueryCache {
  readonly #deps: QueryCacheDeps;
  readonly #near: LRUCache<string, object> | undefined;
  #lastWarn = 0;

  constructor(deps: QueryCacheDeps) {
    this.#deps = deps;
    // An in-process store is near already.
    this.#near =
      deps.store.kind === 'memory'
        ? undefined
        : new LRUCache<string, object>({ maxSize: NEAR_CACHE_BYTES, ttl: deps.ttlSec * 1000 });
  }

  /** The cached answer to `question` for the project's current data, computing it on a miss. */
  async through<T>(project: string, question: string, compute: () => Promise<T>): Promise<T> {
    const { store, metrics, ttlSec } = this.#deps;
    const version = await this.#deps.version(project);
    const key = `tally:q:${version}:${JSON.stringify([project, question])}`;
    const near = this.#near?.get(key);
    if (near !== undefined) {
      metrics.cacheHits.inc();
      return near as T;
    }
    let cached: string | undefined;
    try {
      cached = await store.get(key);
    } catch (err) {
      this.#warn(err);
    }
    if (cached !== undefined) {
      metrics.cacheHits.inc();
      return this.#keep(key, JSON.parse(cached) as T, cached.length);
    }
    metrics.cacheMisses.inc();
    const value = await compute();
    const json = JSON.stringify(value);
    store.set(key, json, ttlSec).catch((err: unknown) => this.#warn(err));
    return this.#keep(key, value, json.length);
  }

  /** Remembers an answer in the near cache; frozen, since every later hit shares the object. */
  #keep<T>(key: string, value: T, size: number): T {
    if (this.#near === undefined || typeof value !== 'object' || value === null) return value;
    if (size > NEAR_CACHE_BYTES / 8) return value;
    this.#near.set(key, deepFreeze(value), { size: Math.max(1, size) });
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

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
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
