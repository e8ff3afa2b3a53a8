import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { ensureTopics } from '../kafka/topics.ts';
import type { KafkaProcessorOptions } from '../process/kafka-processor.ts';
import { shutdownRequested } from './lifecycle.ts';

/** The topics a processor consumes: the main one and TALLY_EXTRA_TOPICS. */
export function consumedTopics(kafka: NonNullable<Config['kafka']>): string[] {
  return [kafka.topic, ...kafka.extraTopics];
}

/**
 * A consumer group member's settings from the config, the same for `tally process` workers and
 * the in-process consumer of `tally start` on Kafka. Nobody waits on a Kafka batch, so a failing
 * PostgreSQL is retried until it is back (or the partitions move).
 */
export function kafkaProcessorOptions(
  config: Config,
  kafka: NonNullable<Config['kafka']>,
  clientId: string,
): KafkaProcessorOptions {
  const { raw } = config;
  return {
    brokers: kafka.brokers,
    groupId: kafka.groupId,
    topics: consumedTopics(kafka),
    clientId,
    batchSize: raw.BATCH_SIZE,
    flushIntervalMs: raw.FLUSH_INTERVAL_SEC * 1000,
    lingerMs: raw.TALLY_BATCH_LINGER_MS,
    sessionTimeoutMs: raw.TALLY_KAFKA_SESSION_TIMEOUT_MS,
    stallTimeoutMs: raw.TALLY_STALL_TIMEOUT_SEC * 1000,
    maxFutureSkewMs: raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
    maxMessageBytes: raw.TALLY_MAX_MESSAGE_BYTES,
    retry: { maxRetryTimeMs: Number.POSITIVE_INFINITY, minDelayMs: 100, maxDelayMs: 5000 },
  };
}

/**
 * Creates the role's topics, waiting up to `retryForMs` for a broker that is not reachable yet
 * (compose and Kubernetes may start Kafka after Tally) and giving up at once on a shutdown.
 */
export function ensureRoleTopics(
  config: Config,
  kafka: NonNullable<Config['kafka']>,
  topics: readonly string[],
  logger: Logger,
  retryForMs?: number,
): Promise<void> {
  return ensureTopics({
    brokers: kafka.brokers,
    topics,
    partitions: config.raw.TALLY_KAFKA_PARTITIONS,
    replicationFactor: config.raw.TALLY_KAFKA_REPLICATION_FACTOR,
    minInsyncReplicas: config.raw.TALLY_KAFKA_MIN_INSYNC_REPLICAS,
    retryForMs,
    isStopping: shutdownRequested,
    onRetry: (err, attempt) =>
      logger.warn({ err, attempt }, `Kafka (${kafka.brokers.join(',')}) is not reachable yet; retrying`),
  });
}
