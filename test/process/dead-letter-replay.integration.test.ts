import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Producer } from '@platformatic/kafka';
import { DLQ_HEADERS, dlqTopic } from '../../src/kafka/dead-letters.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { MINUTE } from '../../src/store/levels.ts';
import { readTopic, startTestKafka } from '../helpers/kafka.ts';
import { spawnProcessor, startTestPostgres, waitFor } from '../helpers/kafka-process.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);

interface DeadLetter {
  value: Buffer;
  source?: string;
  project?: string;
  timestamp?: bigint;
}

test('tally replay moves the dead letters that now pass back to their source topic, once', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `replay-${randomUUID()}`;
  const dlq = dlqTopic(topic);
  await ensureTopics({ brokers: [broker.bootstrap], topics: [topic], partitions: 2 });
  const producer = new Producer({
    clientId: 'test-dlq-writer',
    bootstrapBrokers: [broker.bootstrap],
    retries: 5,
  });
  t.after(() => producer.close());
  // Dead letters in the processor's format (docs/kafka.md, "Dead letters").
  const writeDeadLetters = async (letters: DeadLetter[]) => {
    await producer.send({
      messages: letters.map((l, i) => {
        const headers = new Map<Buffer, Buffer>([
          [Buffer.from(DLQ_HEADERS.reason), Buffer.from('db_rejected')],
          [Buffer.from(DLQ_HEADERS.detail), Buffer.from('test')],
          [Buffer.from(DLQ_HEADERS.partition), Buffer.from('0')],
          [Buffer.from(DLQ_HEADERS.offset), Buffer.from(String(i))],
        ]);
        if (l.source !== undefined) headers.set(Buffer.from(DLQ_HEADERS.topic), Buffer.from(l.source));
        if (l.project !== undefined) headers.set(Buffer.from(DLQ_HEADERS.project), Buffer.from(l.project));
        return {
          topic: dlq,
          key: Buffer.from(`${topic}:0`),
          value: l.value,
          headers,
          timestamp: l.timestamp,
        };
      }),
    });
  };
  const ev = (id: string, user: string) =>
    Buffer.from(
      JSON.stringify({ event_id: id, type: 'page_view', user_id: user, timestamp: '2026-01-01T00:00:00Z' }),
    );
  const replay = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, [MAIN, 'replay', '--topic', dlq, ...args], {
      env: { ...process.env, KAFKA_BROKERS: broker.bootstrap, TALLY_LOG_LEVEL: 'warn' },
    });
    return stdout;
  };
  const valuesIn = async (name: string) =>
    (await readTopic(broker.bootstrap, name)).map((m) => m.value?.toString() ?? '').sort();

  await writeDeadLetters([
    { value: ev('a', 'u1'), source: topic, project: 'acme' },
    { value: ev('b', 'u2'), source: topic },
    // seed 004's shape, no source header: the DLQ name says where it came from
    { value: Buffer.from(JSON.stringify({ event_type: 'user.login', user_id: 'u3', service: 'auth' })) },
    { value: Buffer.from('{not json'), source: topic },
    { value: Buffer.from([0xff, 0xfe, 0x00]), source: topic },
  ]);

  // --dry-run counts, moves nothing, commits nothing.
  const dry = await replay('--dry-run');
  assert.match(dry, /read 5 dead letters; would move 3 \(3 to /);
  assert.match(dry, /skipped 2 \(still_invalid_json: 1, still_invalid_utf8: 1\)/);
  assert.deepEqual(await valuesIn(topic), []);

  const first = await replay();
  assert.match(first, /read 5 dead letters; moved 3 /);
  const moved = await readTopic(broker.bootstrap, topic);
  assert.equal(moved.length, 3);
  assert.deepEqual(
    moved.map((m) => m.value?.toString()).sort(),
    [
      ev('a', 'u1').toString(),
      ev('b', 'u2').toString(),
      JSON.stringify({ event_type: 'user.login', user_id: 'u3', service: 'auth' }),
    ].sort(),
  );
  const a = moved.find((m) => m.value?.toString().includes('"a"'))!;
  assert.equal(a.headers.get(DLQ_HEADERS.project), 'acme');
  assert.equal(a.key?.toString(), 'acme\u001fu1');
  // The dead letters stay in the DLQ (an audit trail); replay's group remembers them.
  assert.equal((await readTopic(broker.bootstrap, dlq)).length, 5);

  // A second replay finds nothing new.
  assert.match(await replay(), /read 0 dead letters; moved 0; skipped 0/);

  // --since skips older dead letters, but they count as done.
  const old = BigInt(Date.parse('2020-01-01T00:00:00Z'));
  // (separate sends: see MAX_TIMESTAMP_SPREAD_MS in src/process/dead-letter-replay.ts)
  await writeDeadLetters([{ value: ev('old', 'u4'), source: topic, timestamp: old }]);
  await writeDeadLetters([{ value: ev('new', 'u5'), source: topic, timestamp: BigInt(Date.now()) }]);
  const third = await replay('--since', '2025-01-01T00:00:00Z');
  assert.match(third, /read 2 dead letters; moved 1 .*skipped 1 \(older_than_since: 1\)/);
  assert.equal(await replay().then((s) => /read 0 dead letters/.test(s)), true);
  assert.deepEqual(
    (await valuesIn(topic)).filter((v) => v.includes('"old"') || v.includes('"new"')),
    [ev('new', 'u5').toString()],
  );

  // Dead letters years apart keep their own timestamps (the receive time of events without one).
  const older = BigInt(Date.parse('2021-06-01T00:00:00Z'));
  const recent = BigInt(Date.now() - 60_000);
  const untimed = (id: string) => Buffer.from(JSON.stringify({ event_id: id, type: 'click', user_id: 'u6' }));
  await writeDeadLetters([{ value: untimed('t-old'), source: topic, timestamp: older }]);
  await writeDeadLetters([{ value: untimed('t-new'), source: topic, timestamp: recent }]);
  assert.match(await replay(), /read 2 dead letters; moved 2 /);
  const stamps = (await readTopic(broker.bootstrap, topic))
    .filter((m) => m.value?.toString().includes('"t-'))
    .map((m) => m.timestamp)
    .sort();
  assert.deepEqual(stamps, [older, recent]);

  // Issue 3, test 4: the replayed events count once when a processor reads the source topic,
  // and replaying again adds nothing.
  const db = await startTestPostgres(t);
  await spawnProcessor(t, {
    bootstrap: broker.bootstrap,
    topic,
    groupId: `replayed-${randomUUID()}`,
    databaseUrl: db.connectionString,
  });
  const inTopic = (await readTopic(broker.bootstrap, topic)).length;
  assert.equal(inTopic, 6);
  const stored = async () =>
    (
      await db.pool.query<{ project: string; event_id: string; n: string }>(
        'SELECT project, event_id, count(*) AS n FROM tally.events GROUP BY project, event_id',
      )
    ).rows;
  await waitFor('every replayed event stored', async () => (await stored()).length === inTopic);
  assert.match(await replay(), /read 0 dead letters; moved 0/);
  const positions = await db.pool.query<{ n: string }>(
    'SELECT sum(next_offset) AS n FROM tally.positions WHERE topic = $1',
    [topic],
  );
  assert.equal(Number(positions.rows[0].n), inTopic);
  const rows = await stored();
  assert.ok(rows.every((r) => Number(r.n) === 1));
  assert.deepEqual(
    rows
      .filter((r) => !/^[0-9a-f-]{36}$/.test(r.event_id))
      .map((r) => `${r.project}/${r.event_id}`)
      .sort(),
    ['acme/a', 'default/b', 'default/new', 'default/t-new', 'default/t-old'],
  );
  const counts = await db.pool.query<{ events: string }>(
    `SELECT sum(count) AS events FROM tally.rollup_events WHERE level = ${MINUTE.level}`,
  );
  assert.equal(Number(counts.rows[0].events), inTopic);
});
