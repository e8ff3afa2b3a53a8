import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { grpcProjectOf } from '../auth/grpc-project.ts';
import { projectOf } from '../auth/http-auth.ts';
import { buildApp } from '../http/build-app.ts';
import { LiveFeed } from '../dashboard/live-feed.ts';
import { PipelineStatus } from '../dashboard/pipeline-status.ts';
import { RollupWatcher } from '../dashboard/rollup-watcher.ts';
import { dashboardRoutes } from '../dashboard/routes.ts';
import { createMetrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { queryRoutes } from '../query/routes.ts';
import type { Database } from '../store/database.ts';
import { createQueryLayer } from '../query/query-layer.ts';
import { createPool } from '../store/pool.ts';
import type { ReadModel } from '../query/read-model.ts';
import { runRole } from './role-runner.ts';
import { userHashKey } from '../store/user-hash.ts';
import { userRoutes } from '../users/routes.ts';

export interface QueryRole {
  app: FastifyInstance;
  database: Database;
  url: string;
  grpcPort: number;
  cacheKind: 'redis' | 'memory';
  /** The columnar read model (undefined: TALLY_READ_MODEL=off or TALLY_STORE_RAW=false). */
  model: ReadModel | undefined;
  stop(): Promise<void>;
}

/**
 * `tally query`: the REST query API (with /health, /ready, /metrics, /docs) on TALLY_QUERY_PORT
 * and the gRPC AnalyticsService on TALLY_GRPC_PORT, reading PostgreSQL through the cache.
 * Stateless: run as many as needed behind a load balancer.
 */
export function startQueryRole(config: Config, logger: Logger): Promise<QueryRole> {
  const raw = config.raw;
  return runRole(logger, async (runner) => {
    const metrics = createMetrics();
    const database = await runner.database(config.database, {
      poolSize: raw.TALLY_DB_POOL_SIZE,
      applicationName: 'tally-query',
      logger,
    });
    // As in `tally start`: with keys, a read key picks the project (SECURITY.md).
    const security = await runner.auth(config, database.pool);
    // A replica the primary stands in for: a short connect timeout, and no migrations (read-only).
    const replicaPool =
      raw.TALLY_READ_DATABASE_URL === undefined
        ? undefined
        : createPool(
            {
              connectionString: raw.TALLY_READ_DATABASE_URL,
              max: raw.TALLY_DB_POOL_SIZE,
              applicationName: 'tally-query-replica',
              connectionTimeoutMs: 1000,
            },
            (err) => logger.warn({ err }, 'idle read-replica connection failed'),
          );
    const layer = createQueryLayer({ pool: database.pool, config, metrics, logger, replicaPool });
    runner.onStop('query layer', () => layer.stop());
    const hashKey = await userHashKey(database.pool, raw.TALLY_USER_HASH_KEY);
    // The dashboard lives here too; this process commits no batches, so the live feed polls rollups.
    const live = new LiveFeed();
    const watcher = new RollupWatcher({ pool: database.pool, live, logger });
    runner.onStop('rollup watcher', () => watcher.stop());
    const app = await runner.app(() =>
      buildApp({
        logger,
        title: 'Tally query API',
        requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
        auth: security.auth,
        plugins: [
          queryRoutes({ query: layer.query, projectOf }),
          userRoutes({
            pool: database.pool,
            hashKey,
            versions: layer.versions,
            purgeCache: layer.purgeCache,
          }),
          dashboardRoutes({
            live,
            pipeline: new PipelineStatus({ pool: database.pool, metrics, live, mode: 'kafka' }),
            projectOf,
            honorDnt: raw.TALLY_HONOR_DNT,
            watch: (project) => watcher.watch(project),
          }),
          opsRoutes({
            serviceName: raw.TALLY_SERVICE_NAME ?? 'tally-query',
            registry: metrics.registry,
            checks: [database.health, ...layer.checks],
            isStopping: runner.isStopping,
          }),
        ],
      }),
    );
    // gRPC first: Fastify logs "Server listening", which should be the last word of a good start.
    const grpc = await runner.listenGrpc(
      () => layer.startGrpc(config.host, raw.TALLY_GRPC_PORT, grpcProjectOf(security.keys)),
      { host: config.host, port: raw.TALLY_GRPC_PORT, setting: 'TALLY_GRPC_PORT' },
    );
    const url = await runner.listen(app, {
      host: config.host,
      port: raw.TALLY_QUERY_PORT,
      setting: 'TALLY_QUERY_PORT',
    });
    return { app, database, url, grpcPort: grpc.port, cacheKind: layer.cacheKind, model: layer.model };
  });
}
