import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { benchProducer, produceAll, toMessage } from '../../bench/lib/kafka.ts';
import {
  drainWithPeer,
  ensureStreamsPeerBuild,
  peerTotals,
  referenceTotals,
  totalsDiff,
} from '../../bench/lib/streams-peer.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { prng } from '../helpers/oracle.ts';
import { requireTool } from '../helpers/require-tool.ts';

/**
 * Bench scenario 3's Kafka Streams peer (bench/peers/streams/) computes what it claims: on a
 * small topic of two projects, events out of time order across minutes and users repeated
 * within and across minutes, its per-minute totals in PostgreSQL (per-partition rows summed)
 * equal those computed here from the same messages. Builds the peer with Maven on first use
 * (~20 s, then cached); ~1.5 min in all, most of it the JVMs starting.
 */

const T0 = Date.parse('2024-03-01T10:00:00Z');
const MINUTE = 60_000;

test('referenceTotals counts by type, page views by page and distinct users per minute', () => {
  const events = [
    { event_id: 'a', type: 'page_view', user_id: 'u1', timestamp: T0 + 1_000, page_url: 'https://x.test/a' },
    { event_id: 'b', type: 'page_view', user_id: 'u1', timestamp: T0 + 2_000, page_url: 'https://x.test/a' },
    { event_id: 'c', type: 'click', user_id: 'u2', timestamp: T0 + 59_999, page_url: 'https://x.test/a' },
    { event_id: 'd', type: 'click', user_id: 'u2', timestamp: T0 + MINUTE },
  ];
  const totals = referenceTotals(events.map((e) => toMessage('t', e, 'p')));
  assert.deepEqual(
    totals,
    new Map([
      [`events|${T0}|p|page_view`, 2],
      [`pages|${T0}|p|https://x.test/a`, 2],
      [`users|${T0}|p`, 2],
      [`events|${T0}|p|click`, 1],
      [`events|${T0 + MINUTE}|p|click`, 1],
      [`users|${T0 + MINUTE}|p`, 1],
    ]),
  );
});

test('the Kafka Streams peer writes the totals of a small topic', { timeout: 300_000 }, async (t) => {
  if (!requireTool(t, 'javac', 'builds the Kafka Streams peer', ['-version'])) return;
  const kafka = await startTestKafka(t);
  if (kafka === undefined) return;
  const postgres = await startTestPostgres(t);
  const classpath = await ensureStreamsPeerBuild();

  const random = prng(24);
  const types = ['page_view', 'page_view', 'click', 'signup'];
  const events = Array.from({ length: 3_000 }, (_, i) => {
    const type = types[Math.floor(random() * types.length)];
    return {
      event_id: randomUUID(),
      type,
      user_id: `user-${Math.floor(random() * 40)}`,
      // Eight minutes, in random order: late events land in minutes already written.
      timestamp: T0 + Math.floor(random() * 8 * MINUTE),
      ...(type === 'signup' ? {} : { page_url: `https://shop.test/p/${i % 7}` }),
    };
  });
  const topic = `peer-${randomUUID()}`;
  await ensureTopics({ brokers: [kafka.bootstrap], topics: [topic], partitions: 3 });
  const messages = events.map((e, i) => toMessage(topic, e, i % 3 === 0 ? 'other' : 'shop'));
  const producer = benchProducer(kafka.bootstrap);
  try {
    await produceAll(producer, messages, 500);
  } finally {
    await producer.close();
  }

  const schema = `peer_${randomUUID().replaceAll('-', '')}`;
  const run = {
    bootstrap: kafka.bootstrap,
    databaseUrl: postgres.connectionString,
    topic,
    total: events.length,
    schema,
    threads: 2,
    timeoutMs: 180_000,
  };
  // Its rate may be n/a (everything in the first commit seen): only the totals matter here.
  await drainWithPeer(run, classpath);
  const want = referenceTotals(messages);
  const got = await peerTotals(postgres.pool, schema);
  assert.deepEqual(totalsDiff(want, got), []);
  // Several partitions wrote rows of one minute: the sum across them is what was checked.
  const { rows } = await postgres.pool.query<{ parts: number }>(
    `SELECT count(DISTINCT part)::int AS parts FROM ${schema}.minute_users`,
  );
  assert.equal(rows[0].parts, 3);
});

test(
  'the Kafka Streams peer killed mid-drain and restarted writes the same totals',
  { timeout: 300_000 },
  async (t) => {
    if (!requireTool(t, 'javac', 'builds the Kafka Streams peer', ['-version'])) return;
    const kafka = await startTestKafka(t);
    if (kafka === undefined) return;
    const postgres = await startTestPostgres(t);
    const classpath = await ensureStreamsPeerBuild();

    // Enough events that the kill lands mid-drain, with totals already in PostgreSQL.
    const random = prng(7);
    const events = Array.from({ length: 60_000 }, (_, i) => ({
      event_id: randomUUID(),
      type: random() < 0.7 ? 'page_view' : 'click',
      user_id: `user-${Math.floor(random() * 300)}`,
      timestamp: T0 + Math.floor(random() * 5 * MINUTE),
      page_url: `https://shop.test/p/${i % 11}`,
    }));
    const topic = `peer-crash-${randomUUID()}`;
    await ensureTopics({ brokers: [kafka.bootstrap], topics: [topic], partitions: 3 });
    const messages = events.map((e) => toMessage(topic, e, 'shop'));
    const producer = benchProducer(kafka.bootstrap);
    try {
      await produceAll(producer, messages);
    } finally {
      await producer.close();
    }

    const run = {
      bootstrap: kafka.bootstrap,
      databaseUrl: postgres.connectionString,
      topic,
      total: events.length,
      schema: `peer_${randomUUID().replaceAll('-', '')}`,
      threads: 2,
      timeoutMs: 180_000,
      applicationId: `peer-crash-${randomUUID()}`,
    };
    const killed = await drainWithPeer({ ...run, killWhenCovered: 1 }, classpath);
    assert.ok(
      killed.committed < events.length,
      `the kill came after the drain (${killed.committed} covered)`,
    );
    // A new state directory: the restarted peer restores its stores from their changelogs.
    await drainWithPeer(run, classpath);
    assert.deepEqual(totalsDiff(referenceTotals(messages), await peerTotals(postgres.pool, run.schema)), []);
  },
);
