import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Producer } from '@platformatic/kafka';
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

test('producer sink: a send stuck past the ack timeout is given up with its producer; the next request gets a fresh one', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `sink-stuck-${randomUUID()}`;
  await ensureTopics({ brokers: [broker.bootstrap], topics: [topic], partitions: 3 });
  const sink = new KafkaProducerSink({
    brokers: [broker.bootstrap],
    topic,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    maxBatchEvents: 5000,
    lingerMs: 5,
    ackTimeoutMs: 1500,
    maxInFlightBytes: 256 * 1024,
  });
  t.after(() => sink.stop());

  // The first producer is stuck as on a broker frozen or cut off by a network partition: its
  // sends are never answered, until it is closed (issue 23, cluster fault 4).
  let sends = 0;
  type AnyProducer = Producer<string, string, string, string>;
  const send = Reflect.get(Producer.prototype, 'send') as (this: AnyProducer, ...args: unknown[]) => unknown;
  const stuck = new WeakSet<AnyProducer>();
  t.mock.method(Producer.prototype, 'send', function (this: AnyProducer, ...args: unknown[]) {
    if (!stuck.has(this) && sends++ > 0) return send.apply(this, args);
    stuck.add(this);
    return new Promise((_, reject) => this.once('client:close', () => reject(new Error('closed'))));
  });
  await assert.rejects(sink.submit([event(1)]), { code: 'TALLY_KAFKA_UNAVAILABLE' });
  await sink.submit([event(2)]);
  await eventually('the stuck send released', async () => assert.equal(sink.inFlightBytes, 0), 10_000);
  t.mock.restoreAll();
  const ids = (await readTopic(broker.bootstrap, topic)).map((m) => m.value?.toString() ?? '');
  assert.ok(ids.some((v) => v.includes('"e-2"')));
});
