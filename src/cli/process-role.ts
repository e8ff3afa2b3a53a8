import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { buildApp } from '../http/build-app.ts';
import { ClusterRegistry, shareWorkerMetrics } from '../observability/cluster-metrics.ts';
import { createMetrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { BatchProcessor } from '../process/batch-processor.ts';
import { KafkaProcessor } from '../process/kafka-processor.ts';
import { consumedTopics, ensureRoleTopics, kafkaProcessorOptions } from './kafka-processor-options.ts';
import { shutdownRequested } from './lifecycle.ts';
import { WorkerPool, type WorkerMessage } from './worker-pool.ts';
import { BatchWriter } from '../store/batch-writer.ts';
import { startEmbeddedPostgres } from '../store/embedded-postgres.ts';
import { pruneModelChangesPeriodically } from '../store/model-feed.ts';
import { FirstStatistics } from '../store/first-statistics.ts';
import { RawPartitions } from '../store/partitions.ts';
import { checkSessionTimeout } from '../store/sessions-store.ts';
import { userHashKey } from '../store/user-hash.ts';
import { TALLY_V8_FLAGS } from './v8-flags.ts';
import { runRole } from './role-runner.ts';

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
export function startProcessPrimary(config: Config, logger: Logger): Promise<Stoppable & { url: string }> {
  const raw = config.raw;
  return runRole(logger, async (runner) => {
    const kafka = kafkaOf(config);
    // The workers share one PostgreSQL: with no DATABASE_URL the primary runs the embedded one.
    const storage = config.database;
    const embedded =
      storage.kind === 'embedded'
        ? await runner.open(
            'embedded PostgreSQL',
            () => startEmbeddedPostgres({ dataDir: storage.dataDir, log: (l) => logger.info(l) }),
            (pg) => pg.stop(),
          )
        : undefined;
    const connectionString =
      storage.kind === 'external' ? storage.connectionString : (embedded?.connectionString ?? '');
    const database = await runner.database(
      { kind: 'external', connectionString },
      { poolSize: 2, applicationName: 'tally-process', logger },
    );
    const topics = consumedTopics(kafka);
    await ensureRoleTopics(config, kafka, topics, logger);
    const pool = new WorkerPool({
      role: 'processor',
      size: raw.NUM_WORKERS,
      env: { DATABASE_URL: connectionString },
      // Cluster workers do not inherit the launcher's flags when node was started without them.
      v8Flags: TALLY_V8_FLAGS,
      logger,
    });
    const app = await runner.app(() =>
      buildApp({
        logger,
        title: 'Tally processor',
        requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
        plugins: [
          opsRoutes({
            serviceName: raw.TALLY_SERVICE_NAME ?? 'tally-process',
            registry: new ClusterRegistry(),
            checks: [database.health, pool.health],
            isStopping: runner.isStopping,
          }),
        ],
      }),
    );
    // Listen before forking: a port in use then leaves no worker to stop.
    const url = await runner.listen(app, {
      host: config.host,
      port: raw.METRICS_PORT,
      setting: 'METRICS_PORT',
    });
    pool.start();
    // Stopped first: each worker commits its in-flight batch and leaves the group.
    runner.onStop('processor workers', () => pool.stop());
    return { url };
  });
}

/** One processor worker: a consumer group member writing batches into PostgreSQL. */
export function startProcessWorker(config: Config, logger: Logger): Promise<Stoppable> {
  const raw = config.raw;
  return runRole(logger, async (runner) => {
    const kafka = kafkaOf(config);
    const metrics = createMetrics();
    if (cluster.isWorker) shareWorkerMetrics(metrics.registry);
    const database = await runner.database(config.database, {
      poolSize: raw.TALLY_DB_POOL_SIZE,
      applicationName: `tally-process-${process.pid}`,
      deriveStoredEvents: true,
      logger,
      // TRICKY: a worker frozen mid-transaction (SIGSTOP, a VM pause) keeps its row locks and would
      // block the member that took its partitions; PostgreSQL ends such a session after this.
      idleInTransactionTimeoutMs: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    });
    const partitions = new RawPartitions(database.pool, raw.TALLY_RAW_RETENTION_DAYS);
    await checkSessionTimeout(database.pool, {
      storeRaw: raw.TALLY_STORE_RAW,
      timeoutMs: raw.TALLY_SESSION_TIMEOUT_MIN * 60_000,
    });
    const writer = new BatchWriter({
      pool: database.pool,
      partitions,
      storeRaw: raw.TALLY_STORE_RAW,
      sessionTimeoutMs: raw.TALLY_SESSION_TIMEOUT_MIN * 60_000,
      statistics: new FirstStatistics(database.pool, (err) =>
        logger.warn({ err }, 'first statistics failed'),
      ),
      // Read here, so that a key other than the one of the stored tombstones stops the start.
      userHashKey: await userHashKey(database.pool, raw.TALLY_USER_HASH_KEY),
    });
    const processor = new KafkaProcessor(
      kafkaProcessorOptions(config, kafka, `tally-process-${process.pid}`),
      {
        pool: database.pool,
        processor: new BatchProcessor({ writer, metrics, logger }),
        metrics,
        logger,
        abortStart: shutdownRequested,
      },
    );
    runner.onStop('Kafka consumer', () => processor.stop());
    // The feed rows its batches write (migration 018) are pruned by the processes that write them.
    runner.onStop('model feed pruning', pruneModelChangesPeriodically(database.pool, logger));
    await processor.start();
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
    runner.onStop('status reports', () => clearInterval(reporting));
    return {};
  });
}
