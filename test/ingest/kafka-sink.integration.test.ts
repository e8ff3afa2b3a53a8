import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import type { TallyEvent } from '../../src/event/types.ts';
import { TallyError } from '../../src/errors/tally-error.ts';
import { decodeEventMessage, PROJECT_HEADER } from '../../src/kafka/codec.ts';
import { dlqTopic } from '../../src/kafka/dead-letters.ts';
import { KafkaProducerSink } from '../../src/ingest/kafka-sink.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { readTopic, startTestKafka } from '../helpers/kafka.ts';

function event(i: number): TallyEvent {
  const ts = Date.parse('2026-01-02T03:04:05.000Z') + i;
  return {
    project: i % 2 === 0 ? 'default' : 'acme',
    eventId: `e-${i}`,
    type: i % 3 === 0 ? 'click' : 'page_view',
    userId: `u-${i % 7}`,
    ts,
    receivedAt: ts,
    pageUrl: `https://example.com/p/${i % 5}`,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: i % 4 === 0 ? '{"n":1}' : null,
  };
}

async function eventually<T>(what: string, attempt: () => Promise<T>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what} did not succeed within ${timeoutMs} ms`, { cause: err });
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test('producer sink: coalesces, acknowledges only what Kafka has, fails fast and bounded when Kafka is down, recovers', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `sink-${randomUUID()}`;
  await ensureTopics({ brokers: [broker.bootstrap], topics: [topic], partitions: 3 });
  const metrics = createMetrics();
  const sink = new KafkaProducerSink({
    brokers: [broker.bootstrap],
    topic,
    logger: pino({ level: 'silent' }),
    metrics,
    maxBatchEvents: 5000,
    lingerMs: 5,
    ackTimeoutMs: 4000,
    maxInFlightBytes: 256 * 1024,
  });
  t.after(() => sink.stop());

  // 50 concurrent requests of 10 events: one produce call, every request acknowledged.
  const all = Array.from({ length: 500 }, (_, i) => event(i));
  await Promise.all(Array.from({ length: 50 }, (_, r) => sink.submit(all.slice(r * 10, r * 10 + 10))));
  const batches = (await metrics.batchSize.get()).values.find(
    (v) => v.metricName === 'tally_batch_size_count',
  );
  assert.equal(batches?.value, 1);
  assert.equal(sink.inFlightBytes, 0);

  // What is in the topic is exactly the events, in the codec's format, keyed by project + user.
  const messages = await readTopic(broker.bootstrap, topic);
  assert.equal(messages.length, 500);
  const byId = new Map(all.map((e) => [e.eventId, e]));
  for (const m of messages) {
    const project = m.headers.get(PROJECT_HEADER);
    const decoded = decodeEventMessage(m.value, {
      project,
      messageTimestamp: 0,
      maxFutureSkewMs: 0,
      maxBytes: 1e6,
    });
    assert.ok(decoded.ok);
    const expected = byId.get(decoded.event.eventId);
    assert.deepEqual(decoded.event, expected);
    assert.equal(m.key?.toString(), `${expected!.project}\u001f${expected!.userId}`);
    byId.delete(decoded.event.eventId);
  }
  assert.equal(byId.size, 0);
  // The partitions of one key are stable: each user of a project is on one partition.
  const partitionOfKey = new Map<string, Set<number>>();
  for (const m of messages) {
    const key = m.key!.toString();
    partitionOfKey.set(key, (partitionOfKey.get(key) ?? new Set()).add(m.partition));
  }
  assert.ok([...partitionOfKey.values()].every((s) => s.size === 1));
  assert.deepEqual(await readTopic(broker.bootstrap, dlqTopic(topic)), []);

  // Broker gone: a request fails with TALLY_KAFKA_UNAVAILABLE, it does not hang.
  await broker.kill();
  const failing = sink.submit([event(1000)]);
  // Meanwhile, more bytes than the bound are refused at once, before the first one settles.
  const big = Array.from({ length: 1500 }, (_, i) => event(2000 + i));
  let firstSettled = false;
  failing.then(
    () => (firstSettled = true),
    () => (firstSettled = true),
  );
  await assert.rejects(sink.submit(big), (err: unknown) => {
    assert.ok(err instanceof TallyError);
    assert.equal(err.code, 'TALLY_KAFKA_UNAVAILABLE');
    return true;
  });
  assert.equal(firstSettled, false);
  const hang = new Promise((_, reject) => setTimeout(() => reject(new Error('submit hung')), 30_000).unref());
  await assert.rejects(Promise.race([failing, hang]), { code: 'TALLY_KAFKA_UNAVAILABLE' });
  assert.equal(await sink.health.check().catch(() => 'down'), 'down');

  // Broker back: the same sink accepts again by itself.
  await broker.restart();
  await eventually('submit after restart', () => sink.submit([event(3000)]));
  assert.equal(await eventually('health after restart', () => sink.health.check()), 'ok');
  const after = await readTopic(broker.bootstrap, topic);
  assert.ok(after.some((m) => m.value?.toString().includes('"e-3000"')));
});

test('producer sink: a broker that accepts connections and never answers holds it up for seconds, not 30', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  // Listed first, as a frozen (or cut off) broker may be: the producer's first metadata request
  // goes to it and waits for its request timeout before trying the next (issue 23, fault 4).
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const topic = `sink-silent-${randomUUID()}`;
  await ensureTopics({ brokers: [broker.bootstrap], topics: [topic], partitions: 3 });
  const sink = new KafkaProducerSink({
    brokers: [silentAddress, broker.bootstrap],
    topic,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    maxBatchEvents: 5000,
    lingerMs: 5,
    ackTimeoutMs: 5000,
    maxInFlightBytes: 256 * 1024,
  });
  t.after(() => sink.stop());
  const started = Date.now();
  await eventually('a submit accepted', () => sink.submit([event(1)]), 15_000);
  const took = Date.now() - started;
  assert.ok(took < 15_000, `accepted after ${took} ms`);
  const values = (await readTopic(broker.bootstrap, topic)).map((m) => m.value?.toString() ?? '');
  assert.ok(values.some((v) => v.includes('"e-1"')));
});
