import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  Admin,
  Consumer,
  MessagesStreamModes,
  Producer,
  stringDeserializers,
  stringSerializers,
} from '@platformatic/kafka';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKafkaJars } from '../../scripts/kafka/broker.ts';
import { requireTool } from '../helpers/require-tool.ts';
import { startTestKafka } from '../helpers/kafka.ts';

test('the test broker takes messages and gives them back, also after a kill -9 and restart', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `smoke-${randomUUID()}`;
  const admin = new Admin({ clientId: 'smoke-admin', bootstrapBrokers: [broker.bootstrap] });
  t.after(() => admin.close());
  await admin.createTopics({ topics: [topic], partitions: 2, replicas: 1 });

  const send = async (values: string[]) => {
    const producer = new Producer({
      clientId: 'smoke-producer',
      bootstrapBrokers: [broker.bootstrap],
      serializers: stringSerializers,
      idempotent: true,
      acks: -1,
      compression: 'lz4',
      retries: 10,
      retryDelay: 250,
    });
    try {
      await producer.send({ messages: values.map((value, i) => ({ topic, key: `k${i}`, value })) });
    } finally {
      await producer.close();
    }
  };
  const readAll = async (expected: number) => {
    const consumer = new Consumer({
      groupId: `smoke-${randomUUID()}`,
      clientId: 'smoke-consumer',
      bootstrapBrokers: [broker.bootstrap],
      deserializers: stringDeserializers,
      maxWaitTime: 200,
    });
    const seen: string[] = [];
    try {
      const stream = await consumer.consume({
        topics: [topic],
        mode: MessagesStreamModes.EARLIEST,
        autocommit: false,
      });
      for await (const message of stream) {
        seen.push(message.value);
        if (seen.length === expected) break;
      }
      await stream.close();
    } finally {
      await consumer.close(true);
    }
    return seen.sort();
  };

  await send(['a', 'b', 'c']);
  assert.deepEqual(await readAll(3), ['a', 'b', 'c']);

  await broker.kill();
  await broker.restart();
  await send(['d']);
  assert.deepEqual(await readAll(4), ['a', 'b', 'c', 'd']);
});

test('concurrent first uses of the jars leave one complete directory and no partial ones', async (t) => {
  if (!requireTool(t, 'mvn', 'fetches the Kafka jars')) return;
  const root = await mkdtemp(join(tmpdir(), 'tally-kafka-libs-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const dirs = await Promise.all([ensureKafkaJars(root), ensureKafkaJars(root), ensureKafkaJars(root)]);
  assert.equal(new Set(dirs).size, 1);
  assert.deepEqual(await readdir(root), [dirs[0].slice(root.length + 1)]);
  const jars = await readdir(dirs[0]);
  assert.ok(jars.includes('kafka_2.13-4.1.2.jar'));
  assert.ok(jars.includes('log4j-slf4j-impl-2.25.3.jar'));
});
