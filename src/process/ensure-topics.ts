import { Admin } from '@platformatic/kafka';
import { dlqTopic } from './dead-letter-publisher.ts';

export interface EnsureTopicsOptions {
  brokers: string[];
  topics: readonly string[];
  partitions: number;
  /** Broker-side max.message.bytes for the dead-letter topics: they hold oversized values as is. */
  dlqMaxMessageBytes?: number;
}

/**
 * Creates the consumed topics and their `<topic>.dlq` when missing (the broker does not
 * auto-create them). Safe when several processes race: an existing topic is left alone.
 */
export async function ensureProcessTopics(options: EnsureTopicsOptions): Promise<void> {
  const admin = new Admin({ clientId: 'tally-topics', bootstrapBrokers: options.brokers, retries: 3 });
  try {
    const wanted = [...options.topics, ...options.topics.map(dlqTopic)];
    const existing = new Set(await admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t));
    for (const topic of missing) {
      const configs = topic.endsWith('.dlq')
        ? [{ name: 'max.message.bytes', value: String(options.dlqMaxMessageBytes ?? 8 * 1024 * 1024) }]
        : [];
      try {
        await admin.createTopics({ topics: [topic], partitions: options.partitions, replicas: -1, configs });
      } catch (err) {
        // replicas -1: the broker's default.replication.factor. Another instance may have created it meanwhile.
        if (!(await admin.listTopics()).includes(topic)) throw err;
      }
    }
  } finally {
    await admin.close();
  }
}
