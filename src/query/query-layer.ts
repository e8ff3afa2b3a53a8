import type * as grpc from '@grpc/grpc-js';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import { memoryCacheStore, QueryCache, redisCacheStore } from './cache.ts';
import { startGrpcServer, type GrpcServer } from './grpc/server.ts';
import { QueryService } from './query-service.ts';
import { DataVersions } from '../store/data-versions.ts';
import { rawCutoff } from '../store/partitions.ts';
import { ReadModel } from './read-model.ts';
import { poolAnswerers, snapshotAnswerers } from './answerers.ts';
import { ReplicaReads } from './replica-reads.ts';
import { OneAtATime } from '../util/one-at-a-time.ts';

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
  /** TALLY_READ_DATABASE_URL's pool: answers read the replica (replica-reads.ts); the layer ends it. */
  replicaPool?: pg.Pool;
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
  // Built from the raw rows: nothing to hold without them. It loads from the primary, at the
  // version the primary's notifications name, so its answers are the primary's.
  const model =
    config.raw.TALLY_READ_MODEL === 'columnar' && config.raw.TALLY_STORE_RAW
      ? new ReadModel({ pool, version: (project) => versions.current(project), cutoff, logger, metrics })
      : undefined;
  model?.warm();
  const options = {
    raw: { stored: config.raw.TALLY_STORE_RAW, cutoff },
    model,
    maxScanEvents: config.raw.TALLY_PRODUCT_MAX_SCAN_EVENTS,
    rawReads: new OneAtATime(),
  };
  const replica =
    deps.replicaPool === undefined
      ? undefined
      : new ReplicaReads({
          pool: deps.replicaPool,
          maxLagMs: config.raw.TALLY_READ_MAX_LAG_MS,
          logger,
          metrics,
        });
  const query = new QueryService({
    ...poolAnswerers(pool, options),
    cache,
    replica: replica && { reads: replica, answerers: (db) => snapshotAnswerers(db, options) },
  });
  let grpcServer: GrpcServer | undefined;
  return {
    query,
    model,
    versions,
    checks: [
      store.health,
      ...(model === undefined ? [] : [model.health]),
      ...(replica ? [replica.health] : []),
    ],
    cacheKind: store.kind,
    purgeCache: (project) => cache.purge(project),
    async startGrpc(host, port, projectOf) {
      grpcServer = await startGrpcServer({ query, host, port, projectOf, logger });
      return grpcServer;
    },
    async stop() {
      grpcServer?.drain();
      await Promise.allSettled([grpcServer?.stop(), store.close(), versions.stop(), model?.stop()]);
      await replica?.stop();
    },
  };
}
