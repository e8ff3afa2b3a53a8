import { Admin, findErrorBy } from '@platformatic/kafka';
import { TallyError } from '../errors/tally-error.ts';
import { kafkaClientOptions } from './client-options.ts';
import { dlqTopic } from './dead-letters.ts';
import { isTransientKafkaError, retryTransient } from './transient.ts';

/**
 * Largest record Tally's topics accept. Ingest never writes more than ~100 KiB per event, but
 * other producers may write anything; an oversized message must still be accepted so the
 * processor can dead-letter it (as `too_large`) instead of the producer failing silently.
 */
export const TOPIC_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const DEFAULT_RETRY_FOR_MS = 30_000;

export interface EnsureTopicsOptions {
  brokers: readonly string[];
  topics: readonly string[];
  partitions: number;
  /** Copies of each partition; absent: the broker's default.replication.factor. */
  replicationFactor?: number;
  /** The topics' min.insync.replicas; absent: the broker's. */
  minInsyncReplicas?: number;
  /** How long transient failures (broker unreachable, controller moving) are retried. */
  retryForMs?: number;
  /** Give up retrying once this says so (the process is shutting down). */
  isStopping?: () => boolean;
  /** Told of each failed attempt that will be retried. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Creates each topic and its `<topic>.dlq` when missing (the broker does not auto-create them),
 * with `partitions` partitions, the replication settings asked for and `max.message.bytes` =
 * TOPIC_MAX_MESSAGE_BYTES. Existing topics are left as they are. Idempotent and race-free: any
 * number of instances may call it at once, and all of them succeed once the topics exist.
 */
export async function ensureTopics(options: EnsureTopicsOptions): Promise<void> {
  const wanted = [...new Set(options.topics.flatMap((t) => [t, dlqTopic(t)]))];
  try {
    await retryTransient(
      async () => {
        const admin = new Admin(kafkaClientOptions(options.brokers, 'tally-topics'));
        try {
          const existing = new Set(await admin.listTopics());
          for (const topic of wanted.filter((t) => !existing.has(t))) {
            await createTopic(admin, topic, options);
          }
        } finally {
          await admin.close().catch(() => undefined);
        }
      },
      {
        forMs: options.retryForMs ?? DEFAULT_RETRY_FOR_MS,
        isStopping: options.isStopping,
        onRetry: options.onRetry,
      },
    );
  } catch (err) {
    if (!isTransientKafkaError(err)) {
      throw new TallyError(
        'TALLY_CONFIG_INVALID',
        `Kafka refused to create the topics ${wanted.join(', ')} (check TALLY_KAFKA_PARTITIONS, TALLY_KAFKA_REPLICATION_FACTOR, TALLY_KAFKA_MIN_INSYNC_REPLICAS and the broker's settings): ${describe(err)}`,
        { cause: err },
      );
    }
    throw new TallyError(
      'TALLY_KAFKA_UNAVAILABLE',
      `could not create the topics ${wanted.join(', ')} on ${options.brokers.join(',')}: ${describe(err)}`,
      { cause: err },
    );
  }
}

async function createTopic(admin: Admin, topic: string, options: EnsureTopicsOptions): Promise<void> {
  const configs = [{ name: 'max.message.bytes', value: String(TOPIC_MAX_MESSAGE_BYTES) }];
  if (options.minInsyncReplicas !== undefined) {
    configs.push({ name: 'min.insync.replicas', value: String(options.minInsyncReplicas) });
  }
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: options.partitions,
      // -1: the broker's default.replication.factor.
      replicas: options.replicationFactor ?? -1,
      configs,
    });
  } catch (err) {
    // TRICKY: another instance created it between our listTopics and this call. The broker's
    // answer is authoritative; its metadata may not list the topic yet (issue #19), so asking
    // listTopics again, as this code once did, failed the loser of the race.
    if (findErrorBy(err as Error, 'apiId', 'TOPIC_ALREADY_EXISTS')) return;
    throw err;
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const nested = err instanceof AggregateError ? err.errors.map(describe).join('; ') : '';
  return nested === '' ? err.message : `${err.message} (${nested})`;
}
