import type * as grpc from '@grpc/grpc-js';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { memoryCacheStore, QueryCache, redisCacheStore } from './cache.ts';
import { EventsStore } from '../store/events-store.ts';
import { startGrpcServer, type GrpcServer } from './grpc/server.ts';
import { QueryService } from './query-service.ts';
import { StatsService } from './stats-service.ts';
import { StatsStore } from '../store/stats-store.ts';
import { DataVersions } from '../store/data-versions.ts';
import { AnalyticsStore } from '../store/analytics-store.ts';
import { BreakdownService } from './breakdown-service.ts';
import { ScopedStats } from './scoped-stats.ts';
import { rawCutoff } from '../store/partitions.ts';
import { readSnapshot } from '../store/read-snapshot.ts';
import { ReadModel } from './read-model.ts';
import { ProductService } from './product/product-service.ts';
import { ColumnarBuilder } from './columnar/builder.ts';
import { readRangeRows } from '../store/model-rows.ts';

export interface QueryLayer {
  query: QueryService;
  /** The columnar read model (undefined: TALLY_READ_MODEL=off or no raw rows). */
  model: ReadModel | undefined;
  /** The data versions the cache and the model answer at; a deletion's route observes its own. */
  versions: DataVersions;
  /** Readiness checks of the query side (the cache; Redis down only degrades). */
  checks: HealthCheck[];
  /** Where answers are cached: `redis` or `memory`. */
  cacheKind: 'redis' | 'memory';
  /** Removes every cached answer of the project (a user deletion: QueryCache.purge); never throws. */
  purgeCache: (project: string) => Promise<number>;
  startGrpc(host: string, port: number, projectOf: (metadata: grpc.Metadata) => string): Promise<GrpcServer>;
  stop(): Promise<void>;
}

/** Builds the query side shared by `tally start` and `tally query`: cache, service, gRPC. */
export function createQueryLayer(deps: {
  pool: pg.Pool;
  config: Config;
  metrics: Metrics;
  logger: Logger;
  versions?: DataVersions;
}): QueryLayer {
  const { pool, config, metrics, logger } = deps;
  const store =
    config.redisUrl === undefined
      ? memoryCacheStore(config.raw.TALLY_CACHE_MAX_ENTRIES)
      : redisCacheStore(config.redisUrl, logger);
  // `tally start` passes its own, which its writer keeps current; otherwise one is made here.
  const versions = deps.versions ?? new DataVersions(pool, logger);
  versions.start();
  const cache = new QueryCache({
    store,
    version: (project) => versions.current(project),
    metrics,
    ttlSec: config.raw.TALLY_CACHE_TTL_SEC,
    logger,
  });
  const cutoff = () => rawCutoff(config.raw.TALLY_RAW_RETENTION_DAYS, Date.now());
  // Built from the raw rows: nothing to hold without them.
  const model =
    config.raw.TALLY_READ_MODEL === 'columnar' && config.raw.TALLY_STORE_RAW
      ? new ReadModel({ pool, version: (project) => versions.current(project), cutoff, logger, metrics })
      : undefined;
  model?.warm();
  const stats = new ScopedStats(new StatsService(new StatsStore(pool)), {
    raw: { stored: config.raw.TALLY_STORE_RAW, cutoff },
    model,
    snapshot: (read) =>
      readSnapshot(pool, (db) =>
        read({ stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) }),
      ),
  });
  const product = new ProductService({
    scoped: stats,
    raw: { stored: config.raw.TALLY_STORE_RAW, cutoff },
    // Without the read model: the same columns, built for this one answer.
    readModel: async (project, range, maxEvents) => {
      const builder = new ColumnarBuilder();
      return (await readRangeRows(pool, project, range, maxEvents, builder)) ? builder.build() : undefined;
    },
    maxScanEvents: config.raw.TALLY_PRODUCT_MAX_SCAN_EVENTS,
  });
  const query = new QueryService({
    stats,
    breakdown: new BreakdownService(stats),
    product,
    events: new EventsStore(pool),
    cache,
  });
  let grpcServer: GrpcServer | undefined;
  return {
    query,
    model,
    versions,
    checks: model === undefined ? [store.health] : [store.health, model.health],
    cacheKind: store.kind,
    purgeCache: (project) => cache.purge(project),
    async startGrpc(host, port, projectOf) {
      grpcServer = await startGrpcServer({ query, host, port, projectOf, logger });
      return grpcServer;
    },
    async stop() {
      grpcServer?.drain();
      await Promise.allSettled([grpcServer?.stop(), store.close(), versions.stop(), model?.stop()]);
    },
  };
}
