import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Admin, Consumer, MessagesStreamModes } from '@platformatic/kafka';
import { DLQ_HEADERS } from '../../src/kafka/dead-letters.ts';
import {
  generateEvents,
  metricValue,
  produce,
  spawnProcessor,
  startTestPostgres,
  storedCountProbe,
  testProducer,
  toMessage,
  workerPids,
  waitFor,
} from '../helpers/kafka-process.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import { pool, prng } from '../helpers/oracle.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { assertExactlyOnce } from '../helpers/stored-state.ts';

const PARTITIONS = 6;

async function createTopic(bootstrap: string, topic: string, maxMessageBytes?: number): Promise<void> {
  const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: [bootstrap] });
  try {
    await admin.createTopics({
      topics: [topic],
      partitions: PARTITIONS,
      replicas: 1,
      configs: maxMessageBytes ? [{ name: 'max.message.bytes', value: String(maxMessageBytes) }] : [],
    });
  } finally {
    await admin.close();
  }
}

async function readTopic(bootstrap: string, topic: string, count: number) {
  const consumer = new Consumer({
    clientId: 'test-reader',
    groupId: `reader-${randomUUID()}`,
    bootstrapBrokers: [bootstrap],
    maxWaitTime: 200,
  });
  const records: { value: Buffer; headers: Map<string, string> }[] = [];
  try {
    const stream = await consumer.consume({
      topics: [topic],
      mode: MessagesStreamModes.EARLIEST,
      autocommit: false,
    });
    const deadline = Date.now() + 60_000;
    for await (const m of stream) {
      records.push({
        value: m.value,
        headers: new Map([...m.headers].map(([k, v]) => [k.toString(), v.toString()])),
      });
      if (records.length >= count || Date.now() > deadline) break;
    }
    await stream.close();
  } finally {
    await consumer.close(true);
  }
  return records;
}

test('tally process: exactly-once from Kafka into PostgreSQL', { timeout: 15 * 60_000 }, async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const bootstrap = broker.bootstrap;

  await t.test(
    '1: 100k events over HTTP to two ingest instances (5 % re-sent), two processors: exact',
    async (t) => {
      const db = await startTestPostgres(t);
      const topic = `t1-${randomUUID()}`;
      const env = { bootstrap, topic, groupId: `g-${randomUUID()}`, databaseUrl: db.connectionString };
      await createTopic(bootstrap, topic);
      const ingestEnv = { KAFKA_BROKERS: bootstrap, KAFKA_TOPIC: topic, TALLY_LOG_LEVEL: 'warn' };
      const ingests = await Promise.all(
        [0, 1].map(async () => {
          const port = await findFreePort();
          const child = await spawnTally(['ingest'], ingestEnv, port);
          t.after(async () => {
            child.child.kill('SIGTERM');
            await child.exited;
          });
          return child;
        }),
      );
      const [p1, p2] = await Promise.all([spawnProcessor(t, env), spawnProcessor(t, env)]);
      const { oracle } = generateEvents(100_000, 1, 0);
      const random = prng(11);
      const bodies = oracle.map((e) => ({
        event_id: e.event_id,
        type: e.type,
        user_id: e.user_id,
        timestamp: random() < 0.5 ? e.ts : new Date(e.ts).toISOString(),
        ...(e.page_url === undefined ? {} : { page_url: e.page_url }),
      }));
      const resent = bodies.filter(() => random() < 0.05);
      const requests: (typeof bodies)[] = [];
      for (let i = 0; i < bodies.length; i += 100) requests.push(bodies.slice(i, i + 100));
      for (let i = 0; i < resent.length; i += 100) requests.push(resent.slice(i, i + 100));
      let n = 0;
      await pool(
        requests.map((batch) => async () => {
          const url = ingests[n++ % 2].url;
          const res = await fetch(`${url}/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(batch),
          });
          assert.equal(res.status, 202, await res.text());
        }),
        8,
      );
      await waitFor('all events stored', storedCountProbe(db.pool, oracle.length), 240_000);
      await assertExactlyOnce(db.pool, oracle);
      // Both members took part: each owns some partitions and reports lag for them.
      for (const p of [p1, p2]) {
        await waitFor('lag reported and back to 0', async () => {
          const lag = await metricValue(p.url, 'tally_consumer_lag', { topic });
          return lag === 0;
        });
      }
    },
  );

  await t.test(
    '4: poison messages go to the DLQ with a reason; good events exact; lag back to 0',
    async (t) => {
      const db = await startTestPostgres(t);
      const topic = `t4-${randomUUID()}`;
      await createTopic(bootstrap, topic, 4 * 1024 * 1024);
      const env = { bootstrap, topic, groupId: `g-${randomUUID()}`, databaseUrl: db.connectionString };
      const processor = await spawnProcessor(t, env);
      const { oracle, messages } = generateEvents(5000, 4, 0);
      const poison = [
        { reason: 'invalid_json', value: Buffer.from('not json at all') },
        { reason: 'invalid_json', value: Buffer.from('{"event_id": "x", ') },
        { reason: 'invalid_event', value: Buffer.from('{"foo": 1}') },
        { reason: 'invalid_event', value: Buffer.from('[1, 2, 3]') },
        {
          reason: 'too_large',
          value: Buffer.from(JSON.stringify({ type: 'x', user_id: 'u', pad: 'a'.repeat(2 << 20) })),
        },
        { reason: 'invalid_utf8', value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) },
      ];
      // Spread the poison among the good events, on several partitions (keys differ).
      const mixed = [...messages];
      poison.forEach((p, i) => {
        mixed.splice(Math.floor(((i + 1) * mixed.length) / (poison.length + 1)), 0, {
          topic,
          key: Buffer.from(`poison-${i}`),
          value: p.value,
          headers: new Map(),
        });
      });
      const producer = testProducer(t, bootstrap);
      await produce(producer, topic, mixed, { chunk: 500 });

      await waitFor('good events stored', storedCountProbe(db.pool, oracle.length), 120_000);
      await waitFor('dead letters recorded', async () => {
        const { rows } = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM tally.dead_letters');
        return Number(rows[0].n) === poison.length;
      });
      await assertExactlyOnce(db.pool, oracle);

      const { rows } = await db.pool.query<{ reason: string; payload: Buffer; topic: string }>(
        'SELECT reason, payload, topic FROM tally.dead_letters ORDER BY id',
      );
      assert.deepEqual(rows.map((r) => r.reason).sort(), poison.map((p) => p.reason).sort());
      for (const r of rows) assert.equal(r.topic, topic);
      assert.deepEqual(
        rows.map((r) => r.payload.toString('hex')).sort(),
        poison.map((p) => p.value.toString('hex')).sort(),
      );

      const dlq = await readTopic(bootstrap, `${topic}.dlq`, poison.length);
      assert.equal(dlq.length, poison.length);
      assert.deepEqual(
        dlq.map((r) => r.headers.get(DLQ_HEADERS.reason)).sort(),
        poison.map((p) => p.reason).sort(),
      );
      for (const r of dlq) {
        assert.equal(r.headers.get(DLQ_HEADERS.topic), topic);
        assert.match(r.headers.get(DLQ_HEADERS.partition) ?? '', /^\d+$/);
        assert.match(r.headers.get(DLQ_HEADERS.offset) ?? '', /^\d+$/);
        assert.ok((r.headers.get(DLQ_HEADERS.detail) ?? '').length > 0);
      }
      assert.deepEqual(
        dlq.map((r) => r.value.toString('hex')).sort(),
        poison.map((p) => p.value.toString('hex')).sort(),
      );

      for (const reason of ['invalid_json', 'invalid_event', 'too_large', 'invalid_utf8']) {
        const expected = poison.filter((p) => p.reason === reason).length;
        assert.equal(
          await metricValue(processor.url, 'tally_dead_letters_total', { reason }),
          expected,
          reason,
        );
      }
      await waitFor('lag back to 0 on every partition', async () => {
        const text = await (await fetch(`${processor.url}/metrics`)).text();
        const lines = text
          .split('\n')
          .filter((l) => l.startsWith('tally_consumer_lag{') && l.includes(topic));
        return lines.length === PARTITIONS && lines.every((l) => l.endsWith(' 0'));
      });
    },
  );

  await t.test(
    'TALLY_EXTRA_TOPICS: seed 004 and seed 003 shapes on extra topics count exactly',
    async (t) => {
      const db = await startTestPostgres(t);
      const main = `t8-${randomUUID()}`;
      const userEvents = `user-events-${randomUUID()}`;
      const clicks = `clicks-${randomUUID()}`;
      for (const topic of [main, userEvents, clicks]) await createTopic(bootstrap, topic);
      const env = { bootstrap, topic: main, groupId: `g-${randomUUID()}`, databaseUrl: db.connectionString };
      await spawnProcessor(t, { ...env, extra: { TALLY_EXTRA_TOPICS: `${userEvents}, ${clicks}` } });
      const { oracle, messages } = generateEvents(3000, 8, 0.05);
      const seed004 = oracle.slice(0, 1000);
      const seed003 = oracle.slice(1000, 2000);
      const raw = (body: Record<string, unknown>) => ({
        topic: '',
        key: Buffer.from(String(body.user_id)),
        value: Buffer.from(JSON.stringify(body)),
        headers: new Map<Buffer, Buffer>(),
      });
      const producer = testProducer(t, bootstrap);
      // Seed 004 (Go services → `user-events`): event_type, user_id, service, timestamp, data.
      await produce(
        producer,
        userEvents,
        seed004.map((e) => {
          const body: Record<string, unknown> = {
            event_id: e.event_id,
            event_type: e.type,
            user_id: e.user_id,
            service: 'auth',
            timestamp: new Date(e.ts).toISOString(),
            data: { n: 1 },
          };
          if (e.page_url !== undefined) body.page_url = e.page_url;
          return raw(body);
        }),
      );
      // Seed 003 (`clicks`): event_id, event_type, page_url, time_stamp.
      await produce(
        producer,
        clicks,
        seed003.map((e) => {
          const body: Record<string, unknown> = {
            event_id: e.event_id,
            event_type: e.type,
            user_id: e.user_id,
            time_stamp: new Date(e.ts).toISOString(),
          };
          if (e.page_url !== undefined) body.page_url = e.page_url;
          return raw(body);
        }),
      );
      // The rest in Tally's own format on the main topic (with some re-sent).
      const ownIds = new Set(oracle.slice(2000).map((e) => e.event_id));
      await produce(
        producer,
        main,
        messages.filter((m) => ownIds.has((JSON.parse(String(m.value)) as { event_id: string }).event_id)),
      );
      await waitFor('all events stored', storedCountProbe(db.pool, oracle.length), 120_000);
      await assertExactlyOnce(db.pool, oracle);
      const { rows } = await db.pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM tally.events WHERE service = 'auth' AND properties->>'n' = '1'",
      );
      assert.equal(Number(rows[0].n), seed004.length, 'seed 004 service and data kept');
    },
  );

  await t.test(
    'events PostgreSQL refuses for good are isolated and dead-lettered; the rest exact',
    async (t) => {
      const db = await startTestPostgres(t);
      // Fault injection: the database refuses (non-retriable SQLSTATE 22023) one user's events.
      await db.pool.query(`
      CREATE FUNCTION tally.test_reject() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.event_id LIKE '%-reject' THEN RAISE EXCEPTION 'refused by test' USING ERRCODE = '22023'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_reject BEFORE INSERT ON tally.event_ids FOR EACH ROW EXECUTE FUNCTION tally.test_reject();`);
      const topic = `t9-${randomUUID()}`;
      await createTopic(bootstrap, topic);
      const env = { bootstrap, topic, groupId: `g-${randomUUID()}`, databaseUrl: db.connectionString };
      const processor = await spawnProcessor(t, env);
      const { oracle } = generateEvents(3000, 9, 0);
      const refused = [100, 1500, 2900].map((i) => ({
        ...oracle[i],
        event_id: `${oracle[i].event_id}-reject`,
      }));
      const good = oracle;
      const messages = [...good.map(toMessage)];
      refused.forEach((e, k) => messages.splice(1000 * k + 500, 0, toMessage(e)));
      const producer = testProducer(t, bootstrap);
      await produce(producer, topic, messages, { chunk: 1000 });
      await waitFor('good events stored', storedCountProbe(db.pool, good.length), 120_000);
      await waitFor('refused events dead-lettered', async () => {
        const { rows } = await db.pool.query<{ n: string }>(
          "SELECT count(*) AS n FROM tally.dead_letters WHERE reason = 'db_rejected'",
        );
        return Number(rows[0].n) === refused.length;
      });
      await assertExactlyOnce(db.pool, good);
      const { rows } = await db.pool.query<{ payload: Buffer }>('SELECT payload FROM tally.dead_letters');
      assert.deepEqual(
        rows.map((r) => (JSON.parse(r.payload.toString()) as { event_id: string }).event_id).sort(),
        refused.map((e) => e.event_id).sort(),
      );
      const dlq = await readTopic(bootstrap, `${topic}.dlq`, refused.length);
      assert.deepEqual(
        dlq.map((r) => r.headers.get(DLQ_HEADERS.reason)),
        refused.map(() => 'db_rejected'),
      );
      assert.equal(
        await metricValue(processor.url, 'tally_dead_letters_total', { reason: 'db_rejected' }),
        3,
      );
      assert.deepEqual(await workerPids(processor.child.pid ?? 0).then((p) => p.length), 1, 'no crash loop');
    },
  );
});
