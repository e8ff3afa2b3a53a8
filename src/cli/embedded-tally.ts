import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { dashboardRoutes } from '../dashboard/routes.ts';
import { LiveFeed } from '../dashboard/live-feed.ts';
import { PipelineStatus } from '../dashboard/pipeline-status.ts';
import { buildApp } from '../http/build-app.ts';
import { ingestRoutes } from '../ingest/routes.ts';
import { IngestService } from '../ingest/ingest-service.ts';
import { MicroBatcher } from '../ingest/micro-batcher.ts';
import { createMetrics, type Metrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { BatchProcessor } from '../process/batch-processor.ts';
import { EventsStore } from '../query/events-store.ts';
import { queryRoutes } from '../query/routes.ts';
import { StatsService } from '../query/stats-service.ts';
import { StatsStore } from '../query/stats-store.ts';
import { BatchWriter } from '../store/batch-writer.ts';
import { openDatabase, type Database } from '../store/database.ts';
import { RawPartitions } from '../store/partitions.ts';

export interface EmbeddedTally {
  app: FastifyInstance;
  database: Database;
  metrics: Metrics;
  /** Base URL of the HTTP API once listening. */
  url: string;
  stop(): Promise<void>;
}

const HOUR_MS = 3_600_000;
const DEFAULT_PROJECT = 'default';

/**
 * The all-in-one Tally without Kafka: HTTP ingest → micro-batcher → one PostgreSQL
 * transaction per batch; queries read the rollups. Listens on `config.serverPort`.
 */
export async function startEmbeddedTally(config: Config, logger: Logger): Promise<EmbeddedTally> {
  const raw = config.raw;
  const metrics = createMetrics();
  const database = await openDatabase(config.database, {
    poolSize: raw.TALLY_DB_POOL_SIZE,
    applicationName: 'tally-start',
    logger,
  });
  const partitions = new RawPartitions(database.pool, raw.TALLY_RAW_RETENTION_DAYS);
  const writer = new BatchWriter({ pool: database.pool, partitions, storeRaw: raw.TALLY_STORE_RAW });
  const live = new LiveFeed();
  const processor = new BatchProcessor({ writer, metrics, logger, onCommit: live.onCommit });
  const batcher = new MicroBatcher({
    // A client is waiting: retry a failing database for a few seconds, then answer 503.
    commit: async (events) =>
      (await processor.process({ events }, { maxRetryTimeMs: 5000, minDelayMs: 50, maxDelayMs: 1000 })).fresh,
    maxBatchEvents: raw.BATCH_SIZE,
    lingerMs: raw.TALLY_BATCH_LINGER_MS,
    maxQueuedEvents: raw.BATCH_SIZE * 20,
  });
  let stopping = false;
  const projectOf = (_request: FastifyRequest) => DEFAULT_PROJECT;
  const ingest = new IngestService({
    sink: { submit: (events) => batcher.submit(events) },
    metrics,
    maxFutureSkewMs: raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
  });
  const app = await buildApp({
    logger,
    title: 'Tally',
    requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
    plugins: [
      ingestRoutes({
        ingest,
        metrics,
        maxBodyBytes: raw.TALLY_MAX_BODY_BYTES,
        maxDecompressedBytes: raw.TALLY_MAX_DECOMPRESSED_BYTES,
        maxEvents: raw.TALLY_MAX_EVENTS_PER_REQUEST,
        corsOrigins: raw.TALLY_CORS_ORIGINS,
        honorDnt: raw.TALLY_HONOR_DNT,
        projectOf,
        isStopping: () => stopping,
      }),
      queryRoutes({
        stats: new StatsService(new StatsStore(database.pool)),
        events: new EventsStore(database.pool),
        projectOf,
      }),
      dashboardRoutes({
        live,
        pipeline: new PipelineStatus({ pool: database.pool, metrics, live, mode: 'embedded' }),
        projectOf,
        honorDnt: raw.TALLY_HONOR_DNT,
      }),
      opsRoutes({
        serviceName: raw.TALLY_SERVICE_NAME ?? 'tally',
        registry: metrics.registry,
        checks: [database.health],
        isStopping: () => stopping,
      }),
    ],
  });
  const retention = setInterval(() => {
    partitions.applyRetention().then(
      (r) => r.dropped.length > 0 && logger.info(r, 'retention applied'),
      (err: unknown) => logger.warn({ err }, 'retention failed'),
    );
  }, HOUR_MS);
  retention.unref();

  let url: string;
  try {
    url = await app.listen({ host: config.host, port: config.serverPort });
  } catch (err) {
    await database.stop();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    app,
    database,
    metrics,
    url,
    stop() {
      stopped ??= (async () => {
        // Order matters (STYLE.md): refuse new intake, let in-flight requests commit, then close.
        stopping = true;
        clearInterval(retention);
        await app.close();
        await batcher.stop();
        await database.stop();
      })();
      return stopped;
    },
  };
}
