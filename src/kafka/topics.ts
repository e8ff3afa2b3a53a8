import { Admin } from '@platformatic/kafka';
import { kafkaClientOptions } from './client-options.ts';
import { dlqTopic } from './dead-letters.ts';

/**
 * Largest record Tally's topics accept. Ingest never writes more than ~100 KiB per event, but
 * other producers may write anything; an oversized message must still be accepted so the
 * processor can dead-letter it (as `too_large`) instead of the producer failing silently.
 */
export const TOPIC_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

export interface EnsureTopicsOptions {
  brokers: readonly string[];
  topics: readonly string[];
  partitions: number;
}

/**
 * Creates each topic and its `<topic>.dlq` when missing (the broker does not auto-create them),
 * with `partitions` partitions and `max.message.bytes` = TOPIC_MAX_MESSAGE_BYTES. Existing
 * topics are left as they are; safe when several instances start at once.
 */
export async function ensureTopics(options: EnsureTopicsOptions): Promise<void> {
  const admin = new Admin(kafkaClientOptions(options.brokers, 'tally-topics'));
  try {
    const wanted = [...new Set(options.topics.flatMap((t) => [t, dlqTopic(t)]))];
    const existing = new Set(await admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    const configs = [{ name: 'max.message.bytes', value: String(TOPIC_MAX_MESSAGE_BYTES) }];
    for (const topic of missing) {
      try {
        // replicas -1: the broker's default.replication.factor.
        await admin.createTopics({ topics: [topic], partitions: options.partitions, replicas: -1, configs });
      } catch (err) {
        // Another instance may have created it meanwhile.
        if (!(await admin.listTopics()).includes(topic)) throw err;
      }
    }
  } finally {
    await admin.close();
  }
}
