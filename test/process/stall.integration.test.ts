import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { Consumer } from '@platformatic/kafka';
import { pino } from 'pino';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { PipelineStatus } from '../../src/dashboard/pipeline-status.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts';
import { BatchProcessor } from '../../src/process/batch-processor.ts';
import { KafkaProcessor } from '../../src/process/kafka-processor.ts';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { withTimeout } from '../../src/util/with-timeout.ts';
import {
  generateEvents,
  produce,
  startTestPostgres,
  storedCountProbe,
  testProducer,
  waitFor,
  type TestPostgres,
} from '../helpers/kafka-process.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { assertExactlyOnce } from '../helpers/stored-state.ts';

const STALL_MS = 3000;

/** Writes block while `closed`, as with a database that hangs. */
interface Gate {
  closed: boolean;
}

function startProcessor(
  t: TestContext,
  db: TestPostgres,
  env: { bootstrap: string; topic: string; groupId: string },
  gate: Gate,
  name: string,
) {
  const metrics = createMetrics(undefined, { defaults: false });
  const warnings: string[] = [];
  const logger = pino(
    { level: 'info', base: { name } },
    { write: (l: string) => void ((JSON.parse(l) as { level: number }).level >= 40 && warnings.push(l)) },
  );
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  const gated: Pick<BatchWriter, 'write'> = {
    async write(...args: Parameters<BatchWriter['write']>) {
      while (gate.closed) await new Promise((r) => setTimeout(r, 50));
      return writer.write(...args);
    },
  };
  const processor = new KafkaProcessor(
    {
      brokers: [env.bootstrap],
      groupId: env.groupId,
      topics: [env.topic],
      clientId: `stall-${name}`,
      batchSize: 500,
      flushIntervalMs: 200,
      lingerMs: 20,
      sessionTimeoutMs: 6000,
      maxFutureSkewMs: 3_600_000,
      maxMessageBytes: 1024 * 1024,
      retry: { maxRetryTimeMs: Number.POSITIVE_INFINITY, minDelayMs: 50, maxDelayMs: 500 },
      stallTimeoutMs: STALL_MS,
    },
    { pool: db.pool, processor: new BatchProcessor({ writer: gated, metrics, logger }), metrics, logger },
  );
  // Bounded: a processor whose rebuilds are stuck must fail the test, not hang it.
  t.after(() => withTimeout(processor.stop(), 30_000, () => new Error(`processor ${name}: stop() hung`)));
  return { processor, metrics, warnings };
}

async function gauge(metrics: Metrics, name: 'processorStalled' | 'consumerLagSum'): Promise<number> {
  return (await metrics[name].get()).values[0]?.value ?? 0;
}

test('a processor that cannot make progress says so, and recovers', { timeout: 5 * 60_000 }, async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const db = await startTestPostgres(t);
  // One partition: the second member owns nothing and watches the group.
  const env = { bootstrap: broker.bootstrap, topic: `stall-${randomUUID()}`, groupId: `g-${randomUUID()}` };
  await ensureTopics({ brokers: [env.bootstrap], topics: [env.topic], partitions: 1 });
  const gate: Gate = { closed: true };
  try {
    await scenario(t, db, env, gate);
  } finally {
    // Lets the processors' stop() commit, whatever the assertions said.
    gate.closed = false;
  }
});

async function scenario(
  t: TestContext,
  db: TestPostgres,
  env: { bootstrap: string; topic: string; groupId: string },
  gate: Gate,
): Promise<void> {
  const a = startProcessor(t, db, env, gate, 'a');
  await a.processor.start();
  const b = startProcessor(t, db, env, gate, 'b');
  await b.processor.start();
  const { oracle, messages } = generateEvents(2000, 19, 0.05);
  await produce(testProducer(t, env.bootstrap), env.topic, messages, { chunk: 500 });

  await waitFor(
    'both members to say they are stalled',
    async () =>
      (await gauge(a.metrics, 'processorStalled')) === 1 &&
      (await gauge(b.metrics, 'processorStalled')) === 1,
    30_000,
  );
  for (const m of [a, b]) {
    assert.equal(await m.processor.health.check(), 'down', '/ready answers 503');
    assert.match(m.processor.stalledReason ?? '', /lag \d+/);
    assert.ok(
      m.warnings.some((w) => w.includes('processor stalled')),
      'a warning is logged',
    );
  }
  const reasons = [a.processor.stalledReason, b.processor.stalledReason].join(' | ');
  assert.match(reasons, /no batch committed/, `the owner: ${reasons}`);
  assert.match(reasons, /no partitions assigned/, `the idle member: ${reasons}`);
  // The owner's lag is on /metrics and in /v1/pipeline.
  const owner = a.processor.stalledReason?.includes('no batch committed') ? a : b;
  assert.equal(await gauge(owner.metrics, 'consumerLagSum'), messages.length);
  const pipeline = new PipelineStatus({
    pool: db.pool,
    metrics: owner.metrics,
    live: new LiveFeed(),
    mode: 'kafka',
  });
  assert.deepEqual((await pipeline.status('default')).consumer_lag, {
    total: messages.length,
    partitions: [{ topic: env.topic, partition: 0, lag: messages.length }],
  });

  gate.closed = false;
  await waitFor('all events stored', storedCountProbe(db.pool, oracle.length), 60_000);
  await waitFor(
    'both members to recover',
    async () =>
      (await gauge(a.metrics, 'processorStalled')) === 0 &&
      (await gauge(b.metrics, 'processorStalled')) === 0,
    30_000,
  );
  await waitFor(
    'the lag to drop to 0',
    async () => (await gauge(owner.metrics, 'consumerLagSum')) === 0,
    30_000,
  );
  assert.equal(await a.processor.health.check(), 'ok');
  assert.equal(await b.processor.health.check(), 'ok');
  assert.equal((await pipeline.status('default')).consumer_lag?.total, 0);
  await assertExactlyOnce(db.pool, oracle);
}

test(
  'an old stream that never closes does not hold up later rebalances (issue #19)',
  { timeout: 5 * 60_000 },
  async (t) => {
    const broker = await startTestKafka(t);
    if (!broker) return;
    const db = await startTestPostgres(t);
    const env = { bootstrap: broker.bootstrap, topic: `close-${randomUUID()}`, groupId: `g-${randomUUID()}` };
    await ensureTopics({ brokers: [env.bootstrap], topics: [env.topic], partitions: 2 });
    // Fault injection: once armed, closing any stream of member a never finishes.
    let armed = false;
    const leaked: { close(): Promise<void> }[] = [];
    interface Closable {
      close(): Promise<void>;
    }
    type Consume = (this: Consumer, ...args: unknown[]) => Promise<Closable>;
    const proto = Consumer.prototype as unknown as { consume: Consume };
    const consume = proto.consume;
    proto.consume = async function (...args) {
      const stream = await consume.apply(this, args);
      const close = stream.close.bind(stream);
      if (this.clientId === 'stall-a') {
        stream.close = () => {
          if (!armed) return close();
          leaked.push({ close });
          return new Promise<void>(() => undefined);
        };
      }
      return stream;
    };
    t.after(async () => {
      proto.consume = consume;
      await Promise.allSettled(leaked.map((s) => s.close()));
    });
    const gate: Gate = { closed: false };
    const { oracle, messages } = generateEvents(3000, 23, 0.05);
    const third = Math.floor(messages.length / 3);
    const producer = testProducer(t, env.bootstrap);
    const a = startProcessor(t, db, env, gate, 'a');
    try {
      await a.processor.start();
      await produce(producer, env.topic, messages.slice(0, third), { chunk: 500 });
      await waitFor(
        'the first third stored',
        storedCountProbe(db.pool, new Set(messages.slice(0, third)).size),
      );
      armed = true;
      // b joins (a's rebuild meets the stream that never closes), then leaves (another rebalance).
      const b = startProcessor(t, db, env, gate, 'b');
      await b.processor.start();
      await produce(producer, env.topic, messages.slice(third, 2 * third), { chunk: 500 });
      await b.processor.stop();
      await produce(producer, env.topic, messages.slice(2 * third), { chunk: 500 });
      await waitFor('everything stored by a alone', storedCountProbe(db.pool, oracle.length), 60_000);
      assert.ok(leaked.length > 0, 'the fault was injected');
      assert.ok(
        a.warnings.some((w) => w.includes('closing the old stream failed')),
        'the stuck close is logged',
      );
    } finally {
      // The processors' stop() closes their streams.
      armed = false;
    }
    await assertExactlyOnce(db.pool, oracle);
  },
);
