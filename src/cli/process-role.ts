import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { buildApp } from '../http/build-app.ts';
import { ClusterRegistry, shareWorkerMetrics } from '../observability/cluster-metrics.ts';
import { createMetrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { BatchProcessor } from '../process/batch-processor.ts';
import { ensureTopics } from '../kafka/topics.ts';
import { KafkaProcessor } from '../process/kafka-processor.ts';
import { WorkerPool, type WorkerMessage } from './worker-pool.ts';
import { BatchWriter } from '../store/batch-writer.ts';
import { openDatabase } from '../store/database.ts';
import { startEmbeddedPostgres } from '../store/embedded-postgres.ts';
import { RawPartitions } from '../store/partitions.ts';
import { TALLY_V8_FLAGS } from './v8-flags.ts';

export interface Stoppable {
  stop(): Promise<void>;
}

const IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;
const STATUS_INTERVAL_MS = 2000;

function kafkaOf(config: Config): NonNullable<Config['kafka']> {
  if (!config.kafka) throw new TallyError('TALLY_CONFIG_INVALID', 'tally process needs KAFKA_BROKERS');
  return config.kafka;
}

/**
 * The primary of `tally process`: makes sure the schema and topics exist, runs NUM_WORKERS
 * processor workers and serves /health, /ready and /metrics on METRICS_PORT.
 */
export async function startProcessPrimary(
  config: Config,
  logger: Logger,
): Promise<Stoppable & { url: string }> {
  const raw = config.raw;
  const kafka = kafkaOf(config);
  // The workers share one PostgreSQL: with no DATABASE_URL the primary runs the embedded one.
  const embedded =
    config.database.kind === 'embedded'
      ? await startEmbeddedPostgres({ dataDir: config.database.dataDir, log: (l) => logger.info(l) })
      : undefined;
  const connectionString =
    config.database.kind === 'external'
      ? config.database.connectionString
      : (embedded?.connectionString ?? '');
  const database = await openDatabase(
    { kind: 'external', connectionString },
    { poolSize: 2, applicationName: 'tally-process', logger },
  );
  const topics = [kafka.topic, ...kafka.extraTopics];
  await ensureTopics({ brokers: kafka.brokers, topics, partitions: raw.TALLY_KAFKA_PARTITIONS });
  const pool = new WorkerPool({
    role: 'processor',
    size: raw.NUM_WORKERS,
    env: { DATABASE_URL: connectionString },
    // Cluster workers do not inherit the launcher's flags when node was started without them.
    v8Flags: TALLY_V8_FLAGS,
    logger,
  });
  let stopping = false;
  const app = await buildApp({
    logger,
    title: 'Tally processor',
    requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
    plugins: [
      opsRoutes({
        serviceName: raw.TALLY_SERVICE_NAME ?? 'tally-process',
        registry: new ClusterRegistry(),
        checks: [database.health, pool.health],
        isStopping: () => stopping,
      }),
    ],
  });
  pool.start();
  const url = await app.listen({ host: config.host, port: raw.METRICS_PORT });
  let stopped: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        try {
          await pool.stop();
        } finally {
          await app.close();
          await database.stop();
          await embedded?.stop();
        }
      })();
      return stopped;
    },
  };
}

/** One processor worker: a consumer group member writing batches into PostgreSQL. */
export async function startProcessWorker(config: Config, logger: Logger): Promise<Stoppable> {
  const raw = config.raw;
  const kafka = kafkaOf(config);
  const metrics = createMetrics();
  if (cluster.isWorker) shareWorkerMetrics(metrics.registry);
  const database = await openDatabase(config.database, {
    poolSize: raw.TALLY_DB_POOL_SIZE,
    applicationName: `tally-process-${process.pid}`,
    logger,
    // TRICKY: a worker frozen mid-transaction (SIGSTOP, a VM pause) keeps its row locks and would
    // block the member that took its partitions; PostgreSQL ends such a session after this.
    idleInTransactionTimeoutMs: IDLE_IN_TRANSACTION_TIMEOUT_MS,
  });
  const partitions = new RawPartitions(database.pool, raw.TALLY_RAW_RETENTION_DAYS);
  const writer = new BatchWriter({ pool: database.pool, partitions, storeRaw: raw.TALLY_STORE_RAW });
  const processor = new KafkaProcessor(
    {
      brokers: kafka.brokers,
      groupId: kafka.groupId,
      topics: [kafka.topic, ...kafka.extraTopics],
      clientId: `tally-process-${process.pid}`,
      batchSize: raw.BATCH_SIZE,
      flushIntervalMs: raw.FLUSH_INTERVAL_SEC * 1000,
      lingerMs: raw.TALLY_BATCH_LINGER_MS,
      sessionTimeoutMs: raw.TALLY_KAFKA_SESSION_TIMEOUT_MS,
      maxFutureSkewMs: raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
      maxMessageBytes: raw.TALLY_MAX_MESSAGE_BYTES,
      // Nobody waits on a Kafka batch: retry PostgreSQL until it is back (or the partitions move).
      retry: { maxRetryTimeMs: Number.POSITIVE_INFINITY, minDelayMs: 100, maxDelayMs: 5000 },
    },
    { pool: database.pool, processor: new BatchProcessor({ writer, metrics, logger }), metrics, logger },
  );
  try {
    await processor.start();
  } catch (err) {
    await processor.stop().catch(() => undefined);
    await database.stop();
    throw err;
  }
  logger.info({ pid: process.pid }, 'processor worker consuming');
  // The primary's /ready reflects whether every worker is a live group member.
  const report = () =>
    void processor.health.check().then((status) => {
      if (process.connected)
        process.send?.({ tally: 'status', consuming: status === 'ok' } satisfies WorkerMessage);
    });
  report();
  const reporting = setInterval(report, STATUS_INTERVAL_MS);
  reporting.unref();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        clearInterval(reporting);
        await processor.stop();
        await database.stop();
      })();
      return stopped;
    },
  };
}
