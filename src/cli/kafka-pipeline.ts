import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import type { EventSink } from '../ingest/ingest-service.ts';
import { KafkaProducerSink } from '../ingest/kafka-sink.ts';
import type { HealthCheck } from '../observability/health.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { BatchProcessor } from '../process/batch-processor.ts';
import { KafkaProcessor } from '../process/kafka-processor.ts';
import { consumedTopics, ensureRoleTopics, kafkaProcessorOptions } from './kafka-processor-options.ts';
import { shutdownRequested } from './lifecycle.ts';
import type { RoleRunner } from './role-runner.ts';

export interface KafkaPipeline {
  /** Where the ingest routes put accepted events: Kafka (202 once acknowledged). */
  sink: EventSink;
  checks: HealthCheck[];
}

/**
 * `tally start` with KAFKA_BROKERS: ingest publishes to Kafka and an in-process processor (one
 * consumer group member) writes to PostgreSQL, exactly as `tally ingest` + `tally process` do.
 * On stop, intake into Kafka stops first, then the processor (which commits its in-flight batch).
 */
export async function startKafkaPipeline(
  runner: RoleRunner,
  config: Config,
  kafka: NonNullable<Config['kafka']>,
  deps: { pool: pg.Pool; processor: BatchProcessor; metrics: Metrics; logger: Logger },
): Promise<KafkaPipeline> {
  const raw = config.raw;
  const topics = consumedTopics(kafka);
  await ensureRoleTopics(config, kafka, topics, deps.logger);
  const sink = new KafkaProducerSink({
    brokers: kafka.brokers,
    topic: kafka.topic,
    logger: deps.logger,
    metrics: deps.metrics,
    maxBatchEvents: raw.BATCH_SIZE,
    lingerMs: raw.TALLY_BATCH_LINGER_MS,
    ackTimeoutMs: raw.TALLY_KAFKA_ACK_TIMEOUT_MS,
    maxInFlightBytes: raw.TALLY_INGEST_MAX_INFLIGHT_BYTES,
  });
  const consumer = new KafkaProcessor(kafkaProcessorOptions(config, kafka, `tally-start-${process.pid}`), {
    ...deps,
    abortStart: shutdownRequested,
  });
  runner.onStop('Kafka consumer', () => consumer.stop());
  runner.onStop('Kafka producer', () => sink.stop());
  await consumer.start();
  return { sink, checks: [sink.health, consumer.health] };
}
