import type { KeySet } from '../auth/key-set.ts';
import { projectOf } from '../auth/http-auth.ts';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { TallyEvent } from '../event/types.ts';
import { dashboardRoutes } from '../dashboard/routes.ts';
import { LiveFeed } from '../dashboard/live-feed.ts';
import { PipelineStatus } from '../dashboard/pipeline-status.ts';
import { grpcProjectOf } from '../auth/grpc-project.ts';
import { buildApp } from '../http/build-app.ts';
import type { EventOutcome, EventSink } from '../ingest/ingest-service.ts';
import { ingestPlugin } from '../ingest/plugin.ts';
import { startKafkaPipeline } from './kafka-pipeline.ts';
import { MicroBatcher } from '../ingest/micro-batcher.ts';
import { createMetrics, type Metrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { BatchProcessor } from '../process/batch-processor.ts';
import { queryRoutes } from '../query/routes.ts';
import { BatchWriter, type BatchResult } from '../store/batch-writer.ts';
import { DataVersions } from '../store/data-versions.ts';
import type { Database } from '../store/database.ts';
import { pruneModelChangesPeriodically } from '../store/model-feed.ts';
import { FirstStatistics } from '../store/first-statistics.ts';
import { RawPartitions } from '../store/partitions.ts';
import { checkSessionTimeout } from '../store/sessions-store.ts';
import { userHashKey } from '../store/user-hash.ts';
import { createQueryLayer } from '../query/query-layer.ts';
import type { ReadModel } from '../query/read-model.ts';
import { runRole, type RoleRunner } from './role-runner.ts';
import { userRoutes } from '../users/routes.ts';

export interface EmbeddedTally {
  app: FastifyInstance;
  database: Database;
  metrics: Metrics;
  /** The API keys in force (reloaded every few seconds; `refresh()` applies a change now). */
  keys: KeySet;
  /** Base URL of the HTTP API once listening. */
  url: string;
  /** Port of the gRPC AnalyticsService (TALLY_GRPC_PORT; 0 picks one). */
  grpcPort: number;
  /** The columnar read model (undefined: TALLY_READ_MODEL=off or TALLY_STORE_RAW=false). */
  model: ReadModel | undefined;
  stop(): Promise<void>;
}

const HOUR_MS = 3_600_000;

/**
 * The all-in-one Tally: HTTP ingest → micro-batcher → one PostgreSQL transaction per batch, or
 * with KAFKA_BROKERS set, HTTP ingest → Kafka → consumer → the same transaction; queries read
 * the rollups. Listens on `config.serverPort` and TALLY_GRPC_PORT.
 */
export function startEmbeddedTally(config: Config, logger: Logger): Promise<EmbeddedTally> {
  const raw = config.raw;
  return runRole(logger, async (runner) => {
    const metrics = createMetrics();
    const database = await runner.database(config.database, {
      poolSize: raw.TALLY_DB_POOL_SIZE,
      applicationName: 'tally-start',
      deriveStoredEvents: true,
      logger,
      // As in `tally process`: a member frozen mid-transaction must not block the group (docs/kafka.md).
      idleInTransactionTimeoutMs: config.kafka ? 10_000 : undefined,
    });
    const security = await runner.auth(config, database.pool);
    const partitions = new RawPartitions(database.pool, raw.TALLY_RAW_RETENTION_DAYS);
    // Moved by this process's commits before their 202s: a client reads its own writes.
    const versions = new DataVersions(database.pool, logger);
    await checkSessionTimeout(database.pool, {
      storeRaw: raw.TALLY_STORE_RAW,
      timeoutMs: raw.TALLY_SESSION_TIMEOUT_MIN * 60_000,
    });
    // Read here, so that a key other than the one of the stored tombstones stops the start.
    const hashKey = await userHashKey(database.pool, raw.TALLY_USER_HASH_KEY);
    const writer = new BatchWriter({
      pool: database.pool,
      partitions,
      storeRaw: raw.TALLY_STORE_RAW,
      sessionTimeoutMs: raw.TALLY_SESSION_TIMEOUT_MIN * 60_000,
      statistics: new FirstStatistics(database.pool, (err) =>
        logger.warn({ err }, 'first statistics failed'),
      ),
      onVersions: (v) => versions.observe(v),
      userHashKey: hashKey,
    });
    const live = new LiveFeed();
    const processor = new BatchProcessor({ writer, metrics, logger, onCommit: live.onCommit });
    // With KAFKA_BROKERS: HTTP ingest → Kafka → in-process consumer → the same transaction;
    // without, HTTP ingest → micro-batcher → the transaction.
    const kafka = config.kafka
      ? await startKafkaPipeline(runner, config, config.kafka, {
          pool: database.pool,
          processor,
          metrics,
          logger,
        })
      : undefined;
    const sink = kafka?.sink ?? startMicroBatcher(runner, config, processor);
    const queryLayer = createQueryLayer({ pool: database.pool, config, metrics, logger, versions });
    runner.onStop('query layer', () => queryLayer.stop());
    const retention = setInterval(() => {
      partitions.applyRetention().then(
        (r) => r.dropped.length > 0 && logger.info(r, 'retention applied'),
        (err: unknown) => logger.warn({ err }, 'retention failed'),
      );
    }, HOUR_MS);
    retention.unref();
    runner.onStop('retention', () => clearInterval(retention));
    runner.onStop('model feed pruning', pruneModelChangesPeriodically(database.pool, logger));
    const app = await runner.app(() =>
      buildApp({
        logger,
        title: 'Tally',
        requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
        auth: security.auth,
        plugins: [
          ingestPlugin({ raw, sink, metrics, projectOf, isStopping: runner.isStopping }),
          queryRoutes({ query: queryLayer.query, projectOf }),
          userRoutes({ pool: database.pool, hashKey, versions, purgeCache: queryLayer.purgeCache }),
          dashboardRoutes({
            live,
            pipeline: new PipelineStatus({
              pool: database.pool,
              metrics,
              live,
              mode: config.kafka ? 'kafka' : 'embedded',
            }),
            projectOf,
            honorDnt: raw.TALLY_HONOR_DNT,
          }),
          opsRoutes({
            serviceName: raw.TALLY_SERVICE_NAME ?? 'tally',
            registry: metrics.registry,
            checks: [database.health, ...(kafka?.checks ?? []), ...queryLayer.checks],
            isStopping: runner.isStopping,
          }),
        ],
      }),
    );
    // gRPC first: Fastify logs "Server listening", which should be the last word of a good start.
    const grpc = await runner.listenGrpc(
      () => queryLayer.startGrpc(config.host, raw.TALLY_GRPC_PORT, grpcProjectOf(security.keys)),
      { host: config.host, port: raw.TALLY_GRPC_PORT, setting: 'TALLY_GRPC_PORT' },
    );
    const url = await runner.listen(app, {
      host: config.host,
      port: config.serverPort,
      setting: 'SERVER_PORT',
    });
    return { app, database, metrics, keys: security.keys, url, grpcPort: grpc.port, model: queryLayer.model };
  });
}

/** The sink of `tally start` without Kafka: batches of accepted events, each committed before its 202s. */
function startMicroBatcher(runner: RoleRunner, config: Config, processor: BatchProcessor): EventSink {
  const raw = config.raw;
  const batcher = new MicroBatcher<TallyEvent, EventOutcome>({
    // A client is waiting: retry a failing database for a few seconds, then answer 503.
    commit: async (events) =>
      eventOutcomes(
        await processor.process({ events }, { maxRetryTimeMs: 5000, minDelayMs: 50, maxDelayMs: 1000 }),
      ),
    maxBatchEvents: raw.BATCH_SIZE,
    lingerMs: raw.TALLY_BATCH_LINGER_MS,
    maxQueuedEvents: raw.BATCH_SIZE * 20,
    maxInFlight: raw.TALLY_MAX_INFLIGHT_BATCHES,
  });
  runner.onStop('micro-batcher', () => batcher.stop());
  return { submit: (events) => batcher.submit(events) };
}

/** Each input event's outcome, from the writer's per-event flags. */
export function eventOutcomes(result: BatchResult): EventOutcome[] {
  return result.fresh.map((fresh, i) =>
    fresh ? 'stored' : result.ofDeletedUser[i] ? 'dropped' : 'duplicate',
  );
}
