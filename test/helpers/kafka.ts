import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Admin, Consumer, MessagesStreamModes } from '@platformatic/kafka';
import { startKafkaBroker, type KafkaBroker } from '../../scripts/kafka/broker.ts';
import { startKafkaCluster, type KafkaCluster } from '../../scripts/kafka/cluster.ts';
import { cleanupAfter, guardTempDir } from './interrupt.ts';
import { requireTool } from './require-tool.ts';

/**
 * A real single-node Kafka broker on free ports in a temporary directory, stopped and removed
 * after the test. Undefined when java or mvn is missing (the test is then skipped, or fails in
 * CI under TALLY_REQUIRE_ALL_SUITES=1).
 */
export async function startTestKafka(t: TestContext): Promise<KafkaBroker | undefined> {
  if (!requireTool(t, 'java', 'Kafka broker', ['-version'])) return undefined;
  if (!requireTool(t, 'mvn', 'fetches the Kafka jars')) return undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-kafka-'));
  guardTempDir(t, dataDir);
  let broker: KafkaBroker;
  try {
    broker = await startKafkaBroker({ dataDir, heapMb: 384 });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  cleanupAfter(t, async () => {
    await broker.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return broker;
}

/**
 * A real KRaft cluster of `brokers` nodes (each broker and controller) on free ports, killed and
 * removed after the test. Undefined when java or mvn is missing, like startTestKafka.
 */
export async function startTestKafkaCluster(
  t: TestContext,
  brokers: number,
): Promise<KafkaCluster | undefined> {
  if (!requireTool(t, 'java', 'Kafka cluster', ['-version'])) return undefined;
  if (!requireTool(t, 'mvn', 'fetches the Kafka jars')) return undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-kafka-cluster-'));
  guardTempDir(t, dataDir);
  let cluster: KafkaCluster;
  try {
    cluster = await startKafkaCluster({ brokers, dataDir, heapMb: 320 });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  cleanupAfter(t, async () => {
    // Its data is thrown away: no controlled shutdown (which waits on a quorum being stopped too).
    await cluster.stop(0);
    await rm(dataDir, { recursive: true, force: true });
  });
  return cluster;
}

/** Creates `topic` with `partitions` partitions (replication factor 1: one broker). */
export async function createTopic(bootstrap: string, topic: string, partitions: number): Promise<void> {
  const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: [bootstrap] });
  try {
    await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  } finally {
    await admin.close();
  }
}

export interface ReadMessage {
  partition: number;
  offset: bigint;
  timestamp: bigint;
  key: Buffer | undefined;
  value: Buffer | undefined;
  headers: Map<string, string>;
}

/** The end offset (high watermark) of each partition of `topic`, by partition number. */
export async function endOffsets(bootstrap: string, topic: string): Promise<bigint[]> {
  const consumer = new Consumer({
    groupId: `tally-test-offsets-${randomUUID()}`,
    clientId: 'tally-test-offsets',
    bootstrapBrokers: [bootstrap],
    retries: 5,
  });
  try {
    return (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
  } finally {
    await consumer.close(true);
  }
}

/** Every message of `topic` up to its end offsets at the time of the call, in partition/offset order. */
export async function readTopic(bootstrap: string, topic: string): Promise<ReadMessage[]> {
  const consumer = new Consumer({
    groupId: `tally-test-reader-${randomUUID()}`,
    clientId: 'tally-test-reader',
    bootstrapBrokers: [bootstrap],
    maxWaitTime: 200,
    retries: 5,
  });
  try {
    const ends = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const remaining = new Set(ends.flatMap((end, partition) => (end > 0n ? [partition] : [])));
    const out: ReadMessage[] = [];
    if (remaining.size === 0) return out;
    const stream = await consumer.consume({
      topics: [topic],
      mode: MessagesStreamModes.EARLIEST,
      autocommit: false,
    });
    try {
      for await (const m of stream) {
        out.push({
          partition: m.partition,
          offset: m.offset,
          timestamp: m.timestamp,
          key: m.key,
          value: m.value,
          headers: new Map([...m.headers].map(([k, v]) => [k.toString(), v.toString()])),
        });
        if (m.offset + 1n >= ends[m.partition]) remaining.delete(m.partition);
        if (remaining.size === 0) break;
      }
    } finally {
      await stream.close();
    }
    return out.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
  } finally {
    await consumer.close(true);
  }
}
