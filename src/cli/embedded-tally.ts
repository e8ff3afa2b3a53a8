import type { KeySet } from '../auth/key-set.ts';
import { startAuth } from '../auth/start-auth.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
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
  /** The API keys in force (reloaded every few seconds; `refresh()` applies a change now). */
  keys: KeySet;
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
  // API keys; refuses a non-loopback TALLY_HOST while none exists (SECURITY.md).
  const security = await startAuth({
    pool: database.pool,
    logger,
    rateLimitPerSec: raw.TALLY_RATE_LIMIT,
    host: config.host,
    allowUnauthenticated: raw.TALLY_ALLOW_UNAUTHENTICATED,
  }).catch(async (err: unknown) => {
    await database.stop();
    throw err;
  });
  const partitions = new RawPartitions(database.pool, raw.TALLY_RAW_RETENTION_DAYS);
  const writer = new BatchWriter({ pool: database.pool, partitions, storeRaw: raw.TALLY_STORE_RAW });
  const processor = new BatchProcessor({ writer, metrics, logger });
  const batcher = new MicroBatcher({
    // A client is waiting: retry a failing database for a few seconds, then answer 503.
    commit: async (events) =>
      (await processor.process({ events }, { maxRetryTimeMs: 5000, minDelayMs: 50, maxDelayMs: 1000 })).fresh,
    maxBatchEvents: raw.BATCH_SIZE,
    lingerMs: raw.TALLY_BATCH_LINGER_MS,
    maxQueuedEvents: raw.BATCH_SIZE * 20,
  });
  let stopping = false;
  const projectOf = (request: FastifyRequest) => request.tallyAuth?.project ?? DEFAULT_PROJECT;
  const ingest = new IngestService({
    sink: { submit: (events) => batcher.submit(events) },
    metrics,
    maxFutureSkewMs: raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
  });
  const app = await buildApp({
    logger,
    title: 'Tally',
    requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
    auth: security.auth,
    plugins: [
      ingestRoutes({
        ingest,
        metrics,
        maxBodyBytes: raw.TALLY_MAX_BODY_BYTES,
        maxDecompressedBytes: raw.TALLY_MAX_DECOMPRESSED_BYTES,
        maxEvents: raw.TALLY_MAX_EVENTS_PER_REQUEST,
        projectOf,
        isStopping: () => stopping,
      }),
      queryRoutes({
        stats: new StatsService(new StatsStore(database.pool)),
        events: new EventsStore(database.pool),
        projectOf,
      }),
      opsRoutes({
        serviceName: raw.TALLY_SERVICE_NAME ?? 'tally',
        registry: metrics.registry,
        checks: [database.health],
        isStopping: () => stopping,
      }),
    ],
  });
  app.addHook('onClose', async () => security.stop());
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
    keys: security.keys,
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
