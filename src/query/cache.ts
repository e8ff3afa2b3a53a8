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
 * notification arrives. An answer is never stored under a version newer than its data: one read
 * from a read replica is stored under the version its own snapshot holds (`throughAt`), which may
 * be older than the one looked up, and is then never found by a reader that knows the newer. Entries
 * of old versions are never read again and expire by TTL (TALLY_CACHE_TTL_SEC), the backstop.
 *
 * Where: Redis when configured (shared by every query process), else an in-process LRU. Redis
 * errors never fail a query: the answer comes from PostgreSQL and readiness says `degraded`.
 * In front of Redis, each process keeps the answers it used lately, parsed and frozen (a near
 * cache): a repeated question costs neither a Redis round trip nor a JSON.parse, and over REST
 * no serialization either (routes.ts keeps each frozen answer's JSON). Its keys are Redis's keys,
 * versioned, so it is exactly as fresh as Redis.
 *
 * A user deletion (issue 22) moves the version too, so no later answer is read from before it;
 * but the entries of older versions, which hold the deleted user's numbers, would stay until
 * their TTL. `purge(project)` removes them at once, from this process's near cache and from the
 * store. Other processes' in-memory caches are out of its reach: their entries are under versions
 * older than the deletion's, never read again, and expire by TTL.
 */
export interface CacheStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string, ttlSec: number): Promise<void>;
  /**
   * Removes every key `matches` accepts; how many. `pattern` (a Redis MATCH glob) finds at least
   * all of them; `matches` has the last word.
   */
  purge(pattern: string, matches: (key: string) => boolean): Promise<number>;
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
  through<T>(project: string, question: string, compute: () => Promise<T>): Promise<T> {
    return this.throughAt(project, question, async () => ({ value: await compute() }));
  }

  /**
   * As `through`, for a compute that may read data of another version than the one looked up (a
   * replica behind or ahead of this process's versions: src/query/replica-reads.ts). It gets the
   * version looked up and says which version its value holds, read on the snapshot the value was
   * computed on; the value is stored under that one, so an answer from a replica that lags is
   * found only by a reader at its own older version, never at the newer one. Without a version,
   * the value holds the one looked up or a later one (the primary, read after the look-up).
   */
  async throughAt<T>(
    project: string,
    question: string,
    compute: (version: number) => Promise<{ value: T; version?: number | undefined }>,
  ): Promise<T> {
    const { store, metrics, ttlSec } = this.#deps;
    const version = await this.#deps.version(project);
    const key = cacheKey(version, project, question);
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
    const computed = await compute(version);
    const value = computed.value;
    const at = computed.version === undefined ? key : cacheKey(computed.version, project, question);
    const json = JSON.stringify(value);
    store.set(at, json, ttlSec).catch((err: unknown) => this.#warn(err));
    return this.#keep(at, value, json.length);
  }

  /** Remembers an answer in the near cache; frozen, since every later hit shares the object. */
  #keep<T>(key: string, value: T, size: number): T {
    if (this.#near === undefined || typeof value !== 'object' || value === null) return value;
    if (size > NEAR_CACHE_BYTES / 8) return value;
    this.#near.set(key, deepFreeze(value), { size: Math.max(1, size) });
    return value;
  }

  /**
   * Removes every cached answer of `project`, of every version, from the near cache and the store;
   * how many the store held. Never throws: a store that fails is logged, and its entries expire by
   * TTL as before.
   */
  async purge(project: string): Promise<number> {
    if (this.#near !== undefined) {
      const keys = [...this.#near.keys()].filter((key) => projectOfKey(key) === project);
      for (const key of keys) this.#near.delete(key);
    }
    try {
      return await purgeProject(this.#deps.store, project);
    } catch (err) {
      this.#deps.logger.warn({ err, project }, 'query cache purge failed; the entries expire by TTL');
      return 0;
    }
  }

  #warn(err: unknown): void {
    // A cache outage would otherwise log once per query.
    const now = Date.now();
    if (now - this.#lastWarn < 10_000) return;
    this.#lastWarn = now;
    this.#deps.logger.warn({ err }, 'query cache unavailable; answering from PostgreSQL');
  }
}

const KEY_PREFIX = 'tally:q:';

/** The key of an answer: `tally:q:<version>:<JSON of [project, question]>`. */
export function cacheKey(version: number, project: string, question: string): string {
  return `${KEY_PREFIX}${version}:${JSON.stringify([project, question])}`;
}

/** Removes every cached answer of `project`, of any version, from `store`; how many. Throws what the store throws. */
export function purgeProject(store: CacheStore, project: string): Promise<number> {
  return store.purge(projectPattern(project), (key) => projectOfKey(key) === project);
}

/** The project of a key of cacheKey's; undefined for any other key. */
function projectOfKey(key: string): string | undefined {
  if (!key.startsWith(KEY_PREFIX)) return undefined;
  const at = key.indexOf(':', KEY_PREFIX.length);
  if (at < 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(key.slice(at + 1));
    return Array.isArray(parsed) && typeof parsed[0] === 'string' ? parsed[0] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Redis MATCH glob for every key of `project`: `tally:q:*:["<project>",*`, its text glob-escaped.
 * TRICKY: the `*` of the version cannot reach into another project's question, since a `"` there is
 * escaped as `\"` and the glob wants `["` unescaped; projectOfKey checks each key all the same.
 */
function projectPattern(project: string): string {
  const head = `${JSON.stringify([project]).slice(0, -1)},`;
  return `${KEY_PREFIX}*:${head.replace(/[\\*?[\]^]/g, (c) => `\\${c}`)}*`;
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
    purge: (_pattern, matches) => {
      // Collected first: the LRU is not changed while its keys are iterated.
      const keys = [...lru.keys()].filter(matches);
      for (const key of keys) lru.delete(key);
      return Promise.resolve(keys.length);
    },
    health: { name: 'cache', check: () => Promise.resolve('ok') },
    close: () => Promise.resolve(),
  };
}

const REDIS_TIMEOUT_MS = 250;
/** Keys SCAN looks at per call (a hint): each call stays well within REDIS_TIMEOUT_MS. */
const SCAN_COUNT = 1000;
/** Keys per UNLINK. */
const UNLINK_BATCH = 500;

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
    async purge(pattern, matches) {
      // SCAN, not KEYS: it walks the keyspace a page at a time and never blocks Redis. Each page
      // is unlinked (freed off Redis's main thread) before the next is read; a key SCAN returns
      // twice is unlinked twice, harmlessly, so the count is of UNLINK's answers.
      let cursor = '0';
      let removed = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        cursor = next;
        const ours = keys.filter(matches);
        for (let i = 0; i < ours.length; i += UNLINK_BATCH) {
          removed += await redis.unlink(...ours.slice(i, i + UNLINK_BATCH));
        }
      } while (cursor !== '0');
      return removed;
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
