import type { FastifyInstance } from 'fastify';
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { TallyError } from '../errors/tally-error.ts';
import { projectOf } from '../auth/http-auth.ts';
import { buildApp } from '../http/build-app.ts';
import { KafkaProducerSink } from '../ingest/kafka-sink.ts';
import { ensureRoleTopics } from './kafka-processor-options.ts';
import { primaryClusterMetrics, shareWorkerMetrics } from '../observability/cluster-metrics.ts';
import { createMetrics, type Metrics } from '../observability/metrics.ts';
import { opsRoutes } from '../observability/routes.ts';
import { ingestPlugin } from '../ingest/plugin.ts';
import { runRole } from './role-runner.ts';

export interface IngestRole {
  app: FastifyInstance;
  metrics: Metrics;
  sink: KafkaProducerSink;
  /** Base URL of the HTTP API once listening. */
  url: string;
  stop(): Promise<void>;
}

export interface IngestRoleOptions {
  /**
   * One of TALLY_INGEST_WORKERS cluster workers: its metrics are summed by the primary, and its
   * `/metrics` serves that sum, whichever worker a scrape reaches.
   */
  clusterWorker?: boolean;
}

const STARTUP_WAIT_MS = 60_000;

/**
 * `tally ingest`: the ingest API publishing to Kafka (no PostgreSQL), with /health, /ready
 * (Kafka reachable) and /metrics, on SERVER_PORT. Creates KAFKA_TOPIC (and its .dlq) if missing.
 */
export function startIngestRole(
  config: Config,
  logger: Logger,
  options: IngestRoleOptions = {},
): Promise<IngestRole> {
  const raw = config.raw;
  const kafka = config.kafka;
  if (kafka === undefined) {
    return Promise.reject(
      new TallyError('TALLY_CONFIG_INVALID', 'tally ingest needs KAFKA_BROKERS (or KAFKA_BROKER)'),
    );
  }
  const { brokers, topic } = kafka;
  return runRole(logger, async (runner) => {
    const metrics = createMetrics();
    // First: the primary's /metrics sum waits for every worker's answer, a starting one's too.
    if (options.clusterWorker) shareWorkerMetrics(metrics.registry);
    // Kafka may come up after us (compose, Kubernetes): wait for it a while rather than crash-loop.
    await ensureRoleTopics(config, kafka, [topic], logger, STARTUP_WAIT_MS);
    // API keys live in PostgreSQL: with DATABASE_URL/DB_* set, ingest checks them like every
    // other role; without, it has no keys and serves the `default` project (SECURITY.md).
    const keysDb =
      config.database.kind === 'external'
        ? await runner.database(config.database, { poolSize: 2, applicationName: 'tally-ingest', logger })
        : undefined;
    const security = await runner.auth(config, keysDb?.pool);
    const sink = new KafkaProducerSink({
      brokers,
      topic,
      logger,
      metrics,
      maxBatchEvents: raw.BATCH_SIZE,
      lingerMs: raw.TALLY_BATCH_LINGER_MS,
      ackTimeoutMs: raw.TALLY_KAFKA_ACK_TIMEOUT_MS,
      maxInFlightBytes: raw.TALLY_INGEST_MAX_INFLIGHT_BYTES,
    });
    // After the HTTP server closes: requests in flight still get Kafka's answer.
    runner.onStop('Kafka producer', () => sink.stop());
    new Gauge({
      name: 'tally_ingest_inflight_bytes',
      help: 'Encoded event bytes accepted by tally ingest and not yet acknowledged by Kafka',
      registers: [metrics.registry],
      collect() {
        this.set(sink.inFlightBytes);
      },
    });
    const app = await runner.app(() =>
      buildApp({
        logger,
        title: 'Tally ingest',
        requestTimeoutMs: raw.TALLY_REQUEST_TIMEOUT_MS,
        auth: security.auth,
        plugins: [
          ingestPlugin({ raw, sink, metrics, projectOf, isStopping: runner.isStopping }),
          opsRoutes({
            serviceName: raw.TALLY_SERVICE_NAME ?? 'tally-ingest',
            registry: options.clusterWorker ? primaryClusterMetrics() : metrics.registry,
            checks: [sink.health],
            isStopping: runner.isStopping,
          }),
        ],
      }),
    );
    const url = await runner.listen(app, {
      host: config.host,
      port: config.serverPort,
      setting: 'SERVER_PORT',
    });
    return { app, metrics, sink, url };
  });
}
