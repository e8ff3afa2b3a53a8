import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { grpcProjectOf } from '../auth/grpc-project.ts';
import { startRoleAuth } from '../auth/start-auth.ts';
import { buildApp } from '../http/build-app.ts';
import { LiveFeed } from '../dashboard/live-feed.ts';
import { PipelineStatus } from '../dashboard/pipeline-status.ts';
import { RollupWatcher } from '../dashboard/rollup-watcher.ts';
import { dashboardRoutes } from '../dashboard/routes.ts';
import { createMetrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { queryRoutes } from '../query/routes.ts';
import { openDatabase, type Database } from '../store/database.ts';
import { createQueryLayer } from '../query/query-layer.ts';

export interface QueryRole {
  app: FastifyInstance;
  database: Database;
  url: string;
  grpcPort: number;
  cacheKind: 'redis' | 'memory';
  stop(): Promise<void>;
}

const DEFAULT_PROJECT = 'default';

/**
 * `tally query`: the REST query API (with /health, /ready, /metrics, /docs) on TALLY_QUERY_PORT
 * and the gRPC AnalyticsService on TALLY_GRPC_PORT, reading PostgreSQL through the cache.
 * Stateless: run as many as needed behind a load balancer.
 */
export async function startQueryRole(config: Config, logger: Logger): Promise<QueryRole> {
  const raw = config.raw;
  const metrics = createMetrics();
  const database = await openDatabase(config.database, {
    poolSize: raw.TALLY_DB_POOL_SIZE,
    applicationName: 'tally-query',
    logger,
  });
  // API keys, as in `tally start`: with keys, a read key picks the project (SECURITY.md).
  const security = await startRoleAuth(config, database.pool, logger, () => database.stop());
  const layer = createQueryLayer({ pool: database.pool, config, metrics, logger });
  // The dashboard lives here too; this process commits no batches, so the live feed polls rollups.
  const live = new LiveFeed();
  const watcher = new RollupWatcher({ pool: database.pool, live, logger });
  let stopping = false;
  const projectOf = (request: FastifyRequest) => request.tallyAuth?.project ?? DEFAULT_PROJECT;
  let app: FastifyInstance | undefined;
  try {
    app = await buildApp({
      logger,
      title: 'Tally query API',
      requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
      auth: security.auth,
      plugins: [
        queryRoutes({ query: layer.query, projectOf }),
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
          isStopping: () => stopping,
        }),
      ],
    });
    const url = await app.listen({ host: config.host, port: raw.TALLY_QUERY_PORT });
    const grpc = await layer.startGrpc(config.host, raw.TALLY_GRPC_PORT, grpcProjectOf(security.keys));
    let stopped: Promise<void> | undefined;
    const started = app;
    return {
      app,
      database,
      url,
      grpcPort: grpc.port,
      cacheKind: layer.cacheKind,
      stop() {
        stopped ??= (async () => {
          stopping = true;
          await Promise.allSettled([started.close(), layer.stop()]);
          watcher.stop();
          security.stop();
          await database.stop();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await app?.close();
    await layer.stop();
    security.stop();
    await database.stop();
    throw err;
  }
}
